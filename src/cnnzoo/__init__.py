"""cnnzoo: the classic convolutional networks, faithful to their papers, on PyTorch."""

from .compat import load_torchvision_weights
from .models import AuxOutputs, ZooModel
from .registry import ModelInfo, Paper, count_params, create_model, is_model, list_models, model_info

__version__ = "0.1.0"

__all__ = [
    "AuxOutputs",
    "ModelInfo",
    "Paper",
    "ZooModel",
    "count_params",
    "create_model",
    "is_model",
    "list_models",
    "load_torchvision_weights",
    "model_info",
]
