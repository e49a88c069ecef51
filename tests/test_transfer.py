"""Transfer learning: pretrained loading from every source, head/input adaptation, freezing, fine-tuning."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import cnnzoo
from cnnzoo import create_model
from cnnzoo.builder import plan_input
from cnnzoo.cli import main
from cnnzoo.errors import UserError
from cnnzoo.io import save_weights
from cnnzoo.transfer import adapt_input_conv, freeze, freeze_bn, trainable_table

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def tv_resnet18(tmp_path_factory):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    for m in tv.modules():  # non-trivial BN statistics, so a wrong mapping would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("tv") / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    return tv.eval(), path


def test_torchvision_1000_class_head_into_10_classes(tv_resnet18):
    tv, path = tv_resnet18
    m = create_model("resnet18", num_classes=10, pretrained=str(path))
    rep = m.pretrained_report
    assert rep.reinitialised == ["fc.bias", "fc.weight"]
    sd, tsd = m.state_dict(), tv.state_dict()
    for k, v in sd.items():
        if not k.startswith("fc."):
            assert torch.equal(v, tsd[k]), k
    assert m.fc.weight.shape == (10, 512)
    x = torch.randn(2, 3, 64, 64)
    tv_features = torch.nn.Sequential(*list(tv.children())[:-1])  # everything but fc
    with torch.no_grad():
        ours = m.eval().forward_head(m.forward_features(x), pre_logits=True)
        torch.testing.assert_close(ours, torch.flatten(tv_features(x), 1))


def test_safetensors_state_dict_and_module_prefix(tv_resnet18, tmp_path):
    from safetensors.torch import save_file

    tv, _ = tv_resnet18
    p = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in tv.state_dict().items()}, str(p))
    m = create_model("resnet18", pretrained=str(p)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), tv(x))
    wrapped = tmp_path / "ddp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in tv.state_dict().items()}}, wrapped)
    m2 = create_model("resnet18", pretrained=str(wrapped)).eval()
    with torch.no_grad():
        torch.testing.assert_close(m2(x), tv(x))


def test_rgb_checkpoint_adapts_to_one_channel(tv_resnet18):
    tv, path = tv_resnet18
    grey = create_model("resnet18", in_chans=1, pretrained=str(path)).eval()
    assert grey.pretrained_report.adapted == ["conv1.weight"]
    g = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grey(g), tv(g.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)


def test_adapt_input_conv_more_channels_keeps_scale():
    w = torch.randn(8, 3, 3, 3)
    assert adapt_input_conv(w, 5).shape == (8, 5, 3, 3)
    # RGB repeated twice and halved: a constant input gives the same response as the RGB conv.
    w6 = adapt_input_conv(w, 6)
    torch.testing.assert_close(w6.sum((1, 2, 3)), w.sum((1, 2, 3)))
    torch.testing.assert_close(w6[:, 3:], w6[:, :3])


def test_other_architecture_is_refused(tmp_path):
    for other in ("vgg11", "resnet34"):
        p = tmp_path / f"{other}.pth"
        torch.save(getattr(torchvision.models, other)(weights=None).state_dict(), p)
        with pytest.raises(UserError, match="another architecture"):
            create_model("resnet18", pretrained=str(p))


def test_pickle_with_code_is_refused(tmp_path):
    """A crafted 'checkpoint' whose unpickling would run a command is refused, and the command never runs."""
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil.pth"
    p.write_bytes(pickle.dumps({"conv1.weight": Evil()}))
    with pytest.raises(UserError, match="refusing to load"):
        create_model("resnet18", pretrained=str(p))
    assert not marker.exists()


def test_cnnzoo_weights_with_other_classes(tmp_path):
    src = create_model("resnet20", num_classes=10)
    save_weights(tmp_path / "r20.safetensors", src)
    dst = create_model("resnet20", num_classes=4, pretrained=str(tmp_path / "r20.safetensors"))
    assert dst.fc.out_features == 4
    assert torch.equal(dst.conv1.weight, src.conv1.weight)
    with pytest.raises(UserError, match="another architecture"):
        create_model("resnet32", num_classes=10, pretrained=str(tmp_path / "r20.safetensors"))


def test_freezing_keeps_frozen_weights_and_bn_statistics():
    torch.manual_seed(0)
    m = create_model("resnet20", num_classes=10)
    frozen = freeze(m, until="stage1")
    assert frozen and all(n.startswith(("conv1", "bn1", "layer1")) for n in frozen)
    freeze_bn(m)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    m.train()
    for _ in range(3):
        loss = F.cross_entropy(m(torch.randn(8, 3, 32, 32)), torch.randint(0, 10, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = m.state_dict()
    for k in before:
        if k.startswith(("conv1", "bn1", "layer1")) or "bn" in k:
            assert torch.equal(before[k], after[k]), f"{k} changed although frozen"
    assert not torch.equal(before["layer3.0.conv1.weight"], after["layer3.0.conv1.weight"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    table = dict((s, (t, f)) for s, t, f in trainable_table(m))
    assert table["stage1"][0] == 0 and table["stage1"][1] > 0 and table["head"][1] == 0


def test_freeze_by_pattern_and_bad_stage():
    m = create_model("resnet18", num_classes=10)
    names = freeze(m, patterns=["layer1.*", "conv1.*"])
    assert names and all(n.startswith(("layer1.", "conv1.")) for n in names)
    with pytest.raises(UserError, match="freeze_until='stage9' is not a stage of resnet18"):
        freeze(m, until="stage9")
    with pytest.raises(UserError, match="matches no parameter"):
        freeze(create_model("resnet18"), patterns=["nothing.*"])


def test_num_classes_zero_gives_pooled_features():
    m = create_model("resnet18", num_classes=0).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 3, 64, 64)).shape == (2, 512)
        assert m.forward_features(torch.randn(2, 3, 64, 64)).shape == (2, 512, 2, 2)


def _source_run(tmp_path, model: str, epochs: int, *extra: str):
    """A short run on digits to start a fine-tune or another run from."""
    src = tmp_path / "src"
    assert main(["train", "--model", model, "--data", "digits", "--epochs", str(epochs), "--output", str(src),
                 "--no-progress", *extra]) == 0
    return src


def test_finetune_cli_two_stages(tmp_path, capsys):
    src = _source_run(tmp_path, "lenet5", 2, "--set", "run.tensorboard=false")
    out = tmp_path / "ft"
    assert main(["finetune", "--pretrained", str(src), "--model", "lenet5", "--data", "digits", "--epochs", "2",
                 "--head-epochs", "1", "--lr", "0.01", "--output", str(out), "--no-progress",
                 "--set", "run.tensorboard=false", "--set", "data.per_class=10"]) == 0
    text = capsys.readouterr().out
    assert "stage 1: head only" in text and "stage 2: training everything" in text
    assert "frozen" in text and "loaded" in text
    res = json.loads((out / "results.json").read_text())
    assert len(res["stages"]) == 2 and (out / "model.safetensors").is_file()
    assert res["stages"][0]["trainable_params"] < res["stages"][1]["trainable_params"]


# ------------------------------------------------------------------------------ pretrained weights at any size


def test_small_input_model_loads_paper_weights_and_reports_the_reshaped_stem():
    tv = torchvision.models.resnet18(weights=None).state_dict()
    m = create_model("resnet18", num_classes=10, in_chans=1, small_input=True)
    cnnzoo.load_torchvision_weights(m, tv)  # the README's line, as written
    r = m.pretrained_report
    assert r.resized == ["conv1.weight (64, 3, 7, 7) -> (64, 1, 3, 3)"]
    assert "small_input=True" in r.summary() and "fc.weight" in r.reinitialised
    assert torch.equal(m.layer3[0].conv1.weight, tv["layer3.0.conv1.weight"])
    with pytest.raises(ValueError, match="do not fit"):  # strict only where asked
        cnnzoo.load_torchvision_weights(create_model("resnet18", small_input=True), tv, strict=True)


def test_pretrained_weights_win_over_the_small_input_default(tmp_path):
    p = tmp_path / "resnet18-tv.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), p)
    plan = plan_input("resnet18", 28, pretrained=str(p))
    assert plan.kwargs == {"small_input": False} and plan.image_size == 112
    assert "resizing 28px images to 112px" in plan.note
    assert plan_input("resnet18", 28, {"small_input": True}, pretrained=str(p)).kwargs == {"small_input": True}
    assert plan_input("resnet18", 28).kwargs == {"small_input": True}  # no weights: the small-image plan
    # cnnzoo weights keep the architecture they were trained with.
    save_weights(tmp_path / "small.safetensors", create_model("resnet18", num_classes=10, small_input=True))
    assert plan_input("resnet18", 28, pretrained=str(tmp_path / "small.safetensors")).kwargs["small_input"] is True


def test_auxiliary_heads_load_both_ways():
    without = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).state_dict()
    with_aux = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False).state_dict()
    g = cnnzoo.load_torchvision_weights(create_model("googlenet", num_classes=10), without)
    assert g.pretrained_report.new_aux_heads == ["aux1", "aux2"]
    g2 = cnnzoo.load_torchvision_weights(create_model("googlenet", aux_logits=False), with_aux)
    assert any(k.startswith("aux1.") for k in g2.pretrained_report.skipped)
    assert torch.equal(g2.fc.weight, with_aux["fc.weight"])


def test_pretrained_run_without_model_builds_the_runs_model(tmp_path, capsys):
    src = _source_run(tmp_path, "bn_convnet", 1, "--precision", "fp32")
    out = tmp_path / "next"
    assert main(["train", "--pretrained", str(src), "--data", "digits", "--epochs", "1", "--output", str(out),
                 "--no-progress", "--precision", "fp32"]) == 0
    assert json.loads((out / "results.json").read_text())["model"] == "bn_convnet"


def test_finetune_defaults_lower_stage2_rate_keep_best_and_one_curve(tmp_path, capsys):
    src = _source_run(tmp_path, "lenet5", 1, "--precision", "fp32")
    out = tmp_path / "ft"
    assert main(["finetune", "--pretrained", str(src), "--data", "digits", "--epochs", "2", "--head-epochs", "1",
                 "--head-lr", "0.02", "--output", str(out), "--no-progress", "--precision", "fp32"]) == 0
    text = capsys.readouterr().out
    assert "stage 2: training everything, 2 epochs at lr 0.002" in text
    res = json.loads((out / "results.json").read_text())
    assert res["model"] == "lenet5"  # --pretrained RUN without --model
    assert all(s["weights_epoch"] == s["best_epoch"] for s in res["stages"])
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("stage,epoch") and [r.split(",")[:2] for r in rows[1:]] == [["1", "1"], ["2", "2"],
                                                                                        ["2", "3"]]
    assert (out / "curves.png").is_file()


def test_keep_best_and_early_stopping(tmp_path, capsys):
    from cnnzoo.io import load_weights
    from cnnzoo.train.config import load_config
    from cnnzoo.train.trainer import fit

    cfg = load_config(None, {"model.name": "lenet5", "data.name": "digits", "train.epochs": 6, "optim.lr": 1e-12,
                             "schedule.name": "constant", "train.early_stopping": 2, "train.keep_best": True,
                             "train.precision": "fp32", "run.output": str(tmp_path / "es"), "run.progress": "none"})
    res = fit(cfg)
    # A rate of 1e-12 leaves the predictions as they were: epoch 1 stays the best, and two epochs later it stops.
    assert res["epochs"] == 3 and res["best_epoch"] == 1 and res["weights_epoch"] == 1
    assert "early stopping after epoch 3" in capsys.readouterr().out
    best, _ = load_weights(tmp_path / "es" / "checkpoints" / "best" / "model.safetensors")
    final, _ = load_weights(tmp_path / "es" / "model.safetensors")
    assert all(torch.equal(best[k], final[k]) for k in best)
    from cnnzoo.errors import UserError

    with pytest.raises(UserError, match="set data.val_split > 0"):
        load_config(None, {"train.keep_best": True, "data.val_split": 0.0})


def test_finetune_a_torchvision_file_end_to_end(tmp_path, capsys):
    """The practitioner's path: torchvision's ResNet-18 file, small grey images, two stages; the report says what
    loaded, what was adapted and why the images were resized."""
    p = tmp_path / "resnet18-tv.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), p)
    out = tmp_path / "ft"
    assert main(["finetune", "--model", "resnet18", "--pretrained", str(p), "--data", "digits", "--epochs", "1",
                 "--head-epochs", "1", "--output", str(out), "--no-progress", "--precision", "fp32",
                 "--set", "data.per_class=5"]) == 0
    text = capsys.readouterr().out
    assert "keeping it (no small_input=True) and resizing 8px images to 32px" in text
    assert f"loaded 120 tensors from {p}; adapted conv1.weight to the input channels; re-initialised fc.bias" in text
    res = json.loads((out / "results.json").read_text())
    assert res["image_size"] == [32, 32] and len(res["stages"]) == 2
