"""Loading torchvision weights into cnnzoo models of the same architecture."""

from __future__ import annotations

from typing import Dict, Mapping

import torch
from torch import nn

__all__ = ["load_torchvision_weights", "convert_torchvision_state_dict"]


def convert_torchvision_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a torchvision ``state_dict``'s keys to ``model``'s.

    Families whose module names match torchvision's need nothing; the others define
    ``convert_torchvision_state_dict(state_dict) -> state_dict`` on the model class.
    """
    conv = getattr(model, "convert_torchvision_state_dict", None)
    sd = dict(state_dict)
    return dict(conv(sd)) if conv is not None else sd


def load_torchvision_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a torchvision ``state_dict`` into our model of the same architecture.

    Raises:
        ValueError: when the keys or shapes do not match, listing the first mismatches.
    """
    sd = convert_torchvision_state_dict(model, state_dict)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or wrong:
        name = getattr(model, "model_name", type(model).__name__)
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{label}: {', '.join(items[:5])}{more}")
        raise ValueError(f"these weights do not fit {name}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)
    return model
