"""Pictures of a network: feature maps, first-layer filters, Grad-CAM, training curves, comparison bubbles.

Matplotlib is imported on first use with the Agg backend (files, no display).
"""

from .compare import plot_compare
from .curves import plot_curves
from .features import plot_feature_maps, plot_filters
from .gradcam import grad_cam, plot_grad_cam
from .images import load_image

__all__ = ["grad_cam", "load_image", "plot_compare", "plot_curves", "plot_feature_maps", "plot_filters",
           "plot_grad_cam"]
