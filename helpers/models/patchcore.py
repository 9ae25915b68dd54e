"""PatchCore (Roth et al., CVPR 2022): a one-class anomaly detector fitted on good images only — one ``nn.Module``.

Recipe: two mid-level stages of an ImageNet backbone (stride 8 and 16: WideResNet-50's ``layer2`` + ``layer3``;
offline, EfficientNet-Lite0's), each averaged over its 3×3 neighbourhood, the coarser one upsampled to the finer
grid, each brought to the same dimension (equal weight, as the official implementation does), concatenated and
pooled to at most 1024 channels → one feature per patch. A memory bank of the good images' patches is subsampled by
greedy coreset selection (10% by default, distances on a random projection to 128 dims). A test patch's score is
the distance to its nearest bank patch; the image score is the maximum patch score, reweighted as in the paper
(b = 9 neighbours); the anomaly map is the patch-score grid upsampled to the input and Gaussian-blurred (σ = 4).

:class:`PatchCore` holds one bank per category (a padded buffer) and each category's score normalisation. Notebook
06 fits and scores with it, the export (``python -m helpers export``) is the same module, and ``predict`` scores
with either: one implementation. Its forward takes the image batch (N×3×H×W in [0, 1]; the backbone's own
normalisation is inside) and the category's index, and returns the normalised image score (0.5 = the category's
threshold) and anomaly map. Distances are ``|q|² − 2 q·b + |b|²`` (MatMul and ReduceSum: every exporter knows them).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import backbones as B
from .sampling import BANK_CHUNK, greedy_coreset, nearest

__all__ = ["PatchFeatures", "load_features", "patch_features", "PatchCore", "gaussian_blur"]


class PatchFeatures(nn.Module):
    """A backbone's stride-8 and stride-16 stages as patch features (:func:`patch_features`); input in [0, 1]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, key: str, weights: str = "imagenet", net: B.StagedNet | None = None):
        super().__init__()
        entry = B.get(key)
        self.key, self.stages = key, entry.patchcore_stages
        self.net = (net if net is not None else B.build(key, weights)).eval()
        self.weights = entry.weights if weights == "imagenet" else "random"
        self.name = f"{entry.title} ({self.weights}): stages {' + '.join(self.stages)}"
        self.register_buffer("mean", torch.tensor(entry.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(entry.std).view(1, 3, 1, 1))
        self.choice = B.Choice(key, self.weights, key, key)

    @torch.no_grad()
    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        fine, coarse = self.net.stage_outputs((x01 - self.mean) / self.std, self.stages)
        return patch_features((fine, coarse))


def load_features(backbone: str | B.Choice = "auto", study: str = "wide_resnet50_2") -> PatchFeatures:
    """PatchCore's backbone for a ``BACKBONE`` request (:func:`helpers.models.backbones.resolve`): the paper's
    WideResNet-50 when its ImageNet weights can be had, else, loudly, the offline EfficientNet-Lite0 — never random
    weights unless asked for by name (a random backbone makes PatchCore meaningless). Which backbone ran is in
    ``.name`` and ``.choice`` (and in metrics.json and the model card)."""
    choice, net = B.network(backbone, study)
    features = PatchFeatures(choice.key, "random" if choice.weights.startswith("random") else "imagenet", net=net)
    features.choice = choice
    return features


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


class PatchCore(nn.Module):
    """Per-category PatchCore on one backbone: one memory bank per category, and each category's normalisation.

    :meth:`fit` fills a category's bank from its good images; :meth:`raw_scores` scores a category's images
    (distances, before normalisation); :meth:`set_normalisation` stores what notebook 06 chose on ``val`` (each
    category's threshold and val score span, :func:`helpers.evaluation.metrics.normalise_per_category`); ``forward``
    — what is exported — gives the normalised score ``(s − t_c) / span_c + 0.5`` (0.5 = the category's threshold)
    and map. Banks are one padded C×M×D buffer; padding rows lie far from any feature, so they are never a nearest
    neighbour. A batch holds images of one category.
    """

    banks: torch.Tensor
    bank_rows: torch.Tensor
    thresholds: torch.Tensor
    spans: torch.Tensor

    def __init__(self, features: PatchFeatures, categories: Sequence[str], coreset_fraction: float = 0.1,
                 num_neighbors: int = 9, blur_sigma: float = 4.0):
        super().__init__()
        self.features, self.categories = features, list(categories)
        self.coreset_fraction, self.num_neighbors, self.blur_sigma = coreset_fraction, num_neighbors, float(blur_sigma)
        n = len(self.categories)
        self.register_buffer("banks", torch.zeros(n, 0, 1))
        self.register_buffer("bank_rows", torch.zeros(n, dtype=torch.int64))
        self.register_buffer("thresholds", torch.zeros(n))
        self.register_buffer("spans", torch.ones(n))
        self.info: dict[str, dict[str, Any]] = {}
        self.k = 1
        #: where a category's threshold lands on the normalised scale (metrics.NORMALISED_THRESHOLD)
        self.centre = 0.5
        #: bank rows compared at a time when scoring (a plain int: the exported graph unrolls the chunks)
        self.bank_chunk = BANK_CHUNK

    def index(self, category: str) -> int:
        """The index of ``category`` (its bank); an unknown one is refused with the known ones."""
        if category not in self.categories:
            raise ValueError(f"category {category!r}: this PatchCore has banks for {', '.join(self.categories)}")
        return self.categories.index(category)

    def bank(self, category: str) -> torch.Tensor:
        """The memory bank of ``category`` (rows × D)."""
        i = self.index(category)
        return self.banks[i, : int(self.bank_rows[i])]

    def _update_k(self) -> None:
        """Neighbours for the reweighting: b, or fewer when a bank is smaller (a plain int: static in the exported
        graph)."""
        filled = [int(r) for r in self.bank_rows.tolist() if r > 0]
        self.k = int(min(self.num_neighbors, min(filled) if filled else 1))

    def _embed(self, x01: torch.Tensor, batch_size: int = 16) -> tuple[torch.Tensor, tuple[int, int]]:
        device = self.banks.device
        out, grid = [], (0, 0)
        for i in range(0, len(x01), batch_size):
            feats, grid = self.features(x01[i:i + batch_size].to(device))
            out.append(feats)
        return torch.cat(out), grid

    def set_bank(self, category: str, bank: torch.Tensor) -> None:
        """Store ``bank`` as ``category``'s memory bank (re-padding every bank)."""
        i = self.index(category)
        banks = {j: self.banks[j, : int(self.bank_rows[j])] for j in range(len(self.categories)) if self.bank_rows[j]}
        banks[i] = bank.detach().float().to(self.banks.device)
        rows, dim = max(len(b) for b in banks.values()), bank.shape[1]
        far = 10.0 * (1.0 + max(float(b.abs().max()) for b in banks.values()))      # beyond every real feature
        padded = torch.full((len(self.categories), rows, dim), far, device=self.banks.device)
        for j, b in banks.items():
            padded[j, :len(b)] = b
            self.bank_rows[j] = len(b)
        self.banks = padded
        self._update_k()

    def fit(self, category: str, good_x01: torch.Tensor, seed: int = 42, progress: bool = False) -> dict[str, Any]:
        """Build ``category``'s memory bank from its good images (N×3×H×W in [0, 1]) and subsample it."""
        t0 = time.time()
        feats, _ = self._embed(good_x01)
        idx = greedy_coreset(feats, self.coreset_fraction, seed=seed, progress=progress)
        self.set_bank(category, feats[idx].contiguous())
        self.info[category] = {"patches": len(feats), "bank": len(idx), "fit_s": round(time.time() - t0, 2)}
        return self.info[category]

    def _score_batch(self, image: torch.Tensor, category: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw image scores (N) and blurred anomaly maps (N×H×W) of one category's batch."""
        feats, (h, w) = self.features(image)
        n = image.shape[0]
        bank = self.banks.index_select(0, category)[0]
        # every patch's nearest bank patch, over the bank in chunks of BANK_CHUNK rows: at most N·h·w × BANK_CHUNK
        # distances at a time (16 images at 224 px, 28×28 patches: 205 MB), whatever the bank's size
        d, idx = nearest(feats, bank, k=1, query_chunk=None, bank_chunk=self.bank_chunk)
        patch, idx = d[:, 0].view(n, h * w), idx[:, 0]
        top = patch.argmax(1)
        rows = torch.arange(n, device=image.device)
        s_star = patch[rows, top]
        m_test = feats.view(n, h * w, -1)[rows, top]                  # the most anomalous test patch
        m_star = bank[idx.view(n, h * w)[rows, top]]                  # its nearest bank patch
        _, support = nearest(m_star, bank, k=self.k, query_chunk=None, bank_chunk=self.bank_chunk)
        dists = torch.linalg.norm(m_test.unsqueeze(1) - bank[support], dim=2)     # N×b, first = m*
        score = (1 - torch.softmax(dists, dim=1)[:, 0]) * s_star                  # paper eq. 7
        up = F.interpolate(patch.view(n, 1, h, w), size=image.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return score, gaussian_blur(up, self.blur_sigma)

    @torch.no_grad()
    def raw_scores(self, x01: torch.Tensor, category: str, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Image scores (N) and anomaly maps (N×H×W at the input size) of ``category``'s images, before
        normalisation (what notebook 06 chooses its thresholds on)."""
        index = torch.tensor([self.index(category)], device=self.banks.device)
        out = [self._score_batch(x01[i:i + batch_size].to(self.banks.device), index)
               for i in range(0, len(x01), batch_size)]
        return torch.cat([s for s, _ in out]).cpu().numpy(), torch.cat([m for _, m in out]).cpu().numpy()

    def set_normalisation(self, per_category: dict[str, tuple[float, float]], centre: float = 0.5) -> None:
        """Each category's ``(threshold, span)`` as :func:`helpers.evaluation.metrics.normalise_score` applies them
        (``span``: :func:`helpers.evaluation.metrics.category_span`): ``forward`` then gives
        ``(s − threshold) / span + centre``, the scores the report scored."""
        self.centre = float(centre)
        for category, (threshold, span) in per_category.items():
            if not span > 0:
                raise ValueError(f"span {span} for {category!r}: a span is > 0 (metrics.category_span)")
            i = self.index(category)
            self.thresholds[i], self.spans[i] = float(threshold), float(span)

    @torch.no_grad()
    def forward(self, image: torch.Tensor, category: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score, maps = self._score_batch(image, category)
        t, span = self.thresholds.index_select(0, category), self.spans.index_select(0, category)
        return (score - t) / span + self.centre, (maps - t) / span + self.centre
