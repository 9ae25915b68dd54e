"""Memory-bank tools of one-class models: greedy k-centre coreset subsampling and chunked exact k-NN.

Kept apart from the PatchCore model (as anomalib keeps ``components/sampling``): both work on any
N×D feature tensor.
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

__all__ = ["BANK_CHUNK", "squared_distances", "nearest", "greedy_coreset"]


#: Bank rows compared at a time by :func:`nearest` (PatchCore's scoring): memory is queries × this, whatever the bank.
BANK_CHUNK = 4096


def squared_distances(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Q×M squared Euclidean distances as ``|q|² − 2 q·b + |b|²`` (one matrix product; may dip below 0 by rounding)."""
    return (queries * queries).sum(1, keepdim=True) - 2 * queries @ bank.T + (bank * bank).sum(1)[None]


def _nearest_in_bank_chunks(q: torch.Tensor, bank: torch.Tensor, k: int, bank_chunk: int
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    best_d: torch.Tensor | None = None
    best_i: torch.Tensor | None = None
    for b0 in range(0, bank.shape[0], bank_chunk):
        d = squared_distances(q, bank[b0:b0 + bank_chunk])
        dv, di = d.topk(min(k, d.shape[1]), dim=1, largest=False)
        di = di + b0
        if best_d is not None and best_i is not None:
            cand_d = torch.cat([best_d, dv], dim=1)
            dv, pos = cand_d.topk(min(k, cand_d.shape[1]), dim=1, largest=False)
            di = torch.cat([best_i, di], dim=1).gather(1, pos)
        best_d, best_i = dv, di
    assert best_d is not None and best_i is not None, "an empty bank has no nearest row"
    return best_d.clamp_min(0).sqrt(), best_i


def nearest(queries: torch.Tensor, bank: torch.Tensor, k: int = 1, query_chunk: int | None = 4096,
            bank_chunk: int = BANK_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances and indices of the ``k`` nearest bank rows of every query (nearest first), exact, in
    bounded memory: at most ``query_chunk × bank_chunk`` distances exist at a time (default 16 M floats = 64 MB).
    ``query_chunk=None`` takes all queries at once — what PatchCore's exported graph needs, whose batch is dynamic —
    so memory is ``len(queries) × bank_chunk``, still independent of the bank's size."""
    k = min(k, len(bank))
    parts = [queries] if query_chunk is None else list(queries.split(query_chunk))
    found = [_nearest_in_bank_chunks(q, bank, k, bank_chunk) for q in parts]
    if len(found) == 1:
        return found[0]
    return torch.cat([d for d, _ in found]), torch.cat([i for _, i in found])


def greedy_coreset(features: torch.Tensor, fraction: float = 0.1, projection_dim: int = 128, seed: int = 42,
                   progress: bool = False) -> torch.Tensor:
    """Indices of a greedy k-centre coreset of ``fraction`` of the rows (at least 1).

    Distances are computed on a Gaussian random projection to ``projection_dim`` dims (Johnson-
    Lindenstrauss), as in the paper. Each step adds the row farthest from the current coreset.
    """
    n = len(features)
    m = max(1, int(round(fraction * n)))
    if m >= n:
        return torch.arange(n)
    g = torch.Generator(device="cpu").manual_seed(seed)
    if features.shape[1] > projection_dim:
        proj = torch.randn(features.shape[1], projection_dim, generator=g).to(features.device) / math.sqrt(projection_dim)
        reduced = features @ proj
    else:
        reduced = features
    # squared distances as ‖x‖² − 2·x·c + ‖c‖²: one matrix-vector product per step (measured 14× faster
    # than torch.cdist against a single row on CPU); argmax/min are the same on squared distances
    sq = (reduced * reduced).sum(1)
    start = int(torch.randint(n, (1,), generator=g))
    chosen = [start]
    min_d = (sq - 2 * (reduced @ reduced[start]) + sq[start]).clamp_min_(0)
    for _ in tqdm(range(m - 1), desc="coreset", disable=not progress, leave=False):
        nxt = int(torch.argmax(min_d))
        chosen.append(nxt)
        torch.minimum(min_d, (sq - 2 * (reduced @ reduced[nxt]) + sq[nxt]).clamp_min_(0), out=min_d)
    return torch.tensor(chosen)
