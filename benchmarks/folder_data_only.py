"""The data side alone of benchmarks/folder_pipeline.py: batches per second with no model step.

torchvision's ImageFolder + RandomResizedCrop + RandomHorizontalFlip + ToTensor + Normalize in a
DataLoader(num_workers=2, batch 128, shuffle, drop_last) against cnnzoo's FolderLoader (decode-once cache in a
fresh temporary directory, random_resized_crop + hflip), epochs alternated; prints img/s per epoch and side.

    python benchmarks/folder_data_only.py /tmp/fashion-photos 64
"""

import sys
import tempfile
import time

import torch
from torchvision import datasets, transforms as T

from cnnzoo.data import AugmentConfig, load_dataset, make_loader
from cnnzoo.hub import IMAGENET_MEAN, IMAGENET_STD


def main(root: str, size: int, epochs: int = 3) -> None:
    tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    tv = torch.utils.data.DataLoader(datasets.ImageFolder(root + "/train", tf), batch_size=128, shuffle=True,
                                     num_workers=2, drop_last=True, persistent_workers=True)
    ds = load_dataset("folder", root)
    cz = make_loader(ds.train, batch_size=128, train=True, image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     augment=AugmentConfig(hflip=True, random_resized_crop=True), channels_last=True,
                     num_workers=2, in_chans=3, cache=True, cache_dir=tempfile.mkdtemp())
    for e in range(epochs):
        for name, it in (("torchvision", tv), ("cnnzoo", cz)):
            t, n = time.perf_counter(), 0
            for _, y in it:
                n += len(y)
            print(f"epoch {e + 1} {name}: {n / (time.perf_counter() - t):,.0f} img/s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 64)
