"""Pictures of a network: feature maps, first-layer filters, Grad-CAM, training curves, comparison bubbles.

Matplotlib is imported on first use with the Agg backend (files, no display).
"""

from .compare import plot_compare
from .curves import plot_curves
from .features import plot_feature_maps, plot_filters
from .gradcam import grad_cam, plot_grad_cam

__all__ = ["grad_cam", "plot_compare", "plot_curves", "plot_feature_maps", "plot_filters",
           "plot_grad_cam"]
