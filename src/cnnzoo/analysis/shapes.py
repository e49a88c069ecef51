"""The command line's shapes and ``KEY=VALUE`` arguments, parsed in one place for every command.

Every command writes a tensor shape as C x H x W (PyTorch's order): ``1x28x28``, ``3x224x224``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..errors import UserError

__all__ = ["parse_input", "parse_kwargs"]


def parse_input(text: str, channels: Optional[int] = None, what: str = "--input",
                need_channels: bool = False) -> Tuple[int, int, int]:
    """``"1x28x28"`` (C x H x W), ``"28x28"`` (H x W) or ``"28"`` (square) -> ``(C, H, W)``.

    A shape written H x W x C by mistake is refused rather than read as a wrong layer. A 3-part shape
    ``A x A x B`` (first two equal, last different) is ambiguous, since as C x H x W it says "A channels,
    A pixels high, B wide" -- a non-square input whose height happens to equal its channel count, which real
    inputs almost never are -- and it is refused with the C x H x W it probably meant (``B x A x A``) when B
    looks like a channel count:

    * ``B <= 4``: an image's channels (``224x224x3``, ``32x32x3``, ``28x28x1``);
    * ``B > A``: more channels than pixels per side, a layer's feature map (``28x28x192``, ``7x7x512``);
    * ``B`` a multiple of 8: a usual layer width (``112x112x64``).

    Everything else is read as C x H x W: shapes whose first two numbers differ (``1x28x28``, ``3x224x224``,
    ``192x28x28``, ``3x32x64``), the same number three times (``3x3x3``), and ``A x A x B`` with ``4 < B < A``
    and B not a multiple of 8 (``64x64x50``). The only C x H x W inputs this refuses are ones with C == H and a
    channel-count-like W (e.g. 32 channels at 32 x 64), which the command line cannot express.

    Args:
        text: the shape as typed; ``x``, ``×`` or ``,`` between the numbers.
        channels: fills in C for the ``HxW`` and ``N`` forms (default 3).
        what: the option named in error messages.
        need_channels: refuse ``HxW`` and ``N`` (for feature maps, whose channels have no default).

    Raises:
        UserError: not a shape, a non-positive size, an ambiguous ``A x A x B``, or (with ``need_channels``) no C.
    """
    forms = "C x H x W (e.g. 192x28x28)" if need_channels else "CxHxW, HxW or N (e.g. 1x28x28, 224x224, 224)"
    parts = str(text).strip().lower().replace("×", "x").replace(",", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"{what} takes {forms}, got {text!r}") from None
    if len(nums) != 3 and (need_channels or len(nums) > 3):
        raise UserError(f"{what} takes {forms}, got {text!r}")
    if len(nums) == 1:
        nums = [channels or 3, nums[0], nums[0]]
    elif len(nums) == 2:
        nums = [channels or 3, *nums]
    if min(nums) < 1:
        raise UserError(f"{what} sizes must be positive, got {text!r}")
    a, b = nums[0], nums[2]
    if len(parts) == 3 and nums[1] == a != b and (b <= 4 or b > a or b % 8 == 0):
        raise UserError(f"{what} {str(text).strip()} looks like H x W x C; shapes are C x H x W: "
                        f"did you mean {b}x{a}x{a}?")
    return nums[0], nums[1], nums[2]


def parse_kwargs(items) -> Dict[str, Any]:
    """``["small_input=true", "drop_rate=0.2"]`` -> ``{"small_input": True, "drop_rate": 0.2}`` (values as YAML)."""
    import yaml

    out: Dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--kw takes KEY=VALUE (e.g. --kw small_input=true), got {item!r}")
        k, raw = item.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[k.strip()] = raw
    return out
