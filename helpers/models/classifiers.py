"""The PyTorch classifiers of notebooks 01 and 03: a backbone with the supervised head, and the linear probe.

Both sit on a :class:`helpers.models.backbones.StagedNet` (pooled features of width ``feature_dim``) and output two
logits (good, defective); the defect score is ``softmax(logits)[:, 1]`` (:func:`defect_probability`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from . import backbones as B

__all__ = ["FROZEN_STAGES", "BATCHNORM", "supervised_head", "Classifier", "LinearProbe", "defect_probability",
           "inverse_frequency_weights"]

#: Study 000 freezes ResNet-50's ``conv1``, ``layer1`` and ``layer2``: the stem and the stride-4 and stride-8 stages,
#: the same stages on every backbone (:func:`helpers.models.backbones.stage_names`).
FROZEN_STAGES = ("stem", "stride4", "stride8")
#: How the backbone's BatchNorm layers fine-tune: ``train`` (PyTorch's default: statistics follow the batches) or
#: ``frozen`` (they keep the pretrained statistics; :class:`Classifier`).
BATCHNORM = ("train", "frozen")


def supervised_head(in_features: int, n_classes: int = 2) -> nn.Sequential:
    """Dropout(0.5) → Linear(in, 512) → ReLU → BatchNorm1d(512) → Dropout(0.3) → Linear(512, 2) (study 000's head;
    the width 512 is our choice: the study gives none)."""
    return nn.Sequential(nn.Dropout(0.5), nn.Linear(in_features, 512), nn.ReLU(inplace=True),
                         nn.BatchNorm1d(512), nn.Dropout(0.3), nn.Linear(512, n_classes))


class Classifier(nn.Module):
    """Notebook 01's model: a backbone, its first stages frozen (:data:`FROZEN_STAGES`: weights and BatchNorm
    statistics), and :func:`supervised_head` on its pooled features. ``batchnorm="frozen"`` keeps the backbone's
    BatchNorm statistics in the stages that train too (:meth:`helpers.models.backbones.StagedNet.freeze_statistics`;
    the recipe's ``batchnorm``)."""

    def __init__(self, backbone: B.StagedNet, frozen: Sequence[str] = FROZEN_STAGES, *, batchnorm: str = "train"):
        super().__init__()
        if batchnorm not in BATCHNORM:
            raise ValueError(f"batchnorm={batchnorm!r}: expected one of {BATCHNORM}")
        self.backbone = backbone.freeze(frozen).freeze_statistics(batchnorm == "frozen")
        self.head = supervised_head(backbone.feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class LinearProbe(nn.Module):
    """A frozen encoder (in eval mode: its BatchNorm statistics stay those of pretraining) and a trainable
    ``Linear(feature_dim, 2)``."""

    def __init__(self, encoder: nn.Module, n_classes: int = 2):
        super().__init__()
        self.encoder = encoder
        for p in self.encoder.parameters():
            p.requires_grad = False
        self.head = nn.Linear(_width(encoder), n_classes)

    def train(self, mode: bool = True) -> LinearProbe:
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # no torch.no_grad() here: the frozen encoder builds no graph by itself, and Grad-CAM
        # (notebook 05) must be able to take gradients through it
        return self.head(self.encoder(x))


def _width(encoder: nn.Module) -> int:
    """The width of an encoder's pooled features (its ``feature_dim``)."""
    width = getattr(encoder, "feature_dim", None)
    if not isinstance(width, int):
        raise ValueError(f"{type(encoder).__name__} has no feature_dim: an encoder declares the width of its features")
    return width


def defect_probability(logits: torch.Tensor) -> torch.Tensor:
    """The defect score every PyTorch classifier reports: softmax probability of class 1 (defective)."""
    return torch.softmax(logits.float(), dim=1)[:, 1]


def inverse_frequency_weights(labels: Iterable[int], n_classes: int = 2) -> torch.Tensor:
    """Class weights ``n / (n_classes · count_c)``: each class contributes equally to the loss."""
    counts = np.bincount(np.asarray(list(labels), dtype=int), minlength=n_classes).astype(float)
    if (counts == 0).any():
        raise ValueError(f"a class has no examples (counts {counts.tolist()}): cannot weight by inverse frequency")
    return torch.tensor(counts.sum() / (n_classes * counts), dtype=torch.float32)
