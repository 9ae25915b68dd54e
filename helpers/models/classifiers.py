"""PyTorch models of notebooks 01–03: the supervised ResNet-50, SimCLR and the linear probe.

ImageNet weights (``IMAGENET1K_V2``) are downloaded by torchvision when the internet is there (Colab).
Offline they cannot be, and :func:`resnet50_backbone` falls back to ``weights=None`` with a loud warning
and says so in its return value — results of a randomly initialised backbone are not comparable.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet, ResNet50_Weights, resnet50

from ..core import files
from ..core.env import loud_warning

__all__ = ["FEATURE_DIM", "resnet50_backbone", "supervised_head", "SupervisedResNet50", "supervised_resnet50", "SimCLR",
           "nt_xent", "LinearProbe", "inverse_frequency_weights", "save_model", "load_model", "predict"]

FEATURE_DIM = 2048


def resnet50_backbone(pretrained: bool = True) -> tuple[nn.Module, str]:
    """torchvision ResNet-50 and the name of the weights it holds (``"none (random init)"`` offline)."""
    if pretrained:
        try:
            return resnet50(weights=ResNet50_Weights.IMAGENET1K_V2), "IMAGENET1K_V2"
        except Exception as err:  # noqa: BLE001 - any download failure means no weights
            message = (f"ImageNet weights for ResNet-50 could not be loaded ({type(err).__name__}: {err}). "
                       "FALLING BACK TO weights=None (random initialisation): results are NOT those of the "
                       "recipe. Connect to the internet (e.g. Colab) for the real run.")
            loud_warning(message)
    return resnet50(weights=None), "none (random init)"


def supervised_head(in_features: int = FEATURE_DIM, n_classes: int = 2) -> nn.Sequential:
    """Dropout(0.5) → Linear(2048, 512) → ReLU → BatchNorm1d(512) → Dropout(0.3) → Linear(512, 2)."""
    return nn.Sequential(nn.Dropout(0.5), nn.Linear(in_features, 512), nn.ReLU(inplace=True),
                         nn.BatchNorm1d(512), nn.Dropout(0.3), nn.Linear(512, n_classes))


class SupervisedResNet50(ResNet):
    """torchvision's ResNet-50 whose frozen stages stay in eval mode when the model trains.

    Switching ``requires_grad`` off freezes the weights, not BatchNorm's running statistics: in ``train()``
    they would still move with every batch. Frozen means frozen: ``train()`` leaves :attr:`FROZEN` in eval mode
    (their BatchNorm layers normalise with, and keep, the ImageNet statistics). Same state_dict as ResNet.
    """

    FROZEN = ("conv1", "bn1", "layer1", "layer2")

    def train(self, mode: bool = True) -> SupervisedResNet50:
        super().train(mode)
        for name in self.FROZEN:
            getattr(self, name).eval()
        return self


def supervised_resnet50(pretrained: bool = True) -> tuple[nn.Module, str]:
    """ResNet-50 with everything frozen except ``layer3``, ``layer4`` and the new head (recipe of 01); the
    frozen stages stay in eval mode while training (:class:`SupervisedResNet50`)."""
    model, weights = resnet50_backbone(pretrained)
    model.__class__ = SupervisedResNet50            # same modules and weights; only train() differs
    for name, param in model.named_parameters():
        param.requires_grad = not name.startswith(SupervisedResNet50.FROZEN)
    model.fc = supervised_head()
    return model.train(), weights


class SimCLR(nn.Module):
    """ResNet-50 encoder (fc removed) + projection head Linear(2048, 1024) → ReLU → Linear(1024, 256)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        encoder.fc = nn.Identity()
        self.encoder = encoder
        self.projector = nn.Sequential(nn.Linear(FEATURE_DIM, 1024), nn.ReLU(inplace=True), nn.Linear(1024, 256))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """NT-Xent (SimCLR) loss of two batches of projections, where ``z1[i]`` and ``z2[i]`` are a pair.

    For each of the 2N views, the other view of its image is the positive and the remaining 2N − 2
    views are negatives; cosine similarities are divided by ``temperature``; the loss is the mean
    cross-entropy over all 2N views.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


class LinearProbe(nn.Module):
    """A frozen encoder (2048-d output) and a trainable Linear(2048, 2)."""

    def __init__(self, encoder: nn.Module, n_classes: int = 2):
        super().__init__()
        self.encoder = encoder
        for p in self.encoder.parameters():
            p.requires_grad = False
        self.head = nn.Linear(FEATURE_DIM, n_classes)

    def train(self, mode: bool = True) -> LinearProbe:
        super().train(mode)
        self.encoder.eval()  # frozen: BatchNorm statistics stay those of pretraining
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # no torch.no_grad() here: the frozen encoder builds no graph by itself, and Grad-CAM
        # (notebook 05) must be able to take gradients through it
        return self.head(self.encoder(x))


def inverse_frequency_weights(labels: Iterable[int], n_classes: int = 2) -> torch.Tensor:
    """Class weights ``n / (n_classes · count_c)``: each class contributes equally to the loss."""
    counts = np.bincount(np.asarray(list(labels), dtype=int), minlength=n_classes).astype(float)
    if (counts == 0).any():
        raise ValueError(f"a class has no examples (counts {counts.tolist()}): cannot weight by inverse frequency")
    return torch.tensor(counts.sum() / (n_classes * counts), dtype=torch.float32)


# --------------------------------------------------------------------------------------------------
# Saving, loading, predicting
# --------------------------------------------------------------------------------------------------
def save_model(model: nn.Module, path: str | os.PathLike, arch: str, image_size: int, **meta) -> Path:
    """Save weights with what is needed to rebuild them (``arch``: supervised_resnet50 | linear_probe | simclr)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(path) as tmp:
        torch.save({"arch": arch, "state_dict": model.state_dict(), "image_size": image_size, **meta}, tmp)
    return path


def load_model(path: str | os.PathLike, map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by :func:`save_model` (no weights are downloaded); returns (model, metadata)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved model at {path}.")
    from ..training.loop import safe_load

    blob = safe_load(path, "model file", "Load only models you trust; re-create this one with its notebook.")
    arch = blob["arch"]
    if arch == "supervised_resnet50":
        model, _ = supervised_resnet50(pretrained=False)
    elif arch == "simclr":
        model = SimCLR(resnet50(weights=None))
    elif arch == "linear_probe":
        encoder = resnet50(weights=None)
        encoder.fc = nn.Identity()
        model = LinearProbe(encoder)
    else:
        raise ValueError(f"{path}: unknown arch {arch!r}")
    model.load_state_dict(blob["state_dict"])
    model.to(map_location).eval()
    return model, {k: v for k, v in blob.items() if k != "state_dict"}


@torch.no_grad()
def predict(model_or_path: nn.Module | str | os.PathLike, images: Iterable, image_size: int | None = None,
            batch_size: int = 32) -> np.ndarray:
    """Defect probabilities for image paths or H×W×3 uint8 arrays, with a saved or in-memory model.

    Each image is resized by :func:`helpers.cache.load_resized`, the function that built the cache the model
    was trained and scored on, so a file scores here exactly as it did in the notebook's ``scores.csv``.
    """
    from ..data.cache import load_resized
    from ..data.torch_data import eval_transform
    from ..training.loop import defect_probability

    if isinstance(model_or_path, (str, os.PathLike)):
        model, meta = load_model(model_or_path)
        image_size = image_size or meta["image_size"]
    else:
        model = model_or_path.eval()
    if image_size is None:
        raise ValueError("image_size is needed with an in-memory model")
    transform = eval_transform(image_size)
    device = next(model.parameters()).device
    tensors = [transform(image=load_resized(x, image_size))["image"] for x in images]
    out = [defect_probability(model(torch.stack(tensors[i:i + batch_size]).to(device))).cpu().numpy()
           for i in range(0, len(tensors), batch_size)]
    return np.concatenate(out) if out else np.zeros(0)
