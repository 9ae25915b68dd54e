"""Memory-bank tools of one-class models: greedy k-centre coreset subsampling and chunked exact k-NN.

Kept apart from the PatchCore model (as anomalib keeps ``components/sampling``): both work on any
N×D feature tensor.
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

__all__ = ["nearest", "greedy_coreset"]


def nearest(queries: torch.Tensor, bank: torch.Tensor, k: int = 1, query_chunk: int = 4096,
            bank_chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices of the ``k`` nearest bank rows of every query, in bounded memory.

    At most ``query_chunk × bank_chunk`` distances exist at a time (default 64 M floats = 256 MB).
    """
    k = min(k, len(bank))
    out_d, out_i = [], []
    for q0 in range(0, len(queries), query_chunk):
        q = queries[q0:q0 + query_chunk]
        best_d = torch.full((len(q), k), math.inf, device=q.device)
        best_i = torch.zeros((len(q), k), dtype=torch.long, device=q.device)
        for b0 in range(0, len(bank), bank_chunk):
            d = torch.cdist(q, bank[b0:b0 + bank_chunk])
            kk = min(k, d.shape[1])
            dv, di = d.topk(kk, dim=1, largest=False)
            cand_d = torch.cat([best_d, dv], dim=1)
            cand_i = torch.cat([best_i, di + b0], dim=1)
            best_d, pos = cand_d.topk(k, dim=1, largest=False)
            best_i = cand_i.gather(1, pos)
        out_d.append(best_d)
        out_i.append(best_i)
    return torch.cat(out_d), torch.cat(out_i)


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
