#!/usr/bin/env python
"""The command outputs shown in README.md and docs/*.md: the list of them, and what writes and checks them.

In a page, each generated block sits between two HTML comments (invisible once rendered)::

    <!-- example: summary-lenet5 -->
    ```
    $ cnnzoo summary lenet5 --num-classes 10
    lenet5  (input 1x32x32, depth 3)
    ...
    ```
    <!-- /example -->

Everything between the two markers belongs to this script: edit the entry in ``EXAMPLES`` below, never the
block. ::

    python docs/examples.py --write             # run every example, rewrite every block
    python docs/examples.py --write --changed   # ... rewrite only the blocks whose content changed
    python docs/examples.py --check             # run them; exit 1 listing the blocks that differ, with a diff
    python docs/examples.py --check --only summary-lenet5 cost-head
    python docs/examples.py --list              # the examples, their pages and commands

How the commands run: in this process, through ``cnnzoo.cli.main(argv)``, stdout and stderr captured together
(as a terminal shows them), from a fresh temporary working directory (so ``runs/...`` never lands in the
repository), on the CPU (run as a script, ``CUDA_VISIBLE_DEVICES`` is emptied before torch is imported), with
``torch.set_num_threads(2)`` and ``torch.manual_seed(0)`` before every command. Pinning the threads matters:
on the CPU a training run is bit-for-bit repeatable with the same thread count and not across thread counts.
Set-up steps (``SETUPS``: a short training run on scikit-learn's bundled ``digits``, an image file) run once per
session, before the first example that needs them; one training run serves every example that reads it.

What the comparison ignores: output that cannot repeat -- images/s, seconds, the time stamp of a default run
directory (``runs/lenet5-digits-<time>``), the temporary directory's path -- and, per example, what its
``volatile`` patterns name (timings, random weights, the machine's name). The page keeps the real figures of
the last ``--write``; the comparison sees ``<N>`` on both sides. Everything else must match exactly.

Where an example needs what a machine may lack, it says so in ``needs`` and is skipped there:
``fashion-mnist`` (the files in /usr/share/datasets/fashion-mnist), ``onnx`` and ``skimage`` (the packages).
Training outputs depend on the CPU (bf16 or fp32 under ``--precision auto``, and which kernels run) and on the
thread count: their trained numbers and the precision word are volatile (``TRAINED``), the rest is checked. The
benchmark's precision words and the peaks it lists follow the CPU too (``BENCH_PRECISION``, ``BENCH_PEAK``).

Not generated (too slow on a CPU, or they need Fashion-MNIST training or a GPU), so left as hand-made text:
docs/compare.md's three Fashion-MNIST runs, docs/viz.md's bn_convnet pictures and errors, docs/export.md's
trained resnet20, docs/training.md's VGG warm start (it needs a 12-epoch Fashion-MNIST run of vgg11 first), the
benchmark scripts' tables (docs/transfer.md, benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import glob
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", "docs/*.md")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
THREADS = 2  # the pages' outputs were made with 2 threads (the 2-core development machine)
SEED = 0
TMP_PREFIX = "cnnzoo-docs-"

MARKER = re.compile(r"<!-- example: (?P<id>[A-Za-z0-9_.-]+) -->\n(?P<body>.*?)<!-- /example -->", re.S)
ANY_MARKER = re.compile(r"<!-- (?:example: ([^ ]*)|/example) -->")


# ---------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Find:
    """An excerpt item: ``count`` lines from the first one that matches ``pattern`` (``None``: to the end)."""

    pattern: str
    count: Optional[int] = None


# An excerpt item: "..." (that line, literally), a line index, a slice of lines, or a Find.
Item = Union[str, int, slice, Find]
# A volatile pattern: (regex, replacement) applied with re.M, or a function of the whole text.
Volatile = Union[Tuple[str, str], Callable[[str], str]]


@dataclass(frozen=True)
class Example:
    """One generated block.

    id: the marker's name (``<!-- example: ID -->``), unique over all pages.
    page: the markdown file, relative to the repository root.
    commands: each an argv after ``cnnzoo``; a block may show several commands one after the other.
    status: the exit status each command must end with (one int for all, or one per command).
    setup: names in ``SETUPS`` to run first.
    prompt: show each command as ``$ cnnzoo ...`` above its output (False where the page gives it in the text).
    raw: the output is markdown to render (a table), not text: the prompt line(s), if any, go in a fenced block
        and the output follows it unfenced.
    select: an excerpt of each command's output, a list of items (see ``Item``); None: all of it.
    drop: a regex; lines of the excerpt that match it are left out.
    volatile: more of the output to ignore in the comparison (see ``normalise``).
    squash_spaces: compare with runs of spaces as one (tables whose column widths follow volatile numbers).
    needs: what the example needs to run (see the module docstring); elsewhere it is skipped.
    """

    id: str
    page: str
    commands: Sequence[Sequence[str]]
    status: Union[int, Sequence[int]] = 0
    setup: Sequence[str] = ()
    prompt: bool = True
    raw: bool = False
    select: Optional[Sequence[Item]] = None
    drop: Optional[str] = None
    volatile: Sequence[Volatile] = ()
    squash_spaces: bool = False
    needs: Sequence[str] = ()

    def statuses(self) -> List[int]:
        if isinstance(self.status, int):
            return [self.status] * len(self.commands)
        return list(self.status)


@dataclass
class Run:
    """What one command printed, and its exit status."""

    argv: List[str]
    output: str
    status: Union[int, str]
    warnings: List[str] = field(default_factory=list)


def cmd(text: str) -> List[str]:
    """``"summary lenet5 --num-classes 10"`` -> its argv."""
    return shlex.split(text)


# ------------------------------------------------------------------------------ volatile output patterns

# Ignored in every comparison: what no rerun repeats.
VOLATILE: List[Tuple[str, str]] = [
    (r"\d[\d,]*(?:\.\d+)? img/s", "<N> img/s"),                        # throughput
    (r"(?<![\w.])\d+(?:\.\d+)? s\b", "<N> s"),                         # seconds ("0.1 s")
    (r"-\d{8}-\d{6}\b", "-<time>"),                                    # runs/<model>-<data>-<time>
    (r"(?:/[^\s/'\"]+)*/" + re.escape(TMP_PREFIX) + r"[^\s/'\"]+", "<tmp>"),  # the working directory
]


def numbers_on(lines: str, decimals_only: bool = False) -> Callable[[str], str]:
    """Every stand-alone number (``1,234``, ``0.83``, ``1.36x``) on the lines that match ``lines``; with
    ``decimals_only`` only those with a fraction (``0.83``, ``98.00%``), so counts (``359 images``) still count."""
    line_re = re.compile(lines)
    num_re = re.compile(r"(?<![\w.])\d[\d,]*\.\d+x?(?![\w.])" if decimals_only
                        else r"(?<![\w.])\d[\d,]*(?:\.\d+)?x?(?![\w.])")

    def apply(text: str) -> str:
        return "\n".join(num_re.sub("<N>", ln) if line_re.search(ln) else ln for ln in text.split("\n"))

    return apply


# What training prints depends on the CPU (bf16 kernels, AMX or AVX512 or neither, and fp32 where the CPU has no
# native bf16: --precision auto) and on the thread count: the trained numbers and the precision word are not the
# command's to decide, the lines, their order and every other number are.
TRAINED = [
    (r"(non-finite at epoch \d+, step \d+ \(lr )[^)]+\)", r"\1<N>)"),  # where it diverges: bf16 and fp32 differ
    numbers_on(r"non-finite at epoch"),
    numbers_on(r"^epoch \d+/\d+\s|^test  top1|\btop1 \d|^ensemble|^\s+\d+\.\d+%", decimals_only=True),
    (r"(, cpu, |, cuda\S*, )(bf16|fp32|fp16)\b", r"\1<precision>"),
    (r"(\(\d[\d,]* images, )(bf16|fp32|fp16)\)", r"\1<precision>)"),  # cnnzoo eval's count line
]


def ranked_classes(text: str) -> str:
    """A prediction's ranked lines (``  99.98%  8``): the probabilities are trained numbers (width included), and
    below the top-ranked class the near-zero ranks' order is too (a retrained model on another CPU swaps them);
    the top class of each input stays checked. Applied after ``TRAINED``, so a probability may already be ``<N>``."""
    out, first = [], False
    for ln in text.split("\n"):
        m = re.match(r"^\s*(?:\d+\.\d+|<N>)%\s+(\S.*)$", ln)
        if not m:
            out.append(ln)
            first = True
            continue
        out.append(f"  <N>%  {m.group(1) if first else '<class>'}")
        first = False
    return "\n".join(out)


# A benchmark's machine line: the CPU's name and the library versions are not the command's to decide.
BENCH_ENV = (r"^cpu \([^;\n]*; (\d+) threads?\), torch \S+, torchvision \S+;", r"cpu (<cpu>; \1 threads), torch <v>, torchvision <v>;")
# The measured peaks of the same line (a matrix product's best rate: as volatile as the timings), one per precision
# the variants ran in: which those are is the CPU's (auto: bf16 where it is native, fp32 elsewhere).
BENCH_PEAK = (r"(peak measured: best \d+x\d+ matmul )\((?:(?:bf16|fp32|fp16) [\d,.]+ GFLOP/s(?:, )?)+\)",
              r"\1(<precision> <N> GFLOP/s)")
# Our variant's precision (and torchvision's given the same settings): auto's choice, the CPU's as above.
BENCH_PRECISION = (r"\b(bf16|fp32|fp16)(, channels_last)", r"<precision>\2")


# ------------------------------------------------------------------------------------------ the examples

TRAIN_LENET5 = cmd("train --model lenet5 --data digits --epochs 15")  # the README's set-up command
TRAIN_EXCERPT = [slice(0, 3), "...", slice(-3, None)]


def _link_run(pattern: str, link: str) -> None:
    """``runs/lenet5-digits`` -> the one run directory ``pattern`` matches (made by a default ``--output``)."""
    found = sorted(glob.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"expected one run directory matching {pattern}, found {found}")
    os.symlink(os.path.basename(found[0]), link)


def _write_digit_png(path: str = "my_digit.png") -> None:
    """An image file to predict: the last of scikit-learn's digits (an 8), 32x32, ink bright on black."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    img = load_digits().images[-1] / 16.0 * 255.0
    img = np.kron(img, np.ones((4, 4))).round().astype(np.uint8)
    Image.fromarray(img, mode="L").save(path)


SetupStep = Union[List[str], Callable[[], None]]
SETUPS: Dict[str, List[SetupStep]] = {
    # The README's first command (15 epochs of LeNet-5 on digits), reachable as runs/lenet5-digits.
    "lenet5-digits": [TRAIN_LENET5, lambda: _link_run("runs/lenet5-digits-2*", "runs/lenet5-digits")],
    "my-digit": [_write_digit_png],
    # A resnet20 run to resume (one epoch on digits: 8 px images, a second or two).
    "r20": [cmd("train --model resnet20 --data digits --epochs 1 --output runs/r20")],
}

EXAMPLES: List[Example] = [
    # --- README.md (the training example first: it runs in a fresh process)
    Example("readme-train", "README.md", [TRAIN_LENET5], setup=["lenet5-digits"], prompt=False,
            select=TRAIN_EXCERPT, volatile=TRAINED),
    Example("readme-summary-lenet5", "README.md", [cmd("summary lenet5 --num-classes 10")],
            select=[slice(0, 14), "...", Find(r"^parameters ", 2)], drop=r"^act\s"),
    Example("readme-models", "README.md", [cmd("list --format markdown")], prompt=False, raw=True),
    # --- docs/training.md
    Example("training-train", "docs/training.md", [TRAIN_LENET5], setup=["lenet5-digits"], prompt=False,
            select=TRAIN_EXCERPT, volatile=TRAINED),
    Example("training-config-errors", "docs/training.md", [cmd("train --set optim.lrr=0.1"), cmd("train --lr -1")],
            status=2),
    Example("training-input-too-small", "docs/training.md",
            [cmd("train --model alexnet_owt --set data.image_size=32")], status=2),
    Example("training-resume-changed", "docs/training.md", [cmd("train --resume runs/r20 --model resnet32")],
            status=2, setup=["r20"]),
    Example("training-non-finite", "docs/training.md",
            [cmd("train --model resnet20 --data digits --lr 1e6 --epochs 3 --output runs/r20-lr1e6")],
            status=2, volatile=TRAINED),
    Example("training-sam", "docs/training.md",
            [cmd("train --model lenet5 --data digits --epochs 3 --set optim.sam=true --output runs/lenet5-sam")],
            select=[slice(0, 3), "..."], volatile=TRAINED),
    Example("training-eval", "docs/training.md", [cmd("eval runs/lenet5-digits")], setup=["lenet5-digits"],
            select=[slice(0, 4), "...", -1], volatile=TRAINED),
    Example("training-predict", "docs/training.md", [cmd("predict runs/lenet5-digits digits:3 my_digit.png -k 3")],
            setup=["lenet5-digits", "my-digit"], volatile=[*TRAINED, ranked_classes]),
    # --- docs/transfer.md
    Example("transfer-weights-resnet", "docs/transfer.md", [cmd("weights resnet")]),
    Example("transfer-freeze-table", "docs/transfer.md",
            [cmd("train --model resnet20 --data digits --epochs 1 --set model.freeze_until=stage2 "
                 "--output runs/r20-frozen")],
            select=[Find(r"^stage\s", 8), "..."], volatile=TRAINED),
    # --- docs/summary.md
    Example("summary-resnet18-small", "docs/summary.md",
            [cmd("summary resnet18 --input 1x28x28"), cmd("summary resnet18 --input 1x28x28 --small --depth 1")],
            status=[2, 0]),
    Example("summary-lenet5", "docs/summary.md", [cmd("summary lenet5 --num-classes 10")]),
    Example("summary-googlenet", "docs/summary.md", [cmd("summary googlenet")],
            select=[slice(0, 3), Find(r"^maxpool2 ", 4), "...", Find(r"^inception5b\.branch3 ")]),
    Example("summary-resnet50-markdown", "docs/summary.md", [cmd("summary resnet50 --depth 1 --format markdown")],
            raw=True),
    # --- docs/conv-arith.md
    Example("conv-arith-alexnet", "docs/conv-arith.md",
            [cmd("conv-arith --input 227 --kernel 11 --stride 4 --padding 0 --in-channels 3 --filters 96")]),
    Example("conv-arith-224", "docs/conv-arith.md", [cmd("conv-arith --input 224 --kernel 11 --stride 4 --padding 2")]),
    Example("conv-arith-padding", "docs/conv-arith.md", [cmd("conv-arith --input 32 --kernel 4 --stride 3")]),
    Example("conv-arith-dilation", "docs/conv-arith.md",
            [cmd("conv-arith --input 56 --kernel 3 --dilation 2 --padding 2")]),
    Example("conv-arith-non-square", "docs/conv-arith.md",
            [cmd("conv-arith --input 224x227 --kernel 11 --stride 4 --in-channels 3 --filters 96")]),
    Example("conv-arith-too-large", "docs/conv-arith.md", [cmd("conv-arith --input 5 --kernel 11")], status=2),
    # --- docs/cost.md
    Example("cost-hwc-refused", "docs/cost.md",
            [cmd("cost --input 28x28x192 --output 32 --kernel 5 --bottleneck 16")], status=2),
    Example("cost-bottleneck", "docs/cost.md",
            [cmd("cost --input 192x28x28 --output 32 --kernel 5 --bottleneck 16 --depthwise")]),
    Example("cost-mobilenet", "docs/cost.md", [cmd("cost --input 64x56x56 --output 128 --kernel 3 --stride 2 --depthwise")]),
    Example("cost-head", "docs/cost.md", [cmd("cost --head 512x7x7 --classes 1000")]),
    # --- docs/models.md
    Example("models-list", "docs/models.md", [cmd("list --format markdown")], prompt=False, raw=True),
    Example("models-info-googlenet", "docs/models.md", [cmd("info googlenet")]),
    # --- docs/compare.md
    Example("compare-imagenet", "docs/compare.md",
            [cmd("compare resnet18 resnet50 vgg16 mobilenet_v2 googlenet efficientnet_b0 --no-timing")]),
    Example("compare-csv", "docs/compare.md",
            [cmd("compare lenet5 resnet20 resnet18 --small --input 1x28x28 --threads 1 -f csv")],
            volatile=[(r"^((?:[^,\n]*,){6})\d[\d.e+-]*(?=,)", r"\1<N>")]),  # img_per_s
    # --- docs/viz.md (random weights: the class a fresh network picks is not the point)
    Example("viz-random-weights", "docs/viz.md",
            [cmd("viz resnet18 --image skimage:chelsea --what gradcam filters")], needs=["skimage"],
            volatile=[(r"predicted \d+ '\d+' \(p = [\d.]+%\)", "predicted <class>"), (r"_class\d+\.png", "_class<N>.png")]),
    # --- docs/export.md (random weights: the difference is that of random logits)
    Example("export-resnet18", "docs/export.md",
            [cmd("export resnet18 --input 3x64x64"), cmd("export resnet18 --input 3x64x64")], status=[0, 2],
            needs=["onnx"], volatile=[(r"^max_abs_diff: \S+", "max_abs_diff: <N>"),
                                      (r"^export_seconds: \S+", "export_seconds: <N>")]),
    # --- docs/benchmark.md (tiny runs: the format is the point, every measured number is volatile)
    Example("benchmark-vs-torchvision", "docs/benchmark.md",
            [cmd("benchmark resnet18 --input 3x32x32 --batch-size 8 --repeats 3 --steps 2 --warmup 1 "
                 "--vs torchvision --threads 1")],
            volatile=[numbers_on(r"^  (cnnzoo|torchvision) "), BENCH_ENV, BENCH_PEAK, BENCH_PRECISION],
            squash_spaces=True),
    Example("benchmark-small-markdown", "docs/benchmark.md",
            [cmd("benchmark lenet5 resnet18 --input 1x28x28 --batch-size 8 --repeats 3 --steps 2 --warmup 1 "
                 "--threads 1 -f markdown")],
            volatile=[numbers_on(r"^\| `"), BENCH_ENV, BENCH_PEAK, BENCH_PRECISION]),
]

BY_ID: Dict[str, Example] = {e.id: e for e in EXAMPLES}
assert len(BY_ID) == len(EXAMPLES), "example ids must be unique"


# ------------------------------------------------------------------------------------- excerpt, render


def excerpt(lines: List[str], select: Optional[Sequence[Item]], drop: Optional[str] = None) -> List[str]:
    """The lines ``select`` names, in its order ("..." literally), less those ``drop`` matches."""
    if select is None:
        out = list(lines)
    else:
        out = []
        for item in select:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, int):
                if -len(lines) <= item < len(lines):
                    out.append(lines[item])
            elif isinstance(item, slice):
                out.extend(lines[item])
            elif isinstance(item, Find):
                rx = re.compile(item.pattern)
                start = next((i for i, ln in enumerate(lines) if rx.search(ln)), None)
                if start is not None:
                    out.extend(lines[start:] if item.count is None else lines[start:start + item.count])
            else:
                raise TypeError(f"not an excerpt item: {item!r}")
    if drop:
        rx = re.compile(drop)
        out = [ln for ln in out if ln == "..." or not rx.search(ln)]
    return out


def prompt_line(argv: Sequence[str]) -> str:
    return "$ cnnzoo " + shlex.join(list(argv))


def output_lines(text: str) -> List[str]:
    """A command's output as lines: trailing spaces and blank lines at the end dropped."""
    return [ln.rstrip() for ln in text.rstrip("\n").split("\n")] if text.strip() else []


def render(ex: Example, runs: Sequence[Run]) -> str:
    """The block between the markers (fences included, no newline at the end)."""
    if ex.raw:
        parts = []
        if ex.prompt:
            parts.append("\n".join(["```", *(prompt_line(r.argv) for r in runs), "```"]))
        parts.extend("\n".join(excerpt(output_lines(r.output), ex.select, ex.drop)) for r in runs)
        return "\n\n".join(parts) + "\n"  # a blank line ends a table before the closing marker
    body = []
    for r in runs:
        if ex.prompt:
            body.append(prompt_line(r.argv))
        body.extend(excerpt(output_lines(r.output), ex.select, ex.drop))
    return "\n".join(["```", *body, "```"])


def normalise(text: str, ex: Optional[Example] = None) -> str:
    """``text`` with what cannot repeat replaced by placeholders (``<N>``, ``<time>``, ``<tmp>``)."""
    text = "\n".join(ln.rstrip() for ln in text.strip("\n").split("\n"))
    for pattern, repl in VOLATILE:
        text = re.sub(pattern, repl, text, flags=re.M)
    for v in (ex.volatile if ex else ()):
        text = v(text) if callable(v) else re.sub(v[0], v[1], text, flags=re.M)
    if ex is not None and ex.squash_spaces:
        text = re.sub(r" {2,}", " ", text)
    return text


def compare(ex: Example, on_page: str, now: str) -> Optional[str]:
    """None if the page's block shows what the commands print now (volatile parts aside), else a diff."""
    a, b = normalise(on_page, ex), normalise(now, ex)
    if a == b:
        return None
    return "\n".join(difflib.unified_diff(a.split("\n"), b.split("\n"), f"{ex.page} [{ex.id}] (on the page)",
                                          f"{ex.page} [{ex.id}] (printed now)", lineterm="", n=2))


# ------------------------------------------------------------------------------------------ the pages


def page_paths() -> List[Path]:
    paths: List[Path] = []
    for pattern in PAGES:
        paths.extend(sorted(ROOT.glob(pattern)))
    return paths


def read_blocks(text: str, where: str = "page") -> Dict[str, str]:
    """``{id: the text between the markers}``; an unclosed, nested or repeated marker is an error."""
    blocks: Dict[str, str] = {}
    depth, opened = 0, None
    for m in ANY_MARKER.finditer(text):
        if m.group(0).startswith("<!-- example:"):
            if depth:
                raise ValueError(f"{where}: <!-- example: {m.group(1)} --> inside the block of {opened}")
            depth, opened = 1, m.group(1)
        else:
            if not depth:
                raise ValueError(f"{where}: <!-- /example --> without an opening marker")
            depth = 0
    if depth:
        raise ValueError(f"{where}: <!-- example: {opened} --> is never closed with <!-- /example -->")
    for m in MARKER.finditer(text):
        if m.group("id") in blocks:
            raise ValueError(f"{where}: the example {m.group('id')} appears twice")
        blocks[m.group("id")] = m.group("body")
    return blocks


def replace_blocks(text: str, new: Dict[str, str]) -> str:
    """``text`` with the blocks named in ``new`` replaced (each given without its final newline)."""
    def sub(m: re.Match) -> str:
        i = m.group("id")
        body = new[i] + "\n" if i in new else m.group("body")
        return f"<!-- example: {i} -->\n{body}<!-- /example -->"

    return MARKER.sub(sub, text)


def markers_on_pages() -> Dict[str, str]:
    """``{id: page}`` for every marker in README.md and docs/*.md."""
    found: Dict[str, str] = {}
    for path in page_paths():
        rel = path.relative_to(ROOT).as_posix()
        for i in read_blocks(path.read_text(encoding="utf-8"), rel):
            if i in found:
                raise ValueError(f"the example {i} is in {found[i]} and in {rel}")
            found[i] = rel
    return found


# ---------------------------------------------------------------------------------------------- running


def missing_needs(ex: Example) -> Optional[str]:
    """Why ``ex`` cannot run here, or None."""
    for need in ex.needs:
        if need == "fashion-mnist" and not FASHION_DIR.is_dir():
            return f"needs Fashion-MNIST in {FASHION_DIR}"
        if need == "onnx" and not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")):
            return "needs onnx and onnxruntime"
        if need == "skimage" and importlib.util.find_spec("skimage") is None:
            return "needs scikit-image"
        if need == "bf16-cpu":  # no longer used by the examples; kept for a page that must show bf16 numbers
            try:
                flags = Path("/proc/cpuinfo").read_text()
            except OSError:
                flags = ""
            if " avx512_bf16" not in flags and " amx_bf16" not in flags:
                return "made on a CPU with native bf16 (--precision auto trains in bf16 there, in fp32 here)"
        if need not in ("fashion-mnist", "onnx", "skimage", "bf16-cpu"):
            raise ValueError(f"{ex.id}: unknown need {need!r}")
    return None


class SetupError(RuntimeError):
    pass


class Session:
    """A temporary working directory where the commands run, the set-ups done in it, their outputs."""

    def __init__(self) -> None:
        self.dir = Path(os.path.realpath(tempfile.mkdtemp(prefix=TMP_PREFIX)))
        self.done: Dict[str, Optional[str]] = {}  # set-up -> None (done) or why it failed
        self.shared = {tuple(s) for steps in SETUPS.values() for s in steps if not callable(s)}
        self.memo: Dict[Tuple[str, ...], Run] = {}
        self._cwd = os.getcwd()

    def __enter__(self) -> "Session":
        os.chdir(self.dir)
        return self

    def __exit__(self, *exc) -> None:
        os.chdir(self._cwd)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, argv: Sequence[str]) -> Run:
        """``cnnzoo ARGV`` here; a set-up command already run is not run again (its output serves)."""
        key = tuple(argv)
        if key in self.memo:
            return self.memo[key]
        r = run_cli(list(argv))
        if key in self.shared:
            self.memo[key] = r
        return r

    def ensure(self, name: str) -> bool:
        """Run the set-up ``name`` unless done; True if it ran now."""
        ran = name not in self.done
        if ran:
            why = None
            for step in SETUPS[name]:
                if callable(step):
                    try:
                        step()
                    except Exception as e:  # noqa: BLE001 - reported with the examples that need it
                        why = f"{type(e).__name__}: {e}"
                else:
                    r = self.run(step)
                    if r.status != 0:
                        why = f"{prompt_line(step)} exited with {r.status}:\n{r.output}"
                if why:
                    break
            self.done[name] = why
        if self.done[name]:
            raise SetupError(f"set-up {name!r} failed: {self.done[name]}")
        return ran


def run_cli(argv: List[str]) -> Run:
    """``cnnzoo.cli.main(argv)`` with stdout and stderr captured together; warnings are kept apart."""
    import torch

    from cnnzoo.cli import main

    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            status: Union[int, str] = main(argv)
        except SystemExit as e:  # argparse
            status = e.code if isinstance(e.code, int) else 2
        except Exception:  # noqa: BLE001 - a crash is an output like any other: the check shows it
            traceback.print_exc(file=buf)
            status = "crashed"
    torch.set_num_threads(THREADS)
    return Run(argv, buf.getvalue(), status, [f"{w.category.__name__}: {w.message}" for w in caught])


@dataclass
class Outcome:
    """One example run: its rendered block, or why it was skipped or could not run."""

    example: Example
    block: Optional[str] = None
    runs: List[Run] = field(default_factory=list)
    skipped: Optional[str] = None
    error: Optional[str] = None


def run_examples(examples: Sequence[Example], progress: Callable[[str], None] = lambda s: None) -> List[Outcome]:
    """Run ``examples`` (in this order) in one session; the process's environment and threads are restored."""
    saved_env = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "CNNZOO_DEBUG", "MPLBACKEND")}
    saved_threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    _prepare_process()
    try:
        return _run_examples(examples, progress)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if saved_threads is not None:
            sys.modules["torch"].set_num_threads(saved_threads)


def _run_examples(examples: Sequence[Example], progress: Callable[[str], None]) -> List[Outcome]:
    outcomes = []
    with Session() as session:
        for ex in examples:
            why = missing_needs(ex)
            if why:
                outcomes.append(Outcome(ex, skipped=why))
                progress(f"{ex.id}: skipped ({why})")
                continue
            try:
                for name in ex.setup:
                    t0 = time.perf_counter()
                    if session.ensure(name):
                        progress(f"set-up {name}: ran ({time.perf_counter() - t0:.1f} s)")
            except SetupError as e:
                outcomes.append(Outcome(ex, error=str(e)))
                progress(f"{ex.id}: {e}")
                continue
            t0 = time.perf_counter()
            runs = [session.run(argv) for argv in ex.commands]
            o = Outcome(ex, block=render(ex, runs), runs=runs)
            bad = [f"{prompt_line(r.argv)} exited with {r.status}, the page expects {s}"
                   for r, s in zip(runs, ex.statuses()) if r.status != s]
            if bad:
                o.error = "\n".join(bad)
            for r in runs:
                for w in r.warnings:
                    progress(f"{ex.id}: {prompt_line(r.argv)} warned (not shown on the page): {w}")
            outcomes.append(o)
            progress(f"{ex.id}: ran ({time.perf_counter() - t0:.1f} s)")
    return outcomes


def _prepare_process() -> None:
    """The CPU, no tracebacks, no display: set before torch and cnnzoo are imported (if they are not yet)."""
    if "torch" not in sys.modules:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.pop("CNNZOO_DEBUG", None)
    os.environ.setdefault("MPLBACKEND", "Agg")
    src = ROOT / "src"
    if importlib.util.find_spec("cnnzoo") is None and src.is_dir():
        sys.path.insert(0, str(src))


# ------------------------------------------------------------------------------------- check and write


def select_examples(only: Optional[Sequence[str]]) -> List[Example]:
    if not only:
        return list(EXAMPLES)
    unknown = [i for i in only if i not in BY_ID]
    if unknown:
        raise SystemExit(f"unknown example(s): {', '.join(unknown)}; see --list")
    return [e for e in EXAMPLES if e.id in set(only)]


def check(examples: Sequence[Example], progress: Callable[[str], None] = lambda s: None) -> List[dict]:
    """One result per example (and per marker that has no example): ``id``, ``page``, ``status``
    (``ok``, ``differs``, ``error``, ``missing``, ``unknown``, ``skipped``) and ``detail``."""
    results = []
    markers = markers_on_pages()
    if len(examples) == len(EXAMPLES):
        for i, page in markers.items():
            if i not in BY_ID:
                results.append(dict(id=i, page=page, status="unknown",
                                    detail=f"{page} has <!-- example: {i} --> but docs/examples.py has no such example"))
    texts = {p: read_blocks((ROOT / p).read_text(encoding="utf-8"), p) for p in {e.page for e in examples}}
    for o in run_examples(examples, progress):
        ex = o.example
        res = dict(id=ex.id, page=ex.page, status="ok", detail="")
        on_page = texts[ex.page].get(ex.id)
        if on_page is None:
            res.update(status="missing", detail=f"{ex.page} has no <!-- example: {ex.id} --> marker")
        elif o.skipped:
            res.update(status="skipped", detail=o.skipped)
        elif o.block is None:
            res.update(status="error", detail=o.error or "")
        else:
            diff = compare(ex, on_page, o.block)
            if diff or o.error:
                res.update(status="differs" if diff else "error", detail="\n".join(filter(None, [o.error, diff])))
        results.append(res)
    return results


def write(examples: Sequence[Example], changed_only: bool = False,
          progress: Callable[[str], None] = lambda s: None) -> List[str]:
    """Run ``examples`` and rewrite their blocks; returns what was written (``page [id]``)."""
    by_page: Dict[str, Dict[str, str]] = {}
    problems, written = [], []
    texts = {p: (ROOT / p).read_text(encoding="utf-8") for p in {e.page for e in examples}}
    for ex in examples:
        if ex.id not in read_blocks(texts[ex.page], ex.page):
            problems.append(f"{ex.page} has no <!-- example: {ex.id} --> marker: add the markers where the block goes")
    if problems:
        raise SystemExit("\n".join(problems))
    for o in run_examples(examples, progress):
        ex = o.example
        if o.skipped or o.block is None:
            problems.append(f"{ex.page} [{ex.id}] not written: {o.skipped or o.error}")
            continue
        if o.error:
            problems.append(f"{ex.page} [{ex.id}] written, but: {o.error}")
        old = read_blocks(texts[ex.page], ex.page)[ex.id]
        if changed_only and compare(ex, old, o.block) is None:
            continue
        by_page.setdefault(ex.page, {})[ex.id] = o.block
        written.append(f"{ex.page} [{ex.id}]")
    for page, blocks in by_page.items():
        new = replace_blocks(texts[page], blocks)
        if new != texts[page]:
            (ROOT / page).write_text(new, encoding="utf-8")
    for p in problems:
        print(p, file=sys.stderr)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Write or check the command outputs shown in README.md and docs/*.md.")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="run the examples and rewrite their blocks")
    mode.add_argument("--check", action="store_true", help="run the examples; exit 1 if a block differs")
    mode.add_argument("--list", action="store_true", help="list the examples")
    ap.add_argument("--only", nargs="+", metavar="ID", help="just these examples")
    ap.add_argument("--changed", action="store_true", help="with --write: rewrite only the blocks that changed")
    ap.add_argument("--json", metavar="FILE", help="with --check: also write the results to FILE as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="say what runs")
    args = ap.parse_args(argv)
    examples = select_examples(args.only)
    progress = (lambda s: print(s, file=sys.stderr, flush=True)) if args.verbose else (lambda s: None)
    if args.list:
        for e in examples:
            needs = f"  (needs {', '.join(e.needs)})" if e.needs else ""
            print(f"{e.id:28} {e.page:20} " + " ; ".join(prompt_line(c)[2:] for c in e.commands) + needs)
        return 0
    if args.write:
        for w in write(examples, args.changed, progress):
            print(f"wrote {w}")
        return 0
    results = check(examples, progress)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    bad = [r for r in results if r["status"] not in ("ok", "skipped")]
    for r in results:
        if r["status"] == "skipped":
            print(f"skipped {r['page']} [{r['id']}]: {r['detail']}")
    for r in bad:
        print(f"{r['status']}: {r['page']} [{r['id']}]\n{r['detail']}\n")
    ok = sum(r["status"] == "ok" for r in results)
    print(f"{ok} of {len(results)} blocks match" + (f"; {len(bad)} do not: " + ", ".join(r["id"] for r in bad)
                                                   if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
