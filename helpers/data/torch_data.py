"""PyTorch datasets and Albumentations pipelines over the manifest and the image cache.

- :func:`train_transform`: resize, horizontal + vertical flips, rotation, colour jitter, Gaussian blur,
  ImageNet normalisation (the supervised recipe).
- :func:`eval_transform`: resize + normalisation.
- :class:`TwoViews` of :func:`simclr_transform`: two independent SimCLR views (random resized crop,
  flip, strong colour jitter, random grayscale, blur).

Items are dicts: ``image`` (C×H×W float tensor, or a pair for two views), ``label`` (0/1),
``category`` (index into the sorted category names) and ``index`` (row in the frame).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import DataLoader, Dataset

from ..core.config import IMAGENET_MEAN, IMAGENET_STD
from .cache import ImageCache
from .images import load_rgb

__all__ = ["AUGMENTATIONS", "train_transform", "eval_transform", "simclr_transform", "TwoViews", "category_names", "MVTecDataset",
           "make_loader"]


Stats = tuple[float, float, float]


#: The supervised model's training augmentations: ``full`` (flips, ±20° rotation, colour jitter, blur) or ``flips``.
AUGMENTATIONS = ("full", "flips")


def train_transform(size: int = 256, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD,
                    augment: str = "full") -> A.Compose:
    """The supervised training augmentation (recipe: size 256), normalised with the backbone's ``mean``/``std``:
    ``full`` (flips, rotation, colour jitter, blur) or ``flips`` (horizontal and vertical flips only)."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment={augment!r}: expected one of {AUGMENTATIONS}")
    extra = [A.Rotate(limit=20, border_mode=cv2.BORDER_REFLECT_101, p=0.5),
             A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
             A.GaussianBlur(blur_limit=(3, 5), p=0.2)] if augment == "full" else []
    return A.Compose([A.Resize(size, size), A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), *extra,
                      A.Normalize(mean=mean, std=std), ToTensorV2()])


def eval_transform(size: int = 256, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD) -> A.Compose:
    """Evaluation: resize and normalisation only (:mod:`helpers.data.preprocessing` computes the same)."""
    return A.Compose([A.Resize(size, size), A.Normalize(mean=mean, std=std), ToTensorV2()])


def simclr_transform(size: int = 256, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD) -> A.Compose:
    """One SimCLR view: random resized crop, flip, strong colour jitter, random grayscale, blur."""
    return A.Compose([
        A.RandomResizedCrop(size=(size, size), scale=(0.2, 1.0)),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, p=0.8),
        A.ToGray(p=0.2),
        A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.1, 2.0), p=0.5),
        A.Normalize(mean=mean, std=std),
        ToTensorV2(),
    ])


class TwoViews:
    """Apply a transform twice, independently: the SimCLR positive pair."""

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(image=image)["image"], self.transform(image=image)["image"]


def category_names(frame: pd.DataFrame) -> list[str]:
    """Sorted category names: the label encoding shared by both frameworks (index = class id)."""
    return sorted(frame["category"].unique())


class MVTecDataset(Dataset):
    """Rows of a manifest/split frame, read from an :class:`ImageCache` or decoded from disk.

    Args:
        frame: rows with ``path``, ``label``, ``category``.
        cache: the memory-mapped cache (fast path); when None, images are decoded from ``root``.
        root: the dataset root (needed without a cache).
        transform: an Albumentations pipeline (``image=`` keyword) or a callable like :class:`TwoViews`.
        categories: the label encoding (default: :func:`category_names` of ``frame``).
    """

    def __init__(self, frame: pd.DataFrame, cache: ImageCache | None = None, root: str | os.PathLike | None = None,
                 transform: Callable | None = None, categories: list[str] | None = None):
        if cache is None and root is None:
            raise ValueError("MVTecDataset needs a cache or a dataset root")
        self.frame = frame.reset_index(drop=True)
        self.cache, self.root = cache, Path(root) if root is not None else None
        self.rows = cache.indices(self.frame["path"]) if cache is not None else None
        self.transform = transform
        self.categories = categories or category_names(frame)
        lookup = {c: i for i, c in enumerate(self.categories)}
        self.category_ids = self.frame["category"].map(lookup).to_numpy()
        self.labels = self.frame["label"].to_numpy(dtype=np.int64)

    def __len__(self) -> int:
        return len(self.frame)

    def image(self, i: int) -> np.ndarray:
        """The H×W×3 uint8 image of row ``i`` (from the cache when there is one)."""
        if self.cache is not None and self.rows is not None:
            return np.array(self.cache.images[self.rows[i]])
        assert self.root is not None
        return load_rgb(self.root / self.frame.at[i, "path"])

    def __getitem__(self, i: int) -> dict:
        img = self.image(i)
        if self.transform is None:
            out = torch.from_numpy(img).permute(2, 0, 1)
        elif isinstance(self.transform, A.BaseCompose):
            out = self.transform(image=img)["image"]
        else:
            out = self.transform(img)
        return {"image": out, "label": int(self.labels[i]), "category": int(self.category_ids[i]), "index": i}


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 42,
                num_workers: int = 0, drop_last: bool = False, sampler=None) -> DataLoader:
    """A reproducible DataLoader: seeded shuffling and per-worker seeds (Albumentations uses ``random``)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False,
                      sampler=sampler, num_workers=num_workers, drop_last=drop_last,
                      worker_init_fn=_seed_worker, generator=generator,
                      pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0)
