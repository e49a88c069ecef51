"""Grad-CAM: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017 (https://arxiv.org/abs/1610.02391).

For a layer's activations ``A`` (``K x H x W``) and the score ``y_c`` of class ``c`` (the logit, before softmax)::

    alpha_k = mean over (i, j) of d y_c / d A_k[i, j]        (how much channel k matters for class c)
    cam     = ReLU(sum_k alpha_k * A_k)                       (only evidence *for* c)

then upsampled to the input and scaled to [0, 1]. The default layer is the output of ``forward_features``: the
last convolutional map, the layer the paper recommends (deepest, still spatial).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ._mpl import DPI, pyplot, save

__all__ = ["GradCam", "grad_cam", "plot_grad_cam", "FEATURES"]

FEATURES = "features"  # the name of forward_features' output as a Grad-CAM layer


@dataclass
class GradCam:
    """A class-activation map and what it explains."""

    cam: torch.Tensor  # H x W in [0, 1], at the input's resolution
    layer: str
    class_index: int
    score: float  # the class logit
    prob: float  # its softmax probability
    predicted: int  # the model's top class


def _last_conv(model: nn.Module) -> str:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        raise UserError("the model has no convolution for Grad-CAM; choose a layer with --layer")
    return names[-1]


def grad_cam(model: nn.Module, x: torch.Tensor, layer: Optional[str] = None,
             class_index: Optional[int] = None) -> GradCam:
    """Grad-CAM of one image ``x`` (``1 x C x H x W``, normalised as the model expects).

    Args:
        model: the classifier (put in eval mode here).
        x: the input batch of one image.
        layer: a submodule name, or ``"features"`` / None for ``forward_features``' output (a module without
            ``forward_features``: its last ``nn.Conv2d``).
        class_index: the class to explain; None explains the predicted one.
    """
    from .features import resolve_layer

    model.eval()
    x = x.detach().clone().requires_grad_(True)  # a graph even where the weights are frozen
    if getattr(model, "check_input", None):
        model.check_input(x)
    acts = []
    if (layer in (None, FEATURES)) and hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        a = model.forward_features(x)
        acts.append(a)
        logits = model.forward_head(a.clone())  # the clone keeps a head's in-place ops off ``a``
        layer = FEATURES
    else:
        layer = layer if layer not in (None, FEATURES) else _last_conv(model)
        mod = resolve_layer(model, layer)

        def hook(m, args, out):
            if not isinstance(out, torch.Tensor):
                raise UserError(f"layer {layer!r} does not return a tensor; choose another")
            acts.append(out)
            return out.clone()  # later in-place ops (ReLU(inplace=True)) change the clone, not ``out``

        h = mod.register_forward_hook(hook)
        try:
            logits = model(x)
        finally:
            h.remove()
        if not acts:
            raise UserError(f"layer {layer!r} is not called in the forward pass; choose another")
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    a = acts[0]
    if a.dim() != 4:
        raise UserError(f"layer {layer!r} outputs shape {tuple(a.shape[1:])}, not a feature map; Grad-CAM needs a "
                        "convolutional layer")
    n = logits.shape[1]
    predicted = int(logits[0].argmax())
    c = predicted if class_index is None else int(class_index)
    if not 0 <= c < n:
        raise UserError(f"--class must be between 0 and {n - 1}, got {c}")
    score = logits[0, c]
    (grad,) = torch.autograd.grad(score, a)
    alpha = grad[0].mean(dim=(1, 2))  # K
    cam = F.relu((alpha.view(-1, 1, 1) * a[0]).sum(0)).detach()
    cam = F.interpolate(cam[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else cam
    prob = float(torch.softmax(logits[0].detach(), 0)[c])
    return GradCam(cam.cpu(), layer, c, float(score.detach()), prob, predicted)


def plot_grad_cam(image: torch.Tensor, result: GradCam, out_png, classes: Optional[Sequence[str]] = None,
                  title: str = "") -> str:
    """Image, heat map and overlay side by side (1200 x 400 px); returns the path.

    Args:
        image: uint8 ``C x H x W``, the picture as the model saw it (same H x W as the map).
        result: from :func:`grad_cam`.
        classes: class names, for the title.
    """
    plt = pyplot()
    img = image.detach().cpu()
    if tuple(img.shape[-2:]) != tuple(result.cam.shape):
        img = F.interpolate(img[None].float(), size=tuple(result.cam.shape), mode="bilinear",
                            align_corners=False, antialias=True)[0].round().clamp(0, 255).to(torch.uint8)
    shown = img.permute(1, 2, 0).numpy() if img.shape[0] == 3 else img[0].numpy()
    cmap = None if img.shape[0] == 3 else "gray"

    def name(i: int) -> str:
        return f"{i} '{classes[i]}'" if classes and i < len(classes) else str(i)

    fig, axes = plt.subplots(1, 3, figsize=(12, 4), dpi=DPI)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.82, wspace=0.04)
    axes[0].imshow(shown, cmap=cmap)
    axes[0].set_title("input")
    axes[1].imshow(result.cam.numpy(), cmap="jet", vmin=0, vmax=1)
    axes[1].set_title(f"Grad-CAM at {result.layer}")
    axes[2].imshow(shown, cmap=cmap)
    axes[2].imshow(result.cam.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[2].set_title("overlay")
    for ax in axes:
        ax.set_axis_off()
    what = f"class {name(result.class_index)}: logit {result.score:.2f}, p = {result.prob:.1%}"
    if result.predicted != result.class_index:
        what += f" (predicted {name(result.predicted)})"
    else:
        what += " (the prediction)"
    fig.suptitle(f"{title}  {what}".strip(), fontsize=12)
    return save(fig, out_png)
