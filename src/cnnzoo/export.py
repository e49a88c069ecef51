"""Export a model for inference outside cnnzoo: ONNX, or a ``torch.export`` program (``.pt2``).

Both formats get the BatchNorm-folded eval model (:mod:`cnnzoo.fuse`) with a dynamic batch
dimension; channels and image size are fixed at ``input_shape``. With ``check=True`` the written file
is verified before it takes the output name: ONNX passes ``onnx.checker`` and onnxruntime reproduces
PyTorch's output; a ``.pt2`` is loaded back with ``torch.export.load`` and run. The check runs at a
batch one larger than the traced one, so a batch size frozen into the graph is caught.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``) at opset 17: it needs
nothing beyond ``onnx``/``onnxruntime`` (the ``export`` extra), exports a ResNet in about a second,
and the models' Python input checks (``ZooModel.check_input``) read only the static channel and size
dimensions, so tracing them is exact. (The dynamo exporter would need ``onnxscript`` and takes ~10 s
per model on a small CPU.)
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .builder import min_input_side
from .errors import UserError
from .io import atomic_write
from .fuse import fold_batchnorm_report

__all__ = ["FORMATS", "DEFAULT_OPSET", "ExportCheckError", "export_model", "default_input_shape"]

FORMATS = ("onnx", "pt2")
DEFAULT_OPSET = 17
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2"}


class ExportCheckError(RuntimeError):
    """The exported file does not reproduce the PyTorch model (nothing is written to the output)."""


def default_input_shape(model: nn.Module) -> Tuple[int, int, int, int]:
    """``(1, C, H, W)`` from the model's registry entry (its default input size) and ``in_chans``."""
    from .builder import model_info
    from .registry import is_model

    name = getattr(model, "model_name", "")
    if not name or not is_model(name):
        raise UserError("cannot tell this model's input size; pass input_shape=(1, C, H, W)")
    _, h, w = model_info(name).input_size
    return 1, int(getattr(model, "in_chans", model_info(name).input_size[0])), int(h), int(w)


def _check_shape(model: nn.Module, shape: Sequence[int]) -> Tuple[int, int, int, int]:
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise UserError(f"input_shape must be four integers N, C, H, W; got {shape!r}") from None
    if len(dims) != 4 or min(dims) < 1:
        raise UserError(f"input_shape must be four positive integers N, C, H, W; got {tuple(shape)!r}")
    chans = getattr(model, "in_chans", None)
    label = getattr(model, "model_name", "") or type(model).__name__
    if chans is not None and dims[1] != chans:
        raise UserError(f"{label} takes {chans}-channel input, but input_shape has {dims[1]} channels")
    least = min_input_side(model)
    if min(dims[2:]) < least:
        raise UserError(f"{label} needs inputs of at least {least}x{least}, got {dims[2]}x{dims[3]}")
    return dims  # type: ignore[return-value]


def _output_name(model: nn.Module) -> str:
    return "features" if getattr(model, "num_classes", 1) == 0 else "logits"


def _export_onnx(model: nn.Module, x: torch.Tensor, path: Path, opset: int) -> None:
    out = _output_name(model)
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation, and tracing flags the Python shape
        # checks as constants: both expected here (the checks read only static dimensions).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, opset_version=opset,
            input_names=["input"], output_names=[out],
            dynamic_axes={"input": {0: "batch"}, out: {0: "batch"}},
        )


def _export_pt2(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    # torch.export treats an example dimension of size 1 as a constant, so trace at batch >= 2.
    if x.shape[0] < 2:
        x = torch.cat([x, x])
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},), strict=False)
    except Exception as e:  # torch's message names the offending line of the model
        raise ExportCheckError(f"torch.export could not trace the model with a dynamic batch: {e}") from e
    torch.export.save(program, str(path))


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path), full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


def _run_pt2(path: Path, x: torch.Tensor) -> torch.Tensor:
    return torch.export.load(str(path)).module()(x)


def _require_onnx(check: bool) -> None:
    need = ["onnx", "onnxruntime"] if check else []
    for mod in need:
        try:
            __import__(mod)
        except ImportError:
            raise UserError(f"ONNX export with check needs {mod}: pip install 'cnnzoo[export]' "
                            "(or pass check=False / --no-check)") from None


def export_model(
    model: nn.Module,
    fmt: str,
    output: Union[str, os.PathLike],
    input_shape: Optional[Sequence[int]] = None,
    check: bool = True,
    overwrite: bool = False,
    opset: int = DEFAULT_OPSET,
    fold_bn: bool = True,
    atol: float = 1e-4,
) -> Dict[str, Any]:
    """Write ``model`` as ONNX or a ``torch.export`` program, BatchNorm folded, batch dimension dynamic.

    The model itself is not changed (a folded copy in eval mode is exported, on the CPU in float32).
    The file is written under a temporary name in the output's folder, checked, then renamed, so
    the output path holds either nothing or a complete, verified file.

    Args:
        model: the model; its eval-mode forward is exported.
        fmt: ``"onnx"`` or ``"pt2"``.
        output: the file to write; its folder is created if missing.
        input_shape: ``(N, C, H, W)`` of the example input: C, H and W are fixed in the export, N is
            only the traced batch (the batch stays dynamic). Default ``(1, in_chans, H, W)`` with the
            registered model's default input size.
        check: verify the written file on random input (see the module docstring) before renaming it.
        overwrite: replace an existing output file; otherwise an existing file is an error.
        opset: the ONNX opset (ignored for ``pt2``).
        fold_bn: fold BatchNorm into the preceding convolutions first.
        atol: the largest accepted ``max |exported - PyTorch|``, scaled by ``max(1, max |PyTorch|)``
            so that models with large logits are judged by float32's relative precision.

    Returns:
        A report: ``path``, ``format``, ``bytes``, ``input_shape``, ``opset`` (``None`` for pt2),
        ``folded_bn`` (pairs folded), ``fold_method``, ``max_abs_diff`` (``None`` without check),
        ``check_batch``, ``seconds`` (export time, check excluded).

    Raises:
        UserError: an unknown format, an existing output without ``overwrite``, a bad input shape,
            or a missing ``onnx``/``onnxruntime``.
        ExportCheckError: the exported file does not reproduce the model.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(output)
    if out.is_dir():
        raise UserError(f"{out} is a directory; give a file name such as {out / ('model' + SUFFIX[fmt])}")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    if fmt == "onnx":
        _require_onnx(check)
    shape = _check_shape(model, input_shape if input_shape is not None else default_input_shape(model))

    if fold_bn:
        folded, fold = fold_batchnorm_report(model)
        n_folded, method = fold.folded, fold.method
    else:
        folded, n_folded, method = copy.deepcopy(model).eval(), 0, "none"
    folded = folded.to("cpu", torch.float32)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)

    report: Dict[str, Any] = {"path": str(out), "format": fmt}
    check_batch = shape[0] + 1
    timing: Dict[str, Any] = {"diff": None}

    def write_and_check(tmp_name: str) -> None:
        # The file is checked under its temporary name: a failing export never replaces anything.
        tmp = Path(tmp_name)
        start = time.perf_counter()
        if fmt == "onnx":
            _export_onnx(folded, x, tmp, opset)
        else:
            _export_pt2(folded, x, tmp)
        timing["seconds"] = time.perf_counter() - start
        if check:
            xc = torch.randn((check_batch,) + shape[1:], generator=gen)
            ref = _reference(model, xc)
            with torch.no_grad():
                got = _run_onnx(tmp, xc) if fmt == "onnx" else _run_pt2(tmp, xc)
            if tuple(got.shape) != tuple(ref.shape):
                raise ExportCheckError(f"exported model gives shape {tuple(got.shape)} at batch {check_batch}, "
                                       f"PyTorch {tuple(ref.shape)}: the batch dimension is not dynamic")
            diff = float((got.float() - ref).abs().max())
            scale = max(1.0, float(ref.abs().max()))
            if not diff <= atol * scale:
                raise ExportCheckError(f"exported model differs from PyTorch by {diff:.3g} "
                                       f"(allowed {atol * scale:.3g}); {out.name} not written")
            timing["diff"] = diff

    atomic_write(out, write_and_check)
    diff, seconds = timing["diff"], timing["seconds"]
    report.update(
        bytes=out.stat().st_size,
        input_shape=list(shape),
        opset=opset if fmt == "onnx" else None,
        folded_bn=n_folded,
        fold_method=method,
        max_abs_diff=diff,
        check_batch=check_batch if check else None,
        seconds=round(seconds, 3),
    )
    return report


def _reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The unfolded model's eval output on ``x`` (on the model's device), its training flags restored."""
    flags = {m: m.training for m in model.modules()}
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    try:
        model.eval()
        with torch.no_grad():
            y = model(x.to(device, dtype))
    finally:
        for m, t in flags.items():
            m.training = t
    if not isinstance(y, torch.Tensor):
        raise ExportCheckError(f"the model's eval forward returns {type(y).__name__}, not one tensor")
    return y.detach().to("cpu", torch.float32)
