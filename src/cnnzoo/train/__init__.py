"""Training: config, the loop, optimisers and schedules, checkpoints, evaluation, distributed."""

from .config import Config, load_config
from .trainer import fit

__all__ = ["Config", "fit", "load_config"]
