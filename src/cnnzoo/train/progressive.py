"""Progressive resizing: train the early steps on smaller images, the last ones at full size.

Smaller batches make cheaper steps (a convolution's cost goes with the pixels: 20 x 20 instead of 28 x 28 is about
half), and the early steps, taken at a high learning rate, need less detail. fast.ai popularised it (Howard,
"Training Imagenet in 18 minutes", 2018); FixRes (Touvron et al., 2019) is why the last steps return to the size
the model is evaluated at. The schedule is MosaicML Composer's ``ProgressiveResizing``: the side is
``scale`` x full for the first ``delay`` of the steps, grows linearly to full size, and stays full for the last
``finetune`` of them; sides are rounded (halves up) to multiples of ``increment`` (fewer distinct shapes for the kernels).

The size is a function of the step alone, so resumed, distributed and repeated runs agree on it. Batches are
resized as F.interpolate's bilinear mode computes it, antialiased (the same on every device).
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from ..errors import UserError

__all__ = ["ProgressiveResize"]


class ProgressiveResize:
    """The training batch's size at each step, and the batch resized to it.

    Args:
        full: the run's image size, (H, W).
        total_steps: the run's optimisation steps (epochs x steps per epoch).
        scale: the starting side as a fraction of the full one, in (0, 1].
        delay: fraction of the steps at the starting size.
        finetune: fraction of the steps, at the end, at full size.
        increment: sides are rounded to multiples of this (never above the full side).
        min_side: the smallest side the model takes (its ``min_input_size``).
    """

    def __init__(self, full: Tuple[int, int], total_steps: int, scale: float, delay: float, finetune: float,
                 increment: int = 4, min_side: int = 1) -> None:
        self.full = (int(full[0]), int(full[1]))
        self.total = max(1, int(total_steps))
        self.scale, self.delay, self.finetune, self.increment = float(scale), float(delay), float(finetune), int(increment)
        smallest = self.size(0)
        if min(smallest) < min_side:
            raise UserError(f"train.progressive_scale {self.scale:g} starts at {smallest[0]}x{smallest[1]} px, below the "
                            f"model's smallest input ({min_side} px): raise the scale")

    def scale_at(self, step: int) -> float:
        """The side's fraction of the full one at ``step`` (0-based), before rounding."""
        done = step / self.total
        if done < self.delay:
            return self.scale
        grow = 1.0 - self.finetune - self.delay
        if grow <= 0 or done >= 1.0 - self.finetune:
            return 1.0
        return self.scale + (1.0 - self.scale) * (done - self.delay) / grow

    def size(self, step: int) -> Tuple[int, int]:
        """The batch's (H, W) at ``step``."""
        s = self.scale_at(step)
        return tuple(min(side, max(self.increment, self.increment * int(s * side / self.increment + 0.5)))
                     for side in self.full)

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """``x`` (N x C x H x W, at full size) resized to the size of ``step``, in its memory format."""
        size = self.size(step)
        if tuple(x.shape[-2:]) == size:
            return x
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return y.contiguous(memory_format=fmt)

    def describe(self) -> str:
        """One line for the log: the sizes and the steps they span."""
        sizes = [self.size(s) for s in range(self.total)]
        start = sizes[0]
        at_start = next((s for s, hw in enumerate(sizes) if hw != start), self.total)
        first_full = next((s for s, hw in enumerate(sizes) if hw == self.full), self.total)
        line = f"progressive resizing: {start[0]}x{start[1]} px for steps 1-{at_start}"
        if first_full < self.total:
            line += f", {self.full[0]}x{self.full[1]} px from step {first_full + 1} of {self.total}"
        return line + f" ({len(set(sizes))} sizes)"
