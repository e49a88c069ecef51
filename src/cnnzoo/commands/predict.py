"""``cnnzoo predict RUN_DIR IMAGE...``: the top-k classes of each image."""

from __future__ import annotations

import argparse
import json

from ..choices import TTA_MODES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with a trained model",
                       description="Print the top-k classes with probabilities for each image. IMAGE is a file "
                       "(PNG, JPEG, ...) or DATASET:INDEX such as fashion-mnist:123.")
    p.add_argument("run", metavar="RUN_DIR|WEIGHTS", help="a run directory or a .safetensors file")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", "-k", type=int, default=5)
    p.add_argument("--tta", choices=TTA_MODES, help="average over test-time views")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_image
    from ..errors import UserError
    from ..inference import prepare, run_meta, top_k
    from ..builder import load_model
    from ..train.evaluate import predict_logits

    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}")
    model, meta = load_model(args.run)
    rm = run_meta(meta, model)
    out = []
    for spec in args.images:
        img = load_image(spec)
        _, x = prepare(img, rm)
        with torch.no_grad():
            probs = predict_logits(model, x, args.tta).exp()
        out.append({"image": spec, "top": top_k(probs, rm["classes"], args.top_k)[0]})
    if args.format == "json":
        print(json.dumps([{"image": o["image"], "top": [{"class": c, "prob": p} for c, p in o["top"]]} for o in out],
                         indent=2))
        return 0
    for o in out:
        print(o["image"])
        for c, p in o["top"]:
            print(f"  {p:7.2%}  {c}")
    return 0
