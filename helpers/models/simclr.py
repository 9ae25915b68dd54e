"""SimCLR (notebook 02): an encoder and its projection head, trained with NT-Xent on pairs of augmented views."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .classifiers import _width

__all__ = ["SimCLR", "nt_xent"]


class SimCLR(nn.Module):
    """An encoder (pooled features of width ``encoder.feature_dim``) + projection head Linear(feature_dim, 1024) →
    ReLU → Linear(1024, 256)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.projector = nn.Sequential(nn.Linear(_width(encoder), 1024), nn.ReLU(inplace=True), nn.Linear(1024, 256))

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
