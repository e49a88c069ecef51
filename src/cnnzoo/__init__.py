"""cnnzoo: the classic convolutional networks, faithful to their papers, on PyTorch.

The public names are loaded on first use (PEP 562), so ``cnnzoo --help`` starts without importing PyTorch.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "AuxOutputs": "models",
    "ZooModel": "models",
    "ModelInfo": "builder",
    "count_params": "builder",
    "create_model": "builder",
    "load_model": "builder",
    "model_info": "builder",
    "load_torchvision_weights": "pretrained",
    "Paper": "registry",
    "SmallInput": "registry",
    "is_model": "registry",
    "list_models": "registry",
    "register_model": "registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
