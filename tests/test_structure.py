"""The package's shape: who may import whom (read from the source's imports), one home per policy."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

import cnnzoo
from cnnzoo import choices

SRC = Path(cnnzoo.__file__).resolve().parent

# Bottom up; a module may import its own layer and the layers below (docs/architecture.md draws this).
LAYERS: List[Tuple[str, ...]] = [
    ("errors", "choices", "names"),
    ("io",),
    ("layers",),
    ("models",),
    ("registry",),
    ("pretrained", "features", "builder", "catalog", "hub"),
    ("runtime",),
    ("data", "analysis", "train"),
    ("transfer", "bench", "export", "fuse", "inference", "viz"),
    ("commands",),
    ("cli", "__main__"),
]
# The one import that runs up the layers: a finished run draws its curves.png.
ALLOWED_UPWARD = {("cnnzoo.train.trainer", "cnnzoo.viz.curves")}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> Dict[str, Set[str]]:
    """module -> the cnnzoo modules it imports, at the top or inside functions."""
    graph: Dict[str, Set[str]] = {}
    for path in SRC.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("cnnzoo")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("cnnzoo"):
                    continue
                # ``from . import models`` imports the submodule models.
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    found.add(sub if (SRC.parent / (sub.replace(".", "/") + ".py")).exists()
                              or (SRC.parent / sub.replace(".", "/")).is_dir() else target)
        graph[name] = {m for m in found if m != name}
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if not top:
        return 0  # the package's __init__: __version__ and lazy re-exports (PEP 562), no import statement
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_structure.py; add it to LAYERS and the docs")


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for mod, targets in _imports().items():
        for t in targets:
            if _layer(t) > _layer(mod) and (mod, t) not in ALLOWED_UPWARD and mod != "cnnzoo":
                upward.append(f"{mod} -> {t}")
    assert not upward, "imports that run up the layers: " + ", ".join(sorted(upward))


def test_models_never_import_the_registry_or_the_builder():
    bad = [f"{m} -> {t}" for m, ts in _imports().items() if m.startswith("cnnzoo.models")
           for t in ts if t.split(".")[1] in ("registry", "builder", "pretrained")]
    assert not bad


def test_no_import_circle():
    graph = _imports()
    # Tarjan's strongly connected components: any with more than one module is a circle.
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_layer_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The check is not vacuous: a models file importing the builder is reported."""
    graph = _imports()
    graph["cnnzoo.models.resnet"] = graph["cnnzoo.models.resnet"] | {"cnnzoo.builder"}
    bad = [(m, t) for m, ts in graph.items() for t in ts if _layer(t) > _layer(m) and (m, t) not in ALLOWED_UPWARD]
    assert ("cnnzoo.models.resnet", "cnnzoo.builder") in bad


def test_help_does_not_import_torch():
    """``cnnzoo --help`` builds every parser without loading PyTorch (it starts in a tenth of a second)."""
    code = ("import sys, contextlib, io\nfrom cnnzoo.cli import build_parser\nbuild_parser()\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_list_and_info_read_the_catalogue_without_torch():
    """``cnnzoo list`` and ``info`` answer from models/catalog.json: no PyTorch import, no model built."""
    code = ("import sys\nfrom cnnzoo.cli import main\nmain(['list', 'resnet'])\nmain(['info', 'googlenet'])\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "resnet18" in out and "13,004,888" in out and out.strip().endswith("False")


def test_stored_catalogue_is_current():
    """models/catalog.json holds what the registry builds now; after changing a model run python -m cnnzoo.catalog."""
    import json

    from cnnzoo.catalog import CATALOG_FILE, build_catalog

    stored = json.loads(CATALOG_FILE.read_text())
    fresh = build_catalog()
    assert stored["fingerprint"] == fresh["fingerprint"], "models/ or layers/ changed: run python -m cnnzoo.catalog"
    assert stored["models"] == json.loads(json.dumps(fresh["models"])), "run python -m cnnzoo.catalog"


def _choices_of(command: str, flag: str):
    from cnnzoo.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.choices[command]
    return tuple(next(a for a in p._actions if flag in a.option_strings).choices)


def test_each_list_of_choices_is_declared_once():
    from cnnzoo.train.config import CHOICES

    assert _choices_of("train", "--precision") == choices.PRECISIONS == CHOICES["train.precision"]
    assert _choices_of("train", "--data") == choices.DATASETS == CHOICES["data.name"]
    assert _choices_of("eval", "--tta") == choices.TTA_MODES == _choices_of("predict", "--tta")
    assert CHOICES["optim.name"] == choices.OPTIMIZERS and CHOICES["schedule.name"] == choices.SCHEDULES


def test_every_optimizer_and_schedule_choice_is_implemented():
    import torch

    from cnnzoo.train.config import Config
    from cnnzoo.train.optim import build_optimizer, lr_factor

    cfg = Config()
    for name in choices.OPTIMIZERS:
        cfg.optim.name = name
        assert build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(1))]}], cfg.optim)
    for name in choices.SCHEDULES:
        cfg.schedule.name = name
        assert 0 <= lr_factor(5, 10, 3, cfg.schedule) <= 1.0 + 1e-9


def test_one_grey_rgb_conversion():
    import torch

    from cnnzoo.data import convert_channels

    rgb = torch.tensor([[[[255]], [[0]], [[0]]]], dtype=torch.uint8)  # 1 x 3 x 1 x 1, pure red
    assert convert_channels(rgb, 1).item() == 76  # round(0.299 * 255), PIL's convert("L")
    assert convert_channels(rgb[0], 1).shape == (1, 1, 1)
    grey = torch.full((2, 1, 4, 4), 0.5)
    assert convert_channels(grey, 3).shape == (2, 3, 4, 4) and convert_channels(grey, 1) is grey
    from cnnzoo.errors import UserError

    with pytest.raises(UserError, match="cannot turn 2-channel"):
        convert_channels(torch.zeros(2, 4, 4), 3)


def test_small_input_policy_has_one_threshold():
    from cnnzoo.builder import plan_input
    from cnnzoo.models._spec import SMALL_IMAGE_MAX

    assert plan_input("resnet18", SMALL_IMAGE_MAX).kwargs == {"small_input": True}
    assert plan_input("resnet18", SMALL_IMAGE_MAX + 1).kwargs == {}
    assert plan_input("resnet18", 32, {"small_input": False}).kwargs == {"small_input": False}  # the caller's choice
    assert plan_input("alexnet", 28).image_size == 227


def test_library_errors_name_parameters_and_the_cli_names_flags(tmp_path, capsys):
    from cnnzoo.cli import main
    from cnnzoo.errors import ParamError
    from cnnzoo.train.config import load_config
    from cnnzoo.transfer import finetune

    cfg = load_config(None, {"model.name": "resnet18", "model.pretrained": str(tmp_path / "w.safetensors"),
                             "run.output": str(tmp_path / "ft")})
    with pytest.raises(ParamError, match=r"^unfreeze='stage9' is neither all, none nor a stage"):
        finetune(cfg, unfreeze="stage9")
    assert not (tmp_path / "ft").exists()  # refused before anything was trained or written
    rc = main(["finetune", "--model", "resnet18", "--pretrained", str(tmp_path / "w.safetensors"), "--data", "digits",
               "--unfreeze", "stage9", "--output", str(tmp_path / "ft2")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("cnnzoo: error: --unfreeze stage9 is neither all, none nor a stage"), err


def test_one_image_preparation_crops_as_the_folder_loader_does():
    """predict and viz see a photo as training saw it: the centred crop with the input's aspect, then resized."""
    import torch

    from cnnzoo.inference import prepare

    rm = {"image_size": [32, 32], "mean": [0.5], "std": [0.25], "in_chans": 1}
    wide = torch.randint(0, 256, (1, 32, 64), dtype=torch.uint8)
    shown, x = prepare(wide, rm)
    shown_c, x_c = prepare(wide[..., 16:48].contiguous(), rm)  # the centre square alone
    assert torch.equal(x, x_c) and torch.equal(shown, shown_c) and x.shape == (1, 1, 32, 32)
