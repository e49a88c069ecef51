"""Convolution blocks: conv-norm-activation and depthwise-separable convolution."""

from __future__ import annotations

from typing import Callable, Optional

from torch import nn


def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None, round_limit: float = 0.9) -> int:
    """Round a channel count to a multiple of ``divisor``, never dropping more than 10%.

    The rule of the MobileNet v2 and EfficientNet reference code, so that width-multiplied
    networks keep hardware-friendly channel counts.
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return int(new_v)


class ConvBnAct(nn.Sequential):
    """Conv2d -> norm -> activation, as ``0``, ``1``, ``2`` children (torchvision's layout).

    ``padding=None`` gives "same" padding for odd kernels. ``norm_layer=None`` drops the norm and
    gives the convolution a bias; ``act_layer=None`` drops the activation.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: Optional[int] = None,
        groups: int = 1,
        dilation: int = 1,
        norm_layer: Optional[Callable[..., nn.Module]] = nn.BatchNorm2d,
        act_layer: Optional[Callable[..., nn.Module]] = nn.ReLU,
        inplace: Optional[bool] = True,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_chs, out_chs, kernel_size, stride, padding,
                dilation=dilation, groups=groups, bias=norm_layer is None,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_chs))
        if act_layer is not None:
            layers.append(act_layer(inplace=inplace) if inplace is not None else act_layer())
        super().__init__(*layers)
        self.out_channels = out_chs


class DepthwiseSeparableConv(nn.Module):
    """Depthwise k x k convolution then pointwise 1 x 1 (Sifre 2014; MobileNet v1; Xception).

    Costs ``k*k*C_in + C_in*C_out`` weights instead of ``k*k*C_in*C_out``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        norm_layer: Optional[Callable[..., nn.Module]] = nn.BatchNorm2d,
        act_layer: Optional[Callable[..., nn.Module]] = nn.ReLU,
        pw_act: bool = True,
    ) -> None:
        super().__init__()
        self.dw = ConvBnAct(in_chs, in_chs, kernel_size, stride, groups=in_chs, norm_layer=norm_layer, act_layer=act_layer)
        self.pw = ConvBnAct(in_chs, out_chs, 1, norm_layer=norm_layer, act_layer=act_layer if pw_act else None)

    def forward(self, x):
        return self.pw(self.dw(x))
