"""How fast a model folder scores on this machine, per backend and batch size, and how big its files are."""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artefacts.card import read_card
from ..core import layout
from ..data import preprocessing
from ..models import kinds
from .inferencers import open_inferencer
from .inputs import category_of

__all__ = ["Latency", "latency", "file_sizes"]


@dataclass
class Latency:
    """Scoring one preprocessed batch: median and 95th percentile over ``repeats`` runs, images per second at the
    median."""

    backend: str
    batch: int
    p50_ms: float
    p95_ms: float
    images_per_s: float
    repeats: int


def latency(model_dir: str | os.PathLike, backend: str, images: Sequence, batch_sizes: Sequence[int] = (1, 32),
            repeats: int = 20, warmup: int = 3, threads: int | None = None) -> list[Latency]:
    """Wall-clock latency of scoring one preprocessed batch (preprocessing excluded) at each batch size, after
    ``warmup`` runs. The framework backend runs with its own thread setting; ``threads`` sets onnxruntime's."""
    folder = Path(model_dir)
    card = read_card(folder)
    scorer = open_inferencer(folder, card, backend, threads)
    images, category = list(images), None
    if kinds.get(card.kind).per_category:      # one category's images (a per-category batch holds one category)
        names = list(card.categories)
        name = next((c for c in (category_of(p, names) for p in images) if c), names[0])
        images, category = [p for p in images if category_of(p, names) == name] or images, names.index(name)
    pool = preprocessing.batch(card.input, images)
    rows = []
    for batch_size in batch_sizes:
        batch = np.resize(pool, (batch_size, *pool.shape[1:])).astype(np.float32)   # cycles the images
        for _ in range(warmup):
            scorer(batch, category)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scorer(batch, category)
            times.append(time.perf_counter() - start)
        p50, p95 = np.percentile(times, [50, 95])
        rows.append(Latency(backend, batch_size, 1000 * p50, 1000 * p95, batch_size / p50, repeats))
    return rows


def file_sizes(model_dir: str | os.PathLike) -> dict[str, float]:
    """MiB on disk of the framework model and of each export that exists (with its ``.data`` file, if any), plus
    the weights a model needs that are not in its file (PatchCore's backbone comes with torchvision or a package),
    for a like-for-like figure."""
    folder = Path(model_dir)
    card = read_card(folder)
    names = {"framework": card.model_file, "onnx": layout.ONNX, "onnx-int8": layout.ONNX_INT8}
    sizes = {k: sum(p.stat().st_size for p in (folder / v, folder / layout.onnx_data(v)) if p.exists()) / 2**20
             for k, v in names.items() if (folder / v).exists()}
    kind = kinds.get(card.kind)
    if "framework" in sizes:
        sizes["framework"] += kind.weights_outside_file(kind.load(folder / card.model_file)[0]) / 2**20
    return sizes
