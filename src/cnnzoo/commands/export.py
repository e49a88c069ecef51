"""``cnnzoo export RUN_DIR|WEIGHTS|MODEL --format onnx|pt2``: a checked, BatchNorm-folded inference file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Tuple


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX or a torch.export program (.pt2)",
                       description="Fold BatchNorm into the convolutions, export with a dynamic batch dimension, "
                       "and check the file (ONNX: onnx.checker and onnxruntime against PyTorch; pt2: loaded back "
                       "and run) before it takes the output name. A registry name exports random weights.")
    p.add_argument("model", metavar="RUN_DIR|WEIGHTS|MODEL",
                   help="a run directory, a .safetensors file, or a registered model name")
    p.add_argument("--format", "-f", choices=["onnx", "pt2"], default="onnx", help="default: onnx")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="default: model.onnx / model.pt2 in the run directory, the weights' name with the new "
                   "suffix beside a weights file, or MODEL.onnx / MODEL.pt2 in the current directory")
    p.add_argument("--input", metavar="CxHxW",
                   help="input channels and size, e.g. 1x28x28 (HxW alone keeps the channels; a leading N sets "
                   "the traced batch). Default: the size the run was trained at, else the model's default size")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--no-check", action="store_true", help="skip verifying the written file")
    p.set_defaults(func=run)


def parse_input(text: str) -> Tuple[Optional[int], Optional[int], int, int]:
    """``"1x28x28"`` -> (None, 1, 28, 28); ``"28x28"`` -> (None, None, 28, 28); ``"2x3x32x32"`` -> (2, 3, 32, 32)."""
    from ..errors import UserError

    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = [int(d) for d in parts]
    except ValueError:
        dims = []
    if len(dims) not in (2, 3, 4) or min(dims) < 1:
        raise UserError(f"--input must look like CxHxW (e.g. 1x28x28), HxW or NxCxHxW with positive sizes; "
                        f"got {text!r}")
    padded = [None] * (4 - len(dims)) + dims
    return padded[0], padded[1], padded[2], padded[3]


def default_output(spec: str, registry: bool, fmt: str) -> Path:
    suffix = "." + fmt
    if registry:
        return Path.cwd() / f"{spec}{suffix}"
    from ..io import RunDir

    p = Path(spec)
    return RunDir(p).export(suffix) if p.is_dir() else p.with_suffix(suffix)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..export import DEFAULT_OPSET, ExportCheckError, export_model
    from ..inference import run_meta
    from ..builder import model_info
    from ..registry import closest_models, is_model
    from ..builder import load_model

    if args.opset is not None and args.format != "onnx":
        raise UserError("--opset applies to --format onnx only")
    n, c, h, w = parse_input(args.input) if args.input else (None, None, None, None)
    registry = is_model(args.model) and not Path(args.model).exists()
    if not registry and not Path(args.model).exists():
        close = closest_models(args.model)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `cnnzoo list` shows the model names"
        raise UserError(f"{args.model!r} is not a run directory, a weights file or a model name{hint}")
    if registry:
        chans = c or model_info(args.model).input_size[0]
        model, meta = load_model(args.model, in_chans=chans)
    else:
        model, meta = load_model(args.model)
    rm = run_meta(meta, model)
    shape = (n or 1, c or rm["in_chans"], h or int(rm["image_size"][0]), w or int(rm["image_size"][1]))
    output = Path(args.output) if args.output else default_output(args.model, registry, args.format)
    try:
        report = export_model(model, args.format, output, shape, check=not args.no_check,
                              overwrite=args.overwrite, opset=args.opset or DEFAULT_OPSET)
    except ExportCheckError as e:  # nothing was written; say why in one line
        raise UserError(f"export failed: {e}") from e
    checker = "onnxruntime" if args.format == "onnx" else "torch.export.load"
    print(f"wrote: {report['path']}")
    print(f"format: {args.format}" + (f" (opset {report['opset']})" if report["opset"] else ""))
    print(f"model: {getattr(model, 'model_name', '') or type(model).__name__}")
    print(f"input: {'x'.join(map(str, report['input_shape']))} (batch dimension dynamic)")
    print(f"bytes: {report['bytes']}")
    print(f"folded_bn: {report['folded_bn']} ({report['fold_method']})")
    if report["max_abs_diff"] is None:
        print("max_abs_diff: not checked")
    else:
        print(f"max_abs_diff: {report['max_abs_diff']:.3g} ({checker} vs PyTorch, batch {report['check_batch']})")
    print(f"export_seconds: {report['seconds']:.2f}")
    return 0
