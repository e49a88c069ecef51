"""Transfer learning: pretrained loading from every source, head/input adaptation, freezing, fine-tuning."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from cnnzoo import create_model
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


def test_finetune_cli_two_stages(tmp_path, capsys):
    src = tmp_path / "src"
    assert main(["train", "--model", "lenet5", "--data", "digits", "--epochs", "2", "--output", str(src),
                 "--no-progress", "--set", "run.tensorboard=false"]) == 0
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
