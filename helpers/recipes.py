"""Every recipe of the series (the published numbers) and the one way a profile shrinks them.

A ``*Recipe`` holds one study's training recipe as published; :func:`scaled` gives it at a profile's
size: image size, epochs (and, through :func:`max_batches`, images per epoch) shrink — the method never
changes. Values the studies do not give are marked in the docstrings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TypeVar

from .config import Profile

__all__ = ["SupervisedRecipe", "SimCLRRecipe", "ProbeRecipe", "KerasRecipe", "PatchCoreRecipe", "scaled",
           "max_batches"]


@dataclass(frozen=True)
class SupervisedRecipe:
    """Notebook 01: AdamW + OneCycleLR per batch, weighted CE, early stopping on val loss."""

    batch_size: int = 64
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_lr: float = 0.01
    patience: int = 5
    clip_grad: float = 1.0
    image_size: int = 256
    threshold_method: str = "f1"


@dataclass(frozen=True)
class SimCLRRecipe:
    """Notebook 02: NT-Xent (t = 0.07), batch 48 with drop_last, 7 epochs.

    The study does not name its optimiser; we use AdamW (lr 1e-3, weight decay 1e-4) with a linear
    warm-up over the first 10% of steps and cosine decay to 0. Measured on generated data (defects 4× the
    built-in size, the learning tests' data) from a
    random init: at lr 3e-4 the loss stayed at chance (log(2B − 1)) for 20 epochs, at 3e-3 it collapsed,
    at 1e-3 it fell (docs/benchmarks.md).
    """

    batch_size: int = 48
    epochs: int = 7
    temperature: float = 0.07
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    clip_grad: float = 1.0
    image_size: int = 256


@dataclass(frozen=True)
class ProbeRecipe:
    """Notebook 03: Linear(2048, 2) on the frozen encoder, 10% of train labels, Adam 1e-4, batch 32, 30 epochs.

    Class balance: cross-entropy weighted by the inverse class frequencies of the labelled 10%.
    """

    label_fraction: float = 0.1
    batch_size: int = 32
    epochs: int = 30
    lr: float = 1e-4
    image_size: int = 256
    threshold_method: str = "f1"
    knn_k: tuple[int, ...] = (1, 5)


@dataclass(frozen=True)
class KerasRecipe:
    """Notebook 04: 224 px, batch 32, 20 epochs, patience 5, loss weights 1.0 / 2.0, Adam defaults."""

    image_size: int = 224
    batch_size: int = 32
    epochs: int = 20
    patience: int = 5
    category_weight: float = 1.0
    defect_weight: float = 2.0
    threshold_method: str = "f1"


@dataclass(frozen=True)
class PatchCoreRecipe:
    """Notebook 06: resize 256 → centre crop 224, coreset 10%, b = 9, σ = 4, WideResNet-50
    (offline: EfficientNet-Lite0)."""

    resize: int = 256
    crop: int = 224
    coreset_fraction: float = 0.1
    num_neighbors: int = 9
    blur_sigma: float = 4.0
    backbone: str = "wide_resnet50_2"


R = TypeVar("R", SupervisedRecipe, SimCLRRecipe, ProbeRecipe, KerasRecipe, PatchCoreRecipe)


def scaled(recipe: R, profile: Profile) -> R:
    """The recipe at a profile's size; the method stays the same.

    - PyTorch recipes: ``image_size`` = the profile's, epochs scaled by the profile;
    - the Keras recipe: ``image_size`` = the profile's ``tf_image_size``, epochs scaled;
    - PatchCore (no epochs): resize = the profile's image size, crop kept at the same ratio (7/8).
    """
    if isinstance(recipe, PatchCoreRecipe):
        size = profile.image_size
        return replace(recipe, resize=size, crop=int(round(size * recipe.crop / recipe.resize)))
    size = profile.tf_image_size if isinstance(recipe, KerasRecipe) else profile.image_size
    return replace(recipe, image_size=size, epochs=profile.epochs(recipe.epochs))


def max_batches(profile: Profile, batch_size: int) -> int | None:
    """Batches per epoch allowed by the profile's ``max_train_images`` (None = all)."""
    if profile.max_train_images is None:
        return None
    return max(1, math.ceil(profile.max_train_images / batch_size))
