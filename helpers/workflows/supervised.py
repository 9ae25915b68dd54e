"""Notebook 01 as functions: the supervised classifier (study 000's recipe) — train, early-stop, score, save.

It follows :class:`helpers.training.recipes.SupervisedRecipe`; profiles only shrink image size, epochs and images
per epoch. It trains on ``train``, early-stops and picks its threshold on ``val`` and is scored once on ``test``;
it ends with :func:`helpers.artefacts.scored.write_scored` (``metrics.json``, ``scores.csv``), writes
``history.csv``, the model and its card, and resumes from its checkpoint after a disconnect.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..artefacts.card import card_for, write_card
from ..artefacts.scored import ScoredRun, labels_used, write_scored
from ..core import distributed, files, layout
from ..core.env import torch_device
from ..data.prepare import Prepared
from ..data.torch_data import MVTecDataset, eval_transform, make_loader, train_transform
from ..evaluation import metrics as M
from ..models import backbones, kinds
from ..models.classifiers import Classifier, defect_probability, inverse_frequency_weights
from ..training.loop import FitResult, Resuming, Stepping, Stopping, fingerprint, fit, mixed_precision_on, predict_scores, reseed
from ..training.recipes import SupervisedRecipe, for_backbone, max_batches, scaled
from ..training.schedules import onecycle, planned_lrs
from .common import out_dir, score_frame, shuffle_labels, train_loader

__all__ = ["APPROACH", "SupervisedRun", "scheduler", "schedule_lrs", "run", "command"]

APPROACH = "Supervised classifier"


@dataclass(kw_only=True)
class SupervisedRun(ScoredRun):
    """Notebook 01's scored run, with its training: the fit, the weights it started from, the recipe."""

    fit: FitResult
    backbone: backbones.Choice
    steps_per_epoch: int
    recipe: SupervisedRecipe

    @property
    def weights(self) -> str:
        return self.backbone.weights


def scheduler(optimizer: torch.optim.Optimizer, recipe: SupervisedRecipe, steps_per_epoch: int) -> Any:
    """Notebook 01's OneCycleLR (max_lr 0.01), stepped every batch."""
    return onecycle(optimizer, recipe.max_lr, recipe.epochs, steps_per_epoch)


def schedule_lrs(recipe: SupervisedRecipe, steps_per_epoch: int) -> np.ndarray:
    """The learning rate of every batch under the recipe's schedule (for the schedule plot)."""
    return planned_lrs(lambda opt: scheduler(opt, recipe, steps_per_epoch), recipe.lr, recipe.epochs * steps_per_epoch)


def _datasets(prepared: Prepared, size: int, stats: tuple[Any, Any], augment: str = "full",
              train_rows: pd.DataFrame | None = None) -> tuple[MVTecDataset, MVTecDataset, MVTecDataset]:
    cache = prepared.cache(size, progress=False)
    cats = sorted(prepared.manifest["category"].unique())
    evaluate = eval_transform(size, *stats)
    train = prepared.frame("train") if train_rows is None else train_rows
    return (MVTecDataset(train, cache, transform=train_transform(size, *stats, augment=augment),
                         categories=cats),
            MVTecDataset(prepared.frame("val"), cache, transform=evaluate, categories=cats),
            MVTecDataset(prepared.frame("test"), cache, transform=evaluate, categories=cats))


def _classifier_eval(loss_fn: nn.Module, loader: Any) -> Callable[[nn.Module], dict[str, float]]:
    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        logits, labels = [], []
        for batch in loader:
            logits.append(model(batch["image"].to(device)).float().cpu())
            labels.append(batch["label"])
        logits_t, labels_t = torch.cat(logits), torch.cat(labels)
        prob = defect_probability(logits_t).numpy()
        pred = logits_t.argmax(1).numpy()
        y = labels_t.numpy()
        return {"val_loss": float(loss_fn(logits_t, labels_t)), "val_acc": float((pred == y).mean()),
                "val_f1": M.binary_metrics(y, pred, 0.5)["f1"],
                "val_auroc": M.binary_metrics(y, prob, 0.5)["roc_auc"]}
    return evaluate


def _fit(prepared: Prepared, model: nn.Module, recipe: SupervisedRecipe, sets: tuple[MVTecDataset, ...],
         choice: backbones.Choice, shuffled: bool, checkpoint: Any, progress: bool, seed: int
         ) -> tuple[FitResult, int]:
    """The recipe's optimisation: AdamW, OneCycle per batch, class-weighted cross-entropy, early stopping on val loss."""
    cfg, device = prepared.cfg, next(model.parameters()).device
    train_ds, val_ds, _ = sets
    # BatchNorm1d in the head cannot train on a batch of one: drop a ragged last batch
    train_dl = train_loader(train_ds, recipe.batch_size, cfg, drop_last=len(train_ds) > recipe.batch_size)
    steps = min(max_batches(cfg.profile, recipe.batch_size) or len(train_dl), len(train_dl))
    weights_t = inverse_frequency_weights(train_ds.labels).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weights_t)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.lr,
                                  weight_decay=recipe.weight_decay)
    result = fit(model, optimizer, train_dl, lambda m, b: loss_fn(m(b["image"]), b["label"]),
                 _classifier_eval(nn.CrossEntropyLoss(weight=weights_t.cpu()), make_loader(val_ds, recipe.batch_size)),
                 recipe.epochs, seed=seed, progress=progress,
                 stepping=Stepping(scheduler(optimizer, recipe, steps), "batch", recipe.clip_grad, steps,
                                   mixed_precision_on(device, recipe.mixed_precision)),
                 stopping=Stopping(recipe.monitor, "min" if recipe.monitor.endswith("loss") else "max", recipe.patience),
                 resuming=Resuming(checkpoint, fingerprint(prepared, recipe=asdict(recipe), backbone=choice.key,
                                                           weights=choice.weights, shuffled=shuffled)))
    return result, steps


def run(prepared: Prepared, recipe: SupervisedRecipe | None = None, *, backbone: str | backbones.Choice = "auto",
        shuffled_labels: bool = False, stem: str = layout.SUPERVISED, write: bool = True,
        progress: bool = True, train_rows: pd.DataFrame | None = None, seed: int | None = None) -> SupervisedRun:
    """Train and score the supervised classifier (notebook 01). Resumes from its checkpoint.

    ``backbone``: the notebook's ``BACKBONE`` (:func:`helpers.models.backbones.resolve`: ``auto`` is the study's
    network with ImageNet weights, offline the stand-in) or the choice made already; the recipe takes that network's
    changes (:func:`helpers.training.recipes.for_backbone`). ``shuffled_labels`` permutes the training labels
    (negative control; nothing should be learned). ``train_rows`` (a subset of ``train``) and ``seed`` (default the
    config's) are notebook 09's label budgets.
    """
    cfg = prepared.cfg
    seed = cfg.seed if seed is None else seed
    recipe = recipe or scaled(SupervisedRecipe(), cfg.profile)
    started, device = time.time(), torch_device()
    folder = out_dir(prepared, stem, write)
    reseed(seed)
    choice, net = backbones.network(backbone, recipe.backbone)
    recipe = for_backbone(recipe, choice.key)
    reseed(seed)             # the head's initial weights do not depend on how the backbone was found
    model = Classifier(net, batchnorm=recipe.batchnorm).train().to(device)
    entry = backbones.get(choice.key)
    sets = _datasets(prepared, recipe.image_size, (entry.mean, entry.std), recipe.augmentation, train_rows)
    if shuffled_labels:
        shuffle_labels(sets[0], seed)
    checkpoint = folder / layout.checkpoint_name(cfg.profile.name, cfg.profile.image_size,
                                                 "-shuffled" if shuffled_labels else "") if write else None
    result, steps = _fit(prepared, model, recipe, sets, choice, shuffled_labels, checkpoint, progress, seed)
    scores = pd.concat([score_frame(ds.frame, predict_scores(model, make_loader(ds, recipe.batch_size))[0], split)
                        for ds, split in ((sets[1], "val"), (sets[2], "test"))], ignore_index=True)
    do_write = write and not shuffled_labels and distributed.is_main()
    run = write_scored(
        prepared, stem, APPROACH + (" (SHUFFLED LABELS control)" if shuffled_labels else ""), scores,
        labels=labels_used(prepared, len(sets[0]), False,
                           f"early stopping and best epoch ({recipe.monitor.replace('_', ' ')}), threshold"),
        started=started, threshold_method=recipe.threshold_method, write=do_write, out_dir=folder,
        extra={**choice.as_dict(), "recipe": asdict(recipe), "best_epoch": result.best_epoch,
               "stopped_early": result.stopped_early, "epochs_run": len(result.history)},
        run_type=SupervisedRun, model=model, history=result.history, fit=result, backbone=choice,
        steps_per_epoch=steps, recipe=recipe)
    if do_write:
        _save(run)
    return run


def _save(run: SupervisedRun) -> None:
    """The model, its card and its training history, in the run's folder."""
    key, weights = run.backbone.key, run.backbone.weights
    entry, name = backbones.get(key), kinds.SUPERVISED.model_file
    kinds.SUPERVISED.save(run.model, run.out_dir / name, backbone=key, image_size=run.recipe.image_size, weights=weights)
    spec = kinds.SUPERVISED.input_spec(run.recipe.image_size, entry.mean, entry.std)
    write_card(run.out_dir, card_for(run, kinds.SUPERVISED.name, name, spec, backbone=key, weights=weights))
    files.write_csv(run.fit.history, run.out_dir / layout.HISTORY)


def command(prepared: Prepared, progress: bool, mirrored: bool, backbone: str) -> str:
    """``python -m helpers train supervised``: notebook 01's run; a summary line."""
    from .commands import summary_line

    return summary_line(run(prepared, backbone=backbone, progress=progress))
