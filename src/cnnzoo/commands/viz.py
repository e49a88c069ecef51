"""``cnnzoo viz MODEL|RUN_DIR --image IMAGE``: feature maps, first-layer filters and Grad-CAM as PNG files."""

from __future__ import annotations

import argparse

WHAT = ("activations", "filters", "gradcam")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "viz", help="feature maps, filters and Grad-CAM of one image (PNG)",
        description="Feature-map grids of chosen layers, the first convolution's filters, and a Grad-CAM heat map "
        "over the image for the predicted (or a chosen) class. The image is centre-cropped to the model's aspect "
        "ratio, resized and normalised as the run was trained. See docs/viz.md.")
    p.add_argument("model", metavar="MODEL|RUN_DIR",
                   help="a run directory or .safetensors file (trained), or a registry name (random weights)")
    p.add_argument("--image", required=True, metavar="IMAGE",
                   help="an image file, DATASET:INDEX (fashion-mnist:123) or skimage:NAME (skimage:chelsea)")
    p.add_argument("--layer", nargs="+", metavar="NAME",
                   help="module names (as in `cnnzoo summary`) for the feature maps and Grad-CAM (default: the "
                        "last module of each stage for the maps, the forward_features output for Grad-CAM)")
    p.add_argument("--what", nargs="+", choices=WHAT, default=list(WHAT), help="what to draw (default: all three)")
    p.add_argument("--output", "-o", metavar="DIR", help="where to write (default RUN_DIR/viz, or viz/MODEL)")
    p.add_argument("--class", dest="cls", metavar="N|NAME", help="the class Grad-CAM explains (default: predicted)")
    p.add_argument("--max-maps", type=int, default=32, metavar="N", help="feature maps per layer (default 32)")
    p.add_argument("--data-dir", help="where the dataset of a DATASET:INDEX image is")
    p.add_argument("--kw", action="append", default=[], metavar="KEY=VALUE",
                   help="create_model argument for a registry name, read as YAML (e.g. --kw small_input=true)")
    p.set_defaults(func=run)


def _class_index(text, classes) -> int:
    from ..errors import UserError

    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    low = [c.lower() for c in classes]
    if str(text).lower() in low:
        return low.index(str(text).lower())
    raise UserError(f"--class {text!r} is neither a class index nor one of {', '.join(classes[:12])}"
                    + (" ..." if len(classes) > 12 else ""))


def run(args: argparse.Namespace) -> int:
    import re
    from pathlib import Path

    import torch

    from ..analysis.load import is_run, load_model
    from ..analysis.shapes import parse_kwargs
    from ..errors import UserError
    from ..inference import prepare, run_meta
    from ..viz.features import capture, default_layers, plot_feature_maps, plot_filters
    from ..viz.gradcam import grad_cam, plot_grad_cam
    from ..data import load_image

    if args.max_maps < 1:
        raise UserError(f"--max-maps must be at least 1, got {args.max_maps}")
    trained = is_run(args.model)
    model, meta = load_model(args.model, **({} if trained else parse_kwargs(args.kw)))
    rm = run_meta(meta, model)
    img = load_image(args.image, rm["in_chans"] if rm["in_chans"] in (1, 3) else None, data_dir=args.data_dir)
    shown, x = prepare(img, rm)
    name = Path(args.model).name if trained else args.model
    out = Path(args.output) if args.output else (Path(args.model) / "viz" if Path(args.model).is_dir()
                                                  else Path("viz") / name)
    if not trained:
        print(f"note: {args.model} is a registry name, so its weights are random: the pictures show an untrained "
              "network (give a run directory for a trained one)")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(args.image).stem if ":" not in args.image
                  else args.image.replace(":", "-"))
    written = []
    layers = args.layer or []
    logits, acts, first = capture(model, x, (layers or default_layers(model)) if "activations" in args.what else [])
    classes = rm["classes"]
    probs = torch.softmax(logits[0].float(), 0)
    top = int(probs.argmax())
    label = classes[top] if top < len(classes) else str(top)
    print(f"{args.image}: predicted {top} '{label}' (p = {float(probs[top]):.1%})")
    if not layers:  # the default stages: only those that end in a feature map (not the fully connected ones)
        acts = {n: a for n, a in acts.items() if a.dim() == 4}
    if "activations" in args.what:
        for n, a in acts.items():
            written.append(plot_feature_maps(a[0], out / f"{stem}_activations_{n}.png", f"{name} {n}",
                                             max_maps=args.max_maps))
    if "filters" in args.what:
        if first is None:
            print("no convolution in the forward pass: no filters to draw")
        else:
            written.append(plot_filters(first[1].weight, out / f"filters_{first[0]}.png", f"{name} {first[0]}"))
    if "gradcam" in args.what:
        cls = _class_index(args.cls, classes)
        for layer in layers or [None]:
            r = grad_cam(model, x, layer, cls)
            written.append(plot_grad_cam(shown, r, out / f"{stem}_gradcam_{r.layer}_class{r.class_index}.png",
                                         classes, name))
    for w in written:
        print(w)
    return 0
