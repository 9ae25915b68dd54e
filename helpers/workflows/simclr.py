"""Notebook 02 as functions: SimCLR pretraining on the good training images; saves the encoder notebook 03 probes."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core import distributed, files, layout
from ..core.env import torch_device
from ..data.prepare import Prepared
from ..data.torch_data import MVTecDataset, TwoViews, make_loader, simclr_transform
from ..models import backbones, kinds
from ..models.simclr import SimCLR, nt_xent
from ..training.loop import FitResult, Resuming, Stepping, Stopping, fingerprint, fit, mixed_precision_on, reseed
from ..training.recipes import SimCLRRecipe, for_backbone, max_batches, scaled
from ..training.schedules import planned_lrs, warmup_cosine
from .common import out_dir, train_loader

__all__ = ["SimCLRRun", "scheduler", "schedule_lrs", "run", "load_encoder", "command"]


@dataclass
class SimCLRRun:
    """What :func:`run` returns: the pretrained model (not scored: notebook 03 probes it) and its training."""

    model: nn.Module
    fit: FitResult
    backbone: backbones.Choice | None
    weights: str
    out_dir: Path
    steps_per_epoch: int
    recipe: SimCLRRecipe
    n_train_good: int
    batch_size: int


def scheduler(optimizer: torch.optim.Optimizer, recipe: SimCLRRecipe, steps_per_epoch: int) -> Any:
    """Notebook 02's linear warm-up + cosine decay, stepped every batch."""
    return warmup_cosine(optimizer, recipe.epochs * steps_per_epoch, recipe.warmup_fraction)


def schedule_lrs(recipe: SimCLRRecipe, steps_per_epoch: int) -> np.ndarray:
    """The learning rate of every batch under the recipe's schedule (for the schedule plot)."""
    return planned_lrs(lambda opt: scheduler(opt, recipe, steps_per_epoch), recipe.lr, recipe.epochs * steps_per_epoch)


def _eval(loader: Any, temperature: float, seed: int) -> Callable[[nn.Module], dict[str, float]]:
    """NT-Xent on two fixed augmented views of the val good images (same views every epoch)."""
    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        reseed(seed, loader)  # the same views every epoch (fit reseeds everything before the next one)
        losses, sizes = [], []
        for batch in loader:
            v1, v2 = (v.to(device) for v in batch["image"])
            if len(v1) < 2:
                continue
            losses.append(float(nt_xent(model(v1), model(v2), temperature)))
            sizes.append(len(v1))
        return {"val_loss": float(np.average(losses, weights=sizes)) if losses else math.nan}
    return evaluate


def _step(recipe: SimCLRRecipe, shuffled_pairs: bool, device: torch.device) -> Callable[[nn.Module, dict], torch.Tensor]:
    def step(m: nn.Module, b: dict) -> torch.Tensor:
        v1, v2 = b["image"]
        v1, v2 = v1.to(device, non_blocking=True), v2.to(device, non_blocking=True)
        if shuffled_pairs:
            v2 = v2.roll(1, dims=0)  # view i is paired with a view of image i-1
        # under torchrun: every process's projections, so the negatives are the whole global batch's (the recipe's)
        return nt_xent(distributed.gather(m(v1)), distributed.gather(m(v2)), recipe.temperature)
    return step


def run(prepared: Prepared, recipe: SimCLRRecipe | None = None, *, backbone: str | backbones.Choice = "auto",
        shuffled_pairs: bool = False,
        stem: str = layout.SIMCLR, write: bool = True, progress: bool = True, encoder: nn.Module | None = None) -> SimCLRRun:
    """SimCLR pretraining on the good images of ``train`` (notebook 02); saves the encoder.

    The reported validation loss is NT-Xent on the good images of ``val`` (fixed views). All epochs run and the
    last weights are kept (the recipe has no early stopping). ``shuffled_pairs`` pairs each view with a view of a
    *different* image (the negative control: SimCLR's only supervision is which views belong together, so nothing
    should be learned). ``backbone``: the notebook's ``BACKBONE`` (:func:`helpers.models.backbones.resolve`).
    ``encoder`` replaces the backbone (any module with a ``feature_dim`` attribute that returns that many pooled
    features): the learning tests use a small CNN.
    """
    cfg = prepared.cfg
    recipe = recipe or scaled(SimCLRRecipe(), cfg.profile)
    device = torch_device()
    folder = out_dir(prepared, stem, write)
    reseed(cfg.seed)
    choice: backbones.Choice | None = None
    if encoder is None:
        choice, encoder = backbones.network(backbone, recipe.backbone)
        weights = choice.weights
        recipe = for_backbone(recipe, choice.key)
    else:
        weights = f"custom encoder ({type(encoder).__name__})"
    reseed(cfg.seed)             # the projection's initial weights do not depend on how the backbone was found
    key = choice.key if choice is not None else recipe.backbone
    model = SimCLR(encoder).to(device)
    entry = backbones.get(key)
    cache = prepared.cache(recipe.image_size, progress=False)
    train_ds, val_ds = (MVTecDataset(prepared.frame(split, label=0), cache,
                                     transform=TwoViews(simclr_transform(recipe.image_size, entry.mean, entry.std)))
                        for split in ("train", "val"))
    if len(train_ds) < 2:
        raise ValueError(f"SimCLR needs at least 2 good training images; found {len(train_ds)}")
    batch = min(recipe.batch_size, len(train_ds))
    train_dl = train_loader(train_ds, batch, cfg, drop_last=True)
    steps = min(max_batches(cfg.profile, batch) or len(train_dl), len(train_dl))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    result = fit(model, optimizer, train_dl, _step(recipe, shuffled_pairs, device),
                 _eval(make_loader(val_ds, batch), recipe.temperature, cfg.seed), recipe.epochs, seed=cfg.seed,
                 progress=progress,
                 stepping=Stepping(scheduler(optimizer, recipe, steps), "batch", recipe.clip_grad, steps,
                                   mixed_precision_on(device, recipe.mixed_precision)),
                 stopping=Stopping("val_loss", patience=None, restore_best=False),
                 resuming=Resuming(folder / layout.checkpoint_name(cfg.profile.name, cfg.profile.image_size)
                                   if write and not shuffled_pairs else None,
                                   fingerprint(prepared, recipe=asdict(recipe), backbone=key, weights=weights)))
    if write and not shuffled_pairs and distributed.is_main():
        kinds.SIMCLR.save(model, folder / kinds.SIMCLR.model_file, backbone=key, image_size=recipe.image_size,
                          weights=weights, recipe=asdict(recipe))
        files.write_csv(result.history, folder / layout.HISTORY)
    return SimCLRRun(model, result, choice, weights, folder, steps, recipe, len(train_ds), batch)


def load_encoder(runs_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The encoder saved by notebook 02 and its metadata, or a clear message naming the notebook to run first."""
    path = layout.require(runs_dir, layout.SIMCLR, kinds.SIMCLR.model_file,
                          what="SimCLR encoder (notebook 03 probes the encoder notebook 02 saves)")
    model, meta = kinds.SIMCLR.load(path)
    return model.encoder, meta


def command(prepared: Any, progress: bool, mirrored: bool, backbone: str) -> str:
    """``python -m helpers train simclr``: notebook 02's pretraining; a summary line."""
    sim = run(prepared, backbone=backbone, progress=progress)
    return f"SimCLR: last val loss {sim.fit.history['val_loss'].iloc[-1]:.4f}; encoder -> {sim.out_dir}"
