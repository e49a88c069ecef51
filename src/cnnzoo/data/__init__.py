"""Data: dataset sources, the validation split, loaders and batched augmentation.

    ds = load_dataset("fashion-mnist")
    train, val = split_validation(ds.train, 0.1, seed=0)
    loader = make_loader(train, batch_size=256, train=True, image_size=(28, 28), mean=ds.mean, std=ds.std,
                         augment=AugmentConfig(hflip=True, translate=2))
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, y in loader:
            ...
"""

from .augment import AugmentConfig
from .base import Dataset, FolderData, ImageData, centre_offsets, convert_channels, split_validation, take_per_class
from .images import load_image
from .loader import FolderLoader, Loader, TensorLoader, make_loader
from .sources import DATASETS, load_dataset

__all__ = [
    "AugmentConfig",
    "DATASETS",
    "Dataset",
    "FolderData",
    "FolderLoader",
    "ImageData",
    "Loader",
    "TensorLoader",
    "centre_offsets",
    "convert_channels",
    "load_dataset",
    "load_image",
    "make_loader",
    "split_validation",
    "take_per_class",
]
