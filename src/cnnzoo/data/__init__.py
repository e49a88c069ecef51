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
from .base import Dataset, FolderData, ImageData, split_validation
from .loader import FolderLoader, Loader, TensorLoader, make_loader
from .sources import DATASETS, load_dataset, load_image

__all__ = [
    "AugmentConfig",
    "DATASETS",
    "Dataset",
    "FolderData",
    "FolderLoader",
    "ImageData",
    "Loader",
    "TensorLoader",
    "load_dataset",
    "load_image",
    "make_loader",
    "split_validation",
]
