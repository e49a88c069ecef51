"""What counts as a normalisation layer: one tuple for the initialisers and the optimiser's parameter groups."""

from __future__ import annotations

from torch import nn

__all__ = ["NORM_LAYERS"]

# BatchNorm and InstanceNorm (PyTorch's _NormBase), GroupNorm and LayerNorm: the layers with a per-channel scale
# and shift that start at one and zero (He et al. 2015's unit BatchNorm; torchvision's loops) and whose parameters
# an optimiser treats apart (no weight decay, airbench's bias learning-rate multiplier).
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
