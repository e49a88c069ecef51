"""Write ``src/cnnzoo/weights.json``: the pretrained weights ``cnnzoo weights`` lists and ``pretrained=True`` loads.

For every cnnzoo model with a torchvision twin (``cnnzoo.model_info(name).torchvision``) it reads the installed
torchvision's weight enums, all locally (nothing is downloaded): each weights set's ``url`` (whose file name
carries the sha256 prefix torch.hub checks), ``meta`` (``num_params``, ``_metrics``, ``_file_size``, ``recipe``)
and ``transforms()`` (resize, crop, mean, std, interpolation). A set whose parameter count differs from
``cnnzoo.count_params(name)`` (or, for a model with auxiliary heads, from the count without them) is skipped with
the reason printed. ``IMAGENET1K_V1`` becomes tag ``tv1``, ``V2`` ``tv2``; ``imagenet`` is torchvision's
``DEFAULT``.

Then the timm weights of architectures torchvision lacks whose architecture is ours exactly (``TIMM`` below, each
fact with its reference): their state dicts were compared, key by key and shape by shape, with timm's models built
on the meta device (timm 1.0.15, ``pip download timm``; timm is not a dependency of cnnzoo).

    python benchmarks/make_weights_catalog.py            # write the catalogue
    python benchmarks/make_weights_catalog.py --check    # exit 1 if the stored one differs
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any, Dict, List, Tuple

import torch
import torchvision
from torchvision.models import get_model_weights

import cnnzoo
from cnnzoo.hub import CATALOG_FILE, WeightsEntry
from cnnzoo.io import write_or_check

TV_LICENCE = "BSD-3-Clause"
TV_LICENCE_NOTE = ("torchvision (the code that distributes these weights) is BSD-3-Clause; its README ('Pre-trained "
                   "Model License') adds that pre-trained models may carry terms derived from their training data: "
                   "ImageNet's terms (non-commercial research) apply to the data")
TIMM_LICENCE_NOTE = ("apache-2.0 is the licence on the weights' Hugging Face model card; timm's author notes that "
                     "weights trained on ImageNet are likely governed by the dataset's terms (non-commercial research)")
RESULTS_CSV = ("https://github.com/huggingface/pytorch-image-models/blob/main/results/results-imagenet.csv "
               "(commit 0173a139)")
TV_SOURCE = f"torchvision {torchvision.__version__} weight enums (url, meta, transforms()), read locally"

# timm weights for architectures torchvision lacks. Each entry's "facts" says where each number comes from.
# scale: timm's eval resize is floor(crop / crop_pct).
TIMM: List[Dict[str, Any]] = [
    dict(model="xception", tag="tf_in1k", origin="legacy_xception.tf_in1k",
         url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/xception-43020ad28.pth",
         sha256="43020ad28", top1=79.040, top5=94.382, timm_params_m=22.86, crop=299, crop_pct=0.8975,
         input_size=(3, 299, 299), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic",
         licence="apache-2.0", recipe="https://github.com/keras-team/keras (Keras Xception, ported by Cadene)",
         notes="Keras's ImageNet weights ported to PyTorch (Cadene's pretrainedmodels), kept by timm as a release "
               "file, not on the Hub; its parameter names are ours",
         facts={"url": "timm 1.0.31 default_cfgs['legacy_xception.tf_in1k'] (no hf_hub_id there)",
                "sha256": "the file name's hash part (torch.hub convention, checked by torch 0.4's model_zoo that "
                          "pretrainedmodels loaded it with); not verified by a download here",
                "top1/top5/params": RESULTS_CSV + ": 79.040 / 94.382 at 299 px, crop 0.897, 22.86 M",
                "preprocessing": "timm pretrained_cfg: crop_pct 0.8975, bicubic, mean = std = 0.5",
                "licence": "huggingface.co/lucid-dl/xception (a port of timm/legacy_xception.tf_in1k) states "
                           "apache-2.0 inherited from the original weights; Keras Applications code is Apache-2.0",
                "names": "state dict keys and shapes equal timm.create_model('legacy_xception') (timm 1.0.15)"}),
    dict(model="seresnet50", tag="ra2_in1k", origin="seresnet50.ra2_in1k", hf_hub_id="timm/seresnet50.ra2_in1k",
         hf_filename="model.safetensors", top1=81.284, top5=95.652, timm_params_m=28.09, crop=288, crop_pct=0.95,
         input_size=(3, 224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bicubic",
         licence="apache-2.0", recipe="https://huggingface.co/timm/seresnet50.ra2_in1k (RandAugment RA2 recipe)",
         notes="trained at 224 px, evaluated at 288 px (timm's test_input_size); its parameter names are ours",
         facts={"hf_hub_id": "timm 1.0.31 default_cfgs['seresnet50.ra2_in1k'] (hf_hub_id='timm/')",
                "top1/top5/params": RESULTS_CSV + ": 81.284 / 95.652 at 288 px, crop 0.95, 28.09 M",
                "preprocessing": "timm pretrained_cfg: input 224, test_input_size 288, test_crop_pct 0.95, bicubic, "
                                 "ImageNet mean/std",
                "licence": "huggingface.co/timm/seresnet50.ra2_in1k model card: apache-2.0",
                "names": "state dict keys and shapes equal timm.create_model('seresnet50') (timm 1.0.15)"}),
    dict(model="seresnet50", tag="a1_in1k", origin="seresnet50.a1_in1k", hf_hub_id="timm/seresnet50.a1_in1k",
         hf_filename="model.safetensors", top1=81.102, top5=95.120, timm_params_m=28.09, crop=288, crop_pct=1.0,
         input_size=(3, 224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bicubic",
         licence="apache-2.0", recipe="https://arxiv.org/abs/2110.00476 (ResNet strikes back, A1)",
         notes="trained at 224 px, evaluated at 288 px (timm's test_input_size); its parameter names are ours",
         facts={"hf_hub_id": "timm 1.0.31 default_cfgs['seresnet50.a1_in1k'] (hf_hub_id='timm/')",
                "top1/top5/params": RESULTS_CSV + ": 81.102 / 95.120 at 288 px, crop 1.0, 28.09 M",
                "preprocessing": "timm pretrained_cfg: input 224, test_input_size 288, test_crop_pct 1.0, bicubic, "
                                 "ImageNet mean/std",
                "licence": "huggingface.co/timm/seresnet50.a1_in1k model card: apache-2.0",
                "names": "state dict keys and shapes equal timm.create_model('seresnet50') (timm 1.0.15)"}),
    dict(model="mixer_b16_224", tag="goog_in21k_ft_in1k", origin="mixer_b16_224.goog_in21k_ft_in1k",
         hf_hub_id="timm/mixer_b16_224.goog_in21k_ft_in1k", hf_filename="model.safetensors", top1=76.602,
         top5=92.224, timm_params_m=59.88, crop=224, crop_pct=0.875, input_size=(3, 224, 224), mean=(0.5, 0.5, 0.5),
         std=(0.5, 0.5, 0.5), interpolation="bicubic", licence="apache-2.0",
         recipe="https://github.com/google-research/vision_transformer (pre-trained on ImageNet-21k, fine-tuned "
                "on ImageNet-1k)",
         notes="Google's MLP-Mixer weights (ImageNet-21k pre-training); its parameter names are ours",
         facts={"hf_hub_id": "timm 1.0.31 default_cfgs['mixer_b16_224.goog_in21k_ft_in1k'] (hf_hub_id='timm/')",
                "top1/top5/params": RESULTS_CSV + ": 76.602 / 92.224 at 224 px, crop 0.875, 59.88 M",
                "preprocessing": "timm pretrained_cfg: crop_pct 0.875, bicubic, mean = std = 0.5",
                "licence": "huggingface.co/timm/mixer_b16_224.goog_in21k_ft_in1k model card: apache-2.0",
                "names": "state dict keys and shapes equal timm.create_model('mixer_b16_224') (timm 1.0.15)"}),
    dict(model="mobilenet_v1", tag="ra4_e3600_r224_in1k", origin="mobilenetv1_100.ra4_e3600_r224_in1k",
         hf_hub_id="timm/mobilenetv1_100.ra4_e3600_r224_in1k", hf_filename="model.safetensors", top1=75.382,
         top5=92.312, timm_params_m=4.23, crop=224, crop_pct=0.875, input_size=(3, 224, 224), mean=(0.5, 0.5, 0.5),
         std=(0.5, 0.5, 0.5), interpolation="bicubic", licence="apache-2.0", convert="timm",
         recipe="https://huggingface.co/blog/rwightman/mobilenet-baselines",
         notes="the shapes are ours but the names are timm's (conv_stem, blocks.*): needs a conversion cnnzoo does "
               "not have yet; 76.094 / 93.004 at 256 px (crop 0.95)",
         facts={"hf_hub_id": "huggingface.co/timm/mobilenetv1_100.ra4_e3600_r224_in1k (its config.json)",
                "top1/top5/params": "timm README (Aug 2024, 'MobileNet-V1 and EfficientNet-B0 baseline "
                                    "challenges'): 75.382 / 92.312 at 224 px, 4.23 M",
                "preprocessing": "the Hub config.json: crop_pct 0.875, bicubic, mean = std = 0.5",
                "licence": "huggingface.co/timm/mobilenetv1_100.ra4_e3600_r224_in1k model card: apache-2.0",
                "names": "same multiset of shapes as timm.create_model('mobilenetv1_100') (timm 1.0.15), other "
                         "names"}),
]


def _own_counts(name: str) -> Tuple[int, int]:
    """Our parameter count, with and without the auxiliary heads (torchvision counts GoogLeNet without them)."""
    with torch.device("meta"):
        model = cnnzoo.create_model(name)
    prefixes = tuple(f"{h}." for h in getattr(model, "aux_head_names", lambda: ())())
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    body = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and not n.startswith(prefixes))
    return total, body


def _tag(enum_name: str) -> str:
    found = re.fullmatch(r"IMAGENET1K_V(\d+)", enum_name)
    if not found:
        raise SystemExit(f"unexpected torchvision weights {enum_name}: give it a tag in {__file__}")
    return f"tv{found.group(1)}"


def torchvision_entries(skipped: List[Dict[str, str]]) -> List[WeightsEntry]:
    out: List[WeightsEntry] = []
    for name in cnnzoo.list_models():
        tv = cnnzoo.model_info(name).torchvision
        if not tv:
            continue
        total, without_aux = _own_counts(name)
        enum = get_model_weights(tv)
        for w in enum:
            meta, t = w.meta, w.transforms()
            origin = f"{enum.__name__}.{w.name}"
            n = meta["num_params"]
            metrics = meta["_metrics"]["ImageNet-1K"]
            if not re.fullmatch(r"IMAGENET1K_V\d+", w.name) or math.isnan(metrics["acc@1"]):
                reason = f"not a classifier's weights (no ImageNet accuracy): {' '.join(meta.get('_docs', '').split())}"
                print(f"skipped {name} {origin}: {reason}", file=sys.stderr)
                skipped.append({"model": name, "origin": origin, "reason": reason})
                continue
            if n not in (total, without_aux):
                reason = f"torchvision counts {n:,} parameters, cnnzoo.count_params({name!r}) {total:,}"
                print(f"skipped {name} {origin}: {reason}", file=sys.stderr)
                skipped.append({"model": name, "origin": origin, "reason": reason})
                continue
            prefix = re.search(r"-([a-f0-9]+)\.pth$", w.url)
            if not prefix:
                raise SystemExit(f"{w.url}: no sha256 prefix in the file name")
            notes = []
            if n != total:
                notes.append(f"params counts the network without its auxiliary heads (with them: {total:,}); the "
                             "file holds untrained auxiliary heads too")
            mean, std = tuple(t.mean), tuple(t.std)
            if tv in ("googlenet", "inception_v3"):
                # torchvision builds these with transform_input=True, which turns ImageNet-normalised input into
                # (x - 0.5) / 0.5: with cnnzoo's default (transform_input=False) that normalisation is the input.
                notes.append(f"torchvision feeds it ImageNet mean/std with transform_input=True; for cnnzoo's "
                             f"default model (transform_input=False) the equivalent is mean = std = 0.5, or "
                             f"create_model({name!r}, transform_input=True) with mean {list(mean)} std {list(std)}")
                mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
            crop, resize = t.crop_size[0], t.resize_size[0]
            out.append(WeightsEntry(
                model=name, tag=_tag(w.name), source="torchvision", url=w.url, sha256=prefix.group(1),
                top1=metrics["acc@1"], top5=metrics["acc@5"], params=n, file_size_mb=meta["_file_size"],
                licence=TV_LICENCE, recipe=meta.get("recipe", ""), input_size=(3, crop, crop), resize_size=resize,
                crop_size=crop, mean=mean, std=std, interpolation=t.interpolation.value, default=w is enum.DEFAULT,
                origin=origin, licence_note=TV_LICENCE_NOTE, notes="; ".join(notes)))
    return out


def timm_entries(skipped: List[Dict[str, str]]) -> List[WeightsEntry]:
    out: List[WeightsEntry] = []
    best: Dict[str, float] = {}
    for d in TIMM:
        if d.get("convert") is None:
            best[d["model"]] = max(best.get(d["model"], -1.0), d["top1"])
    for d in TIMM:
        d = dict(d)
        name = d.pop("model")
        total = cnnzoo.count_params(name)
        params_m, crop, crop_pct = d.pop("timm_params_m"), d.pop("crop"), d.pop("crop_pct")
        if round(total / 1e6, 2) != params_m:
            reason = f"timm lists {params_m} M parameters, cnnzoo.count_params({name!r}) {total:,}"
            print(f"skipped {name} {d['origin']}: {reason}", file=sys.stderr)
            skipped.append({"model": name, "origin": d["origin"], "reason": reason})
            continue
        with torch.device("meta"):
            sd = cnnzoo.create_model(name).state_dict()
        size_mb = sum(v.numel() * v.element_size() for v in sd.values() if v.is_floating_point()) / 2 ** 20
        facts = dict(d.pop("facts"))
        facts["file_size_mb"] = "estimated: float32 tensors of the state dict (the file is a little larger)"
        is_best = d.get("convert") is None and d["top1"] == best.get(name)
        if not best.get(name) and d.get("convert"):  # the model's only weights: its default, refused until converted
            is_best = True
        out.append(WeightsEntry(model=name, source="timm", params=total, file_size_mb=round(size_mb, 3),
                                crop_size=crop, resize_size=math.floor(crop / crop_pct), default=is_best,
                                licence_note=TIMM_LICENCE_NOTE, facts=facts, **d))
    return out


def build() -> Dict[str, Any]:
    skipped: List[Dict[str, str]] = []
    entries = torchvision_entries(skipped) + timm_entries(skipped)
    for model in {e.model for e in entries}:
        defaults = [e.tag for e in entries if e.model == model and e.default]
        assert len(defaults) == 1, f"{model}: defaults {defaults}"
    return {
        "generated_by": "python benchmarks/make_weights_catalog.py",
        "sources": {
            "torchvision": TV_SOURCE,
            "timm": "hand-written in benchmarks/make_weights_catalog.py (TIMM), each entry's 'facts' naming its "
                    "references; parameter counts checked against cnnzoo.count_params",
        },
        "tags": "tvN = torchvision's IMAGENET1K_VN; timm's own tag for timm weights; 'imagenet' = the entry with "
                "default true (torchvision's DEFAULT, else the best top-1)",
        "skipped": skipped,
        "weights": [e.as_dict() for e in entries],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the stored catalogue is not what this writes")
    args = ap.parse_args()
    data = build()
    n_tv = sum(e["source"] == "torchvision" for e in data["weights"])
    ok, message = write_or_check(CATALOG_FILE, json.dumps(data, indent=1) + "\n", args.check, data["generated_by"])
    print(message if args.check else
          f"{message}: {n_tv} torchvision + {len(data['weights']) - n_tv} timm weights sets, {len(data['skipped'])} skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
