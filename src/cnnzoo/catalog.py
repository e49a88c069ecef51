"""The model catalogue: what ``cnnzoo list`` and ``cnnzoo info`` show, as JSON, so they answer without PyTorch.

Building the 58 models on the meta device to read their parameter counts and minimum sizes takes about 9 s, and
importing PyTorch 2 s more. The facts only change when the model code does, so they are kept in
``models/catalog.json`` with a fingerprint of the files that decide them (``models/`` and ``layers/``). When the
fingerprint matches, the file is the answer; otherwise (a model edited or added) the catalogue is built live
from the registry, and ``tests/test_models.py`` fails until ``python -m cnnzoo.catalog`` has written it anew.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from .names import match_names, unknown_name

__all__ = ["CATALOG_FILE", "fingerprint", "build_catalog", "load_catalog", "list_entries", "get_entry"]

ROOT = Path(__file__).resolve().parent
CATALOG_FILE = ROOT / "models" / "catalog.json"
SOURCES = ("models", "layers")

_CACHE: Dict[str, Dict[str, Any]] = {}


def fingerprint() -> str:
    """sha256 of the model and layer sources: the catalogue is current while this is unchanged."""
    h = hashlib.sha256()
    for folder in SOURCES:
        for path in sorted((ROOT / folder).glob("*.py")):
            h.update(f"{folder}/{path.name}\n".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _entry(name: str) -> Dict[str, Any]:
    from .builder import count_params, model_info

    info = model_info(name)
    d = info.as_dict()
    d["input_size"] = list(info.input_size)
    d["stages"] = list(info.stages)
    d["citation"] = info.paper.cite()
    d["params"] = count_params(name)
    return d


def build_catalog() -> Dict[str, Any]:
    """Every registered model's facts, from the registry (imports PyTorch and builds each model on meta)."""
    from .registry import list_models

    return {"fingerprint": fingerprint(), "models": {name: _entry(name) for name in list_models()}}


def load_catalog() -> Dict[str, Dict[str, Any]]:
    """name -> facts: the stored catalogue when it is current, else built from the registry."""
    if "models" not in _CACHE:
        stored: Optional[Dict[str, Any]] = None
        try:
            stored = json.loads(CATALOG_FILE.read_text())
        except (OSError, ValueError):
            pass
        if not stored or stored.get("fingerprint") != fingerprint():
            stored = build_catalog()
        _CACHE["models"] = stored["models"]
    return _CACHE["models"]


def list_entries(pattern: Union[str, Sequence[str]] = "*") -> List[Dict[str, Any]]:
    """The facts of the models matching a shell wildcard, in natural order."""
    models = load_catalog()
    return [models[n] for n in match_names(models, pattern)]


def get_entry(name: str) -> Dict[str, Any]:
    models = load_catalog()
    if name not in models:
        raise unknown_name(name, models)
    return models[name]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cnnzoo.catalog", description="Write models/catalog.json anew.")
    p.add_argument("--check", action="store_true", help="exit 1 if the stored catalogue is not current")
    args = p.parse_args(argv)
    from .io import write_or_check

    fresh = build_catalog()
    ok, message = write_or_check(CATALOG_FILE, json.dumps(fresh, indent=1, sort_keys=True) + "\n", args.check,
                                 "python -m cnnzoo.catalog")
    print(message if args.check else f"{message} ({len(fresh['models'])} models)")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
