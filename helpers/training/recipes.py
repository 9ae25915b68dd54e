"""Every recipe of the series (the published numbers) and the one way a profile shrinks them.

A ``*Recipe`` holds one study's training recipe as published; :func:`scaled` gives it at a profile's
size: image size, epochs (and, through :func:`max_batches`, images per epoch) shrink — the method never
changes. Values the studies do not give are marked in the docstrings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..core.config import Profile

__all__ = ["SOURCES", "OTHER_CHOICES", "BACKBONE_CHANGES", "for_backbone", "recipe_table",
           "SupervisedRecipe", "SimCLRRecipe", "ProbeRecipe", "KerasRecipe", "PatchCoreRecipe", "scaled",
           "with_step_floor", "max_batches"]


@dataclass(frozen=True)
class SupervisedRecipe:
    """Notebook 01: AdamW + OneCycleLR per batch, weighted CE, early stopping (the study: on val loss; here on val
    AUROC, see :data:`SOURCES`)."""

    batch_size: int = 64
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_lr: float = 0.01
    patience: int = 5
    clip_grad: float = 1.0
    image_size: int = 256
    threshold_method: str = "f1"
    backbone: str = "resnet50"
    monitor: str = "val_auroc"
    augmentation: str = "full"
    batchnorm: str = "train"
    mixed_precision: bool = True


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
    backbone: str = "resnet50"
    mixed_precision: bool = True


@dataclass(frozen=True)
class ProbeRecipe:
    """Notebook 03: Linear(2048, 2) on the frozen encoder, 10% of train labels, Adam 1e-4, batch 32, 30 epochs.

    Class balance: cross-entropy weighted by the inverse class frequencies of the labelled 10%.
    """

    label_fraction: float = 0.1
    batch_size: int = 32
    epochs: int = 30
    lr: float = 1e-4
    clip_grad: float = 1.0
    image_size: int = 256
    threshold_method: str = "f1"
    knn_k: tuple[int, ...] = (1, 5)
    min_steps: int = 300


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
    min_steps: int = 200
    #: a frozen backbone only (:func:`helpers.workflows.multitask.run`): the training images' features are computed
    #: once, under this many draws of the augmentation, and every epoch samples its images from them
    feature_draws: int = 4
    #: derived (:func:`with_step_floor`): the epochs that hold ``min_steps`` steps on the data; early stopping waits
    min_epochs: int = 0


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


@dataclass(frozen=True)
class LabelBudgetRecipe:
    """Notebook 09 (in neither study): the label budgets each approach trains on, and how many seeds per budget.

    The supervised model and the probe are trained with their own recipes (01's and 03's) on each budget's subset;
    only the subset and the seed change."""

    probe_fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
    probe_seeds: int = 5
    supervised_fractions: tuple[float, ...] = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
    supervised_seeds: int = 3


#: The smaller profiles' budgets: fewer supervised fits (each costs a full fine-tune; the probe's cost milliseconds).
LABEL_BUDGETS_BY_PROFILE = {
    "quick": LabelBudgetRecipe(supervised_fractions=(0.1, 0.25, 1.0), supervised_seeds=1, probe_seeds=3),
    "smoke": LabelBudgetRecipe(probe_fractions=(0.25, 1.0), probe_seeds=2, supervised_fractions=(1.0,),
                               supervised_seeds=1),
}

R = TypeVar("R", SupervisedRecipe, SimCLRRecipe, ProbeRecipe, KerasRecipe, PatchCoreRecipe, LabelBudgetRecipe)

_OURS = "our choice: "
_SHRUNK = "the study's value; smaller profiles shrink it"
_PROTOCOL = _OURS + "the series' protocol: F1-max on val, the same rule for every model"
_STUDY_NET = ("study 000 (ImageNet ResNet-50); BACKBONE='auto' uses it when its weights can be had, else, loudly, the "
              "offline stand-in EfficientNet-Lite0 (helpers.models.backbones.resolve)")
#: Where every recipe value comes from: the study that published it, or "our choice: <why>". A test keeps it
#: complete; the notebooks show it beside the recipe (:func:`recipe_table`).
_MIXED = (_OURS + "float16 autocast with a dynamic loss scale on a CUDA GPU only (the study does not say; a CPU "
          "trains in float32): on a T4, SimCLR's estimated peak 13.2 → 7.4 GB and about 2.8× the images per second "
          "(benchmarks/t4_budget.py, docs/benchmarks.md)")
SOURCES: dict[type, dict[str, str]] = {
    SupervisedRecipe: {
        "batch_size": "study 000", "lr": "study 000", "weight_decay": "study 000", "max_lr": "study 000",
        "patience": "study 000", "clip_grad": "study 000", "image_size": "study 000; " + _SHRUNK,
        "epochs": _OURS + "the study gives no epoch count; 30 is an upper bound that early stopping (patience 5) "
                          "cuts short",
        "threshold_method": _PROTOCOL, "backbone": _STUDY_NET,
        "monitor": _OURS + "the epoch kept (and early stopping, patience 5) by val AUROC, the series' target metric; the "
                   "study's val loss picked the 3rd of 10 epochs on the built-in data's 71 val images (test AUROC 0.78 "
                   "vs 0.88; docs/benchmarks.md)",
        "augmentation": _OURS + "flips, ±20° rotation, colour jitter 0.2, blur: the studies name no parameters",
        "batchnorm": _OURS + "PyTorch's default, which the study's fine-tune would have had (it says nothing of "
                     "BatchNorm): the statistics follow the training batches",
        "mixed_precision": _MIXED},
    SimCLRRecipe: {
        "batch_size": "study 000", "epochs": "study 000", "temperature": "study 000",
        "image_size": "study 000; " + _SHRUNK,
        "lr": _OURS + "the study names no optimiser; AdamW 1e-3 learnt from a random init where 3e-4 stayed at "
                      "chance and 3e-3 collapsed (docs/benchmarks.md); untested from ImageNet weights",
        "weight_decay": _OURS + "AdamW's usual 1e-4 (the study names no optimiser)",
        "warmup_fraction": _OURS + "a 10% linear warm-up then cosine, the usual SimCLR schedule",
        "clip_grad": _OURS + "max-norm 1.0, as every torch model here", "backbone": _STUDY_NET,
        "mixed_precision": _MIXED},
    ProbeRecipe: {
        "label_fraction": "study 000 (which drew its 10% from its test data; ours is 10% of train)",
        "batch_size": "study 000", "epochs": "study 000", "lr": "study 000", "image_size": "study 000; " + _SHRUNK,
        "clip_grad": _OURS + "max-norm 1.0, as every torch model here (the study does not say)",
        "threshold_method": _PROTOCOL,
        "knn_k": _OURS + "the kNN score is not in the study: k = 1 (PatchCore's nearest neighbour) and 5",
        "min_steps": _OURS + "at least 300 optimisation steps (epochs added when the labelled set is small): 30 epochs of "
                     "a 30-image set are 30 steps, too few for Adam at 1e-4 to move a linear layer from its random start "
                     "(built-in data: test AUROC 0.75 → 0.87); on MVTec AD's 10% (~340 images) 30 epochs are ~330 steps, "
                     "and nothing changes"},
    KerasRecipe: {
        "image_size": "study 001; " + _SHRUNK, "batch_size": "study 001", "epochs": "study 001",
        "patience": "study 001", "category_weight": "study 001", "defect_weight": "study 001",
        "threshold_method": _PROTOCOL,
        "min_steps": _OURS + "at least 200 optimisation steps (epochs added when the data is small; not in smoke): the "
                     "quick profile's 7 epochs of the built-in train split are 63 steps, where the category loss had "
                     "barely moved (2.74 → 2.32, ln 15 = 2.71); measured on the built-in data, val category accuracy "
                     "reaches 0.93 after 150–200 steps (docs/benchmarks.md). The study's 20 epochs on MVTec AD are "
                     "about 2,300 steps: nothing changes at the full profile",
        "min_epochs": _OURS + "derived from min_steps and the data: the study's early stopping (patience 5 on val loss) "
                      "starts watching after them, else it ends the floor early (bottle: 34 epochs planned, stopped "
                      "after 6)",
        "feature_draws": _OURS + "a frozen backbone (the ImageNet network) only: its features of the training images "
                         "are computed once under 4 draws of the augmentation, and each epoch samples its images from "
                         "them, instead of a forward pass through the backbone at every step (Keras's 'fast feature "
                         "extraction', with the augmentation kept). Built-in data, quick, at 96 px: the heads train in "
                         "14 s instead of 41 s, test AUROC 0.94 either way (docs/benchmarks.md). The study's network "
                         "trains end to end and ignores it"},
    LabelBudgetRecipe: {
        "probe_fractions": _OURS + "1% to all of train's labels, about doubling: the issue's 0–100% ladder; 0% is the "
                           "one-class references (kNN, PatchCore), which use no defect label",
        "probe_seeds": _OURS + "5 draws of each subset (a probe fit costs milliseconds on cached features)",
        "supervised_fractions": _OURS + "from 2% (at MVTec AD's size, ~25 defective images: at least one per category) "
                                "to all; smaller profiles keep fewer (each is a full fine-tune)",
        "supervised_seeds": _OURS + "3 draws of each subset and initialisation: the spread a practitioner would see"},
    PatchCoreRecipe: {
        "resize": "PatchCore paper", "crop": "PatchCore paper", "coreset_fraction": "PatchCore paper (also 1%)",
        "num_neighbors": "PatchCore paper", "blur_sigma": "PatchCore paper",
        "backbone": "PatchCore paper (offline: EfficientNet-Lite0, loudly — our choice, the only ImageNet "
                    "backbone available without internet)"},
}
#: Values of the methods that are not recipe fields, with their sources (shown in the notebooks' tables).
OTHER_CHOICES = {
    "supervised head hidden width 512": _OURS + "the study replaces fc with a head but gives no width",
    "augmentations (flips, ±20° rotation, colour jitter 0.2, blur)": _OURS + "the studies name no parameters",
    "probe class weighting (inverse class frequency)": _OURS + "the study's probe called almost everything "
                                                       "defective (FPR 98.9%)",
    "PatchCore per-level dimension then 1024": "PatchCore's official implementation (1024 per level, then 1024); "
                                              "our choice for small backbones: min(1024, widest level)",
}


#: Values that change when a run's backbone is not the study's network, measured on that network
#: (``{backbone: {recipe class: {field: (value, source)}}}``): the studies published theirs for ImageNet ResNet-50.
BACKBONE_CHANGES: dict[str, dict[type, dict[str, tuple[Any, str]]]] = {
    "efficientnet_lite0": {
        SupervisedRecipe: {"max_lr": (1e-3, _OURS + "for EfficientNet-Lite0 (the offline stand-in): OneCycle to the "
                                       "study's 0.01 (set for ResNet-50) wrecks its ImageNet features on small data — "
                                       "built-in data test AUROC 0.53 vs 0.84 at 1e-3 (docs/benchmarks.md)"),
                           "batchnorm": ("frozen", _OURS + "for EfficientNet-Lite0: its BatchNorm momentum is "
                                         "TensorFlow's 0.01, so over a short fine-tune its running statistics lag the "
                                         "weights and evaluation collapses (bottle, quick: val accuracy stuck at 0.79, "
                                         "every image 'good'); kept at ImageNet's (scale and shift still train), as "
                                         "Keras's fine-tuning guide advises: bottle test AUROC over seeds 42 / 1 / 2 "
                                         "0.90 / 0.83 / 0.81 → 0.98 / 0.99 / 0.98 (docs/benchmarks.md)")},
    },
}


def for_backbone(recipe: R, backbone: str) -> R:
    """The recipe for a run on ``backbone``: the published values, with :data:`BACKBONE_CHANGES` for a network the
    study did not use (each change measured and sourced; :func:`recipe_table` shows them)."""
    changes = BACKBONE_CHANGES.get(backbone, {}).get(type(recipe), {})
    return replace(recipe, **{k: v for k, (v, _) in changes.items()}) if changes else recipe


def recipe_table(recipe: Any, backbone: str | None = None) -> Any:
    """The recipe as a table: each value (at this profile and backbone, and as published when it differs) and its
    source."""
    from dataclasses import asdict

    import pandas as pd

    full = asdict(type(recipe)())
    changed = BACKBONE_CHANGES.get(backbone or "", {}).get(type(recipe), {})
    rows = [{"field": k, "value": v, "full profile": full[k] if full[k] != v else "",
             "source": changed[k][1] if k in changed else SOURCES[type(recipe)][k]} for k, v in asdict(recipe).items()]
    return pd.DataFrame(rows).set_index("field")


def scaled(recipe: R, profile: Profile) -> R:
    """The recipe at a profile's size; the method stays the same.

    - PyTorch recipes: ``image_size`` = the profile's, epochs scaled by the profile;
    - the Keras recipe: ``image_size`` = the profile's ``tf_image_size``, epochs scaled;
    - PatchCore (no epochs): resize = the profile's image size, crop kept at the same ratio (7/8).
    """
    r: Any = recipe              # one of the recipe dataclasses (the TypeVar keeps the caller's type)
    if isinstance(r, LabelBudgetRecipe):
        return LABEL_BUDGETS_BY_PROFILE.get(profile.name, r)  # type: ignore[return-value]
    if isinstance(r, PatchCoreRecipe):
        size = profile.image_size
        return replace(r, resize=size, crop=int(round(size * r.crop / r.resize)))  # type: ignore[return-value]
    size = profile.tf_image_size if isinstance(r, KerasRecipe) else profile.image_size
    return replace(r, image_size=size, epochs=profile.epochs(r.epochs))


def with_step_floor(recipe: KerasRecipe, n_train: int, profile: Profile) -> KerasRecipe:
    """The Keras recipe with enough epochs for ``recipe.min_steps`` optimiser steps on ``n_train`` images (the
    epochs are raised, never lowered) and early stopping held off until they are done (``min_epochs``). Data large
    enough for the profile's epochs to hold the floor keep the recipe as it is; smoke has no floors
    (:attr:`Profile.step_floors`)."""
    if not profile.step_floors or recipe.min_steps <= 0:
        return recipe
    steps = max(1, math.ceil(n_train / recipe.batch_size))
    floor = math.ceil(recipe.min_steps / steps)
    return recipe if floor <= recipe.epochs else replace(recipe, epochs=floor, min_epochs=floor)


def max_batches(profile: Profile, batch_size: int) -> int | None:
    """Batches per epoch allowed by the profile's ``max_train_images`` (None = all)."""
    if profile.max_train_images is None:
        return None
    return max(1, math.ceil(profile.max_train_images / batch_size))
