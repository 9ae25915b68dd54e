"""What every notebook after 00 does first, and the pieces the PyTorch notebooks (01–03) share."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import distributed, layout
from ..core.config import Config, get_config
from ..data.prepare import Prepared, describe_source, load_prepared

__all__ = ["start_notebook", "score_frame", "shuffle_labels", "train_loader", "out_dir"]


def start_notebook(cfg: Config | None = None, frameworks: bool = True) -> Prepared:
    """What every notebook after 00 does first, in one call.

    With ``frameworks``: cap torch/TensorFlow threads, TF GPU memory growth, TF32 on GPU
    (:func:`helpers.core.env.configure_frameworks`, printed). Then seed Python/NumPy/torch/TF, load what notebook
    00 wrote (the split: train / val / test) and print where the data come from and the split's sizes.
    """
    from ..core.env import configure_frameworks, seed_everything

    cfg = cfg or get_config()
    if frameworks:
        print("frameworks:", configure_frameworks())
    seed_everything(cfg.seed)
    prepared = load_prepared(cfg)
    print(describe_source(prepared.source))
    print("split (images):", prepared.split["split"].value_counts().reindex(["train", "val", "test"]).to_dict())
    return prepared


def score_frame(frame: pd.DataFrame, scores: np.ndarray, split: str) -> pd.DataFrame:
    """The rows of ``scores.csv`` for ``frame``'s images (path, category, label, split, score)."""
    return pd.DataFrame({"path": frame["path"].to_numpy(), "category": frame["category"].to_numpy(),
                         "label": frame["label"].astype(int).to_numpy(), "split": split,
                         "score": np.asarray(scores).astype(float)})


def shuffle_labels(dataset: Any, seed: int) -> None:
    """Permute a dataset's labels in place (the negative control of the learning tests)."""
    dataset.labels = np.random.default_rng(seed).permutation(dataset.labels)


def train_loader(dataset: Any, global_batch: int, cfg: Config, drop_last: bool = False, workers: int | None = None) -> Any:
    """Shuffled training batches of the recipe's size; under ``torchrun`` each process loads its share of every
    global batch (DistributedSampler), so the optimisation is the recipe's whatever the number of processes."""
    from ..data.torch_data import make_loader

    sampler = distributed.loader_sampler(dataset, shuffle=True, seed=cfg.seed, drop_last=drop_last)
    return make_loader(dataset, distributed.per_rank_batch(global_batch), shuffle=True, seed=cfg.seed,
                       num_workers=cfg.profile.num_workers if workers is None else workers, drop_last=drop_last,
                       sampler=sampler)


def out_dir(prepared: Prepared, stem: str, write: bool) -> Path:
    """A notebook's folder under ``RUNS_DIR`` (created when the run writes)."""
    return layout.notebook_dir(prepared.cfg.runs_dir, stem, create=write)
