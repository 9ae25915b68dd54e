"""Notebooks 01–03 as functions: the supervised ResNet-50, SimCLR pretraining and the linear probe.

Each ``run_*`` function follows its recipe (:mod:`helpers.recipes`); profiles only shrink image size,
epochs and images per epoch. Every scored run trains on ``train``, early-stops / picks its threshold on
``val`` and is scored once on ``test``; it ends with :func:`helpers.runs.write_scored` (``metrics.json``,
``scores.csv``) and also writes ``history.csv`` and the model, and resumes from its checkpoint after a
disconnect.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..artefacts import runs
from ..core import distributed, files
from ..core.env import torch_device
from ..data.prepare import Prepared
from ..data.torch_data import MVTecDataset, TwoViews, eval_transform, make_loader, simclr_transform, train_transform
from ..deploy import models as deploy
from ..evaluation import metrics as M
from ..models.classifiers import (
    LinearProbe,
    SimCLR,
    inverse_frequency_weights,
    load_model,
    nt_xent,
    resnet50_backbone,
    save_model,
    supervised_resnet50,
)
from ..training.loop import FitResult, embed, fit, onecycle, planned_lrs, predict_scores, reseed, state_hash, warmup_cosine
from ..training.recipes import ProbeRecipe, SimCLRRecipe, SupervisedRecipe, max_batches, scaled

__all__ = ["SimCLRRun", "shuffle_labels", "supervised_scheduler", "simclr_scheduler", "schedule_lrs",
           "run_supervised", "run_simclr", "load_simclr_encoder", "labelled_fraction", "knn_scores", "run_probe"]


@dataclass
class SimCLRRun:
    """What :func:`run_simclr` returns: the pretrained model (not scored: notebook 03 probes it)."""

    model: nn.Module
    fit: FitResult
    weights: str
    out_dir: Path
    info: dict[str, Any] = field(default_factory=dict)


def _datasets(prepared: Prepared, size: int, train_tf) -> tuple[MVTecDataset, MVTecDataset, MVTecDataset]:
    cache = prepared.cache(size, progress=False)
    cats = sorted(prepared.manifest["category"].unique())
    train = MVTecDataset(prepared.frame("train"), cache, transform=train_tf, categories=cats)
    val = MVTecDataset(prepared.frame("val"), cache, transform=eval_transform(size), categories=cats)
    test = MVTecDataset(prepared.frame("test"), cache, transform=eval_transform(size), categories=cats)
    return train, val, test


def shuffle_labels(dataset: MVTecDataset, seed: int) -> None:
    """Permute the dataset's labels in place (the negative control of the learning tests)."""
    dataset.labels = np.random.default_rng(seed).permutation(dataset.labels)


def _score_frame(ds: MVTecDataset, scores: np.ndarray, split: str) -> pd.DataFrame:
    f = ds.frame
    return pd.DataFrame({"path": f["path"], "category": f["category"], "label": f["label"].astype(int),
                         "split": split, "score": scores.astype(float)})


def _ckpt_name(cfg, tag: str = "") -> str:
    return f"checkpoint-{cfg.profile.name}-{cfg.profile.image_size}px{tag}.pt"


def _train_loader(dataset, global_batch: int, cfg, drop_last: bool = False, workers: int | None = None):
    """Shuffled training batches of the recipe's size; under ``torchrun`` each process loads its share of every
    global batch (DistributedSampler), so the optimisation is the recipe's whatever the number of processes."""
    sampler = distributed.loader_sampler(dataset, shuffle=True, seed=cfg.seed, drop_last=drop_last)
    return make_loader(dataset, distributed.per_rank_batch(global_batch), shuffle=True, seed=cfg.seed,
                       num_workers=cfg.profile.num_workers if workers is None else workers, drop_last=drop_last,
                       sampler=sampler)


def _out_dir(prepared: Prepared, stem: str, write: bool) -> Path:
    return runs.notebook_dir(prepared.cfg.runs_dir, stem, create=write)


# --------------------------------------------------------------------------------------------------
# Learning-rate schedules of the recipes (training and the plots use the same builders)
# --------------------------------------------------------------------------------------------------
def supervised_scheduler(optimizer: torch.optim.Optimizer, recipe: SupervisedRecipe, steps_per_epoch: int):
    """Notebook 01's OneCycleLR (max_lr 0.01), stepped every batch."""
    return onecycle(optimizer, recipe.max_lr, recipe.epochs, steps_per_epoch)


def simclr_scheduler(optimizer: torch.optim.Optimizer, recipe: SimCLRRecipe, steps_per_epoch: int):
    """Notebook 02's linear warm-up + cosine decay, stepped every batch."""
    return warmup_cosine(optimizer, recipe.epochs * steps_per_epoch, recipe.warmup_fraction)


def schedule_lrs(recipe: SupervisedRecipe | SimCLRRecipe, steps_per_epoch: int) -> np.ndarray:
    """The learning rate of every batch under the recipe's schedule (for the schedule plots)."""
    make = supervised_scheduler if isinstance(recipe, SupervisedRecipe) else simclr_scheduler
    return planned_lrs(lambda opt: make(opt, recipe, steps_per_epoch), recipe.lr, recipe.epochs * steps_per_epoch)


# --------------------------------------------------------------------------------------------------
# 01 · supervised ResNet-50
# --------------------------------------------------------------------------------------------------
def _classifier_eval(loss_fn: nn.Module, loader) -> Callable[[nn.Module], dict[str, float]]:
    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        logits, labels = [], []
        for batch in loader:
            logits.append(model(batch["image"].to(device)).float().cpu())
            labels.append(batch["label"])
        logits, labels = torch.cat(logits), torch.cat(labels)
        prob = torch.softmax(logits, 1)[:, 1].numpy()
        pred = logits.argmax(1).numpy()
        y = labels.numpy()
        return {"val_loss": float(loss_fn(logits, labels)), "val_acc": float((pred == y).mean()),
                "val_f1": M.binary_metrics(y, pred, 0.5)["f1"],
                "val_auroc": M.binary_metrics(y, prob, 0.5)["roc_auc"]}
    return evaluate


def run_supervised(prepared: Prepared, recipe: SupervisedRecipe | None = None, pretrained: bool = True,
                   shuffled_labels: bool = False, stem: str = runs.SUPERVISED, write: bool = True,
                   progress: bool = True) -> runs.ScoredRun:
    """Train and score the supervised ResNet-50 (notebook 01). Resumes from its checkpoint.

    ``shuffled_labels`` permutes the training labels (negative control; nothing should be learned).
    """
    cfg = prepared.cfg
    recipe = recipe or scaled(SupervisedRecipe(), cfg.profile)
    started, device = time.time(), torch_device()
    out_dir = _out_dir(prepared, stem, write)
    reseed(cfg.seed)
    model, weights = supervised_resnet50(pretrained)
    model.to(device)
    train_ds, val_ds, test_ds = _datasets(prepared, recipe.image_size, train_transform(recipe.image_size))
    if shuffled_labels:
        shuffle_labels(train_ds, cfg.seed)
    # BatchNorm1d in the head cannot train on a batch of one: drop a ragged last batch
    train_dl = _train_loader(train_ds, recipe.batch_size, cfg, drop_last=len(train_ds) > recipe.batch_size)
    steps = min(max_batches(cfg.profile, recipe.batch_size) or len(train_dl), len(train_dl))
    weights_t = inverse_frequency_weights(train_ds.labels).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weights_t)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.lr,
                                  weight_decay=recipe.weight_decay)
    result = fit(model, optimizer, train_dl, lambda m, b: loss_fn(m(b["image"]), b["label"]),
                 _classifier_eval(nn.CrossEntropyLoss(weight=weights_t.cpu()), make_loader(val_ds, recipe.batch_size)),
                 recipe.epochs, scheduler=supervised_scheduler(optimizer, recipe, steps), scheduler_step="batch",
                 clip_grad=recipe.clip_grad, monitor="val_loss", mode="min", patience=recipe.patience, seed=cfg.seed,
                 max_batches=steps, progress=progress,
                 fingerprint=runs.fingerprint(prepared, recipe=asdict(recipe), weights=weights, shuffled=shuffled_labels),
                 checkpoint=out_dir / _ckpt_name(cfg, "-shuffled" if shuffled_labels else "") if write else None)
    scores = pd.concat([_score_frame(ds, predict_scores(model, make_loader(ds, recipe.batch_size))[0], split)
                        for ds, split in ((val_ds, "val"), (test_ds, "test"))], ignore_index=True)
    do_write = write and not shuffled_labels and distributed.is_main()
    run = runs.write_scored(
        prepared, stem, "Supervised ResNet-50" + (" (SHUFFLED LABELS control)" if shuffled_labels else ""), scores,
        labels=runs.labels_used(prepared, len(train_ds), False, "early stopping (val loss), best epoch, threshold"),
        started=started, threshold_method=recipe.threshold_method, write=do_write, out_dir=out_dir,
        extra={"weights": weights, "recipe": asdict(recipe), "best_epoch": result.best_epoch,
               "stopped_early": result.stopped_early, "epochs_run": len(result.history)},
        model=model, history=result.history,
        info={"fit": result, "weights": weights, "steps_per_epoch": steps, "recipe": recipe})
    if do_write:
        save_model(model, out_dir / runs.MODEL_FILES[runs.SUPERVISED], "supervised_resnet50", recipe.image_size,
                   weights=weights)
        deploy.write_model_card(run, runs.MODEL_FILES[runs.SUPERVISED], "supervised_resnet50", recipe.image_size)
        files.write_csv(result.history, out_dir / runs.HISTORY)
    return run


# --------------------------------------------------------------------------------------------------
# 02 · SimCLR
# --------------------------------------------------------------------------------------------------
def _simclr_eval(loader, temperature: float, seed: int) -> Callable[[nn.Module], dict[str, float]]:
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


def run_simclr(prepared: Prepared, recipe: SimCLRRecipe | None = None, pretrained: bool = True,
               shuffled_pairs: bool = False, stem: str = runs.SIMCLR, write: bool = True,
               progress: bool = True, encoder: nn.Module | None = None) -> SimCLRRun:
    """SimCLR pretraining on the good images of ``train`` (notebook 02); saves the encoder.

    The reported validation loss is NT-Xent on the good images of ``val`` (fixed views). All 7 epochs
    run and the last weights are kept (the recipe has no early stopping). ``shuffled_pairs`` pairs each
    view with a view of a *different* image (the negative control: SimCLR's only supervision is which
    views belong together, so nothing should be learned). ``encoder`` replaces the ResNet-50 (any module
    with an ``fc`` attribute and 2048-d features before it): the learning tests use a small CNN, because a
    ResNet-50 from random weights does not leave NT-Xent's chance plateau within a CPU test's budget.
    """
    cfg = prepared.cfg
    recipe = recipe or scaled(SimCLRRecipe(), cfg.profile)
    device = torch_device()
    out_dir = _out_dir(prepared, stem, write)
    reseed(cfg.seed)
    if encoder is None:
        encoder, weights = resnet50_backbone(pretrained)
    else:
        weights = f"custom encoder ({type(encoder).__name__})"
    model = SimCLR(encoder).to(device)
    cache = prepared.cache(recipe.image_size, progress=False)
    train_ds = MVTecDataset(prepared.frame("train", label=0), cache, transform=TwoViews(simclr_transform(recipe.image_size)))
    val_ds = MVTecDataset(prepared.frame("val", label=0), cache, transform=TwoViews(simclr_transform(recipe.image_size)))
    if len(train_ds) < 2:
        raise ValueError(f"SimCLR needs at least 2 good training images; found {len(train_ds)}")
    batch = min(recipe.batch_size, len(train_ds))
    train_dl = _train_loader(train_ds, batch, cfg, drop_last=True)
    steps = min(max_batches(cfg.profile, batch) or len(train_dl), len(train_dl))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)

    def step(m: nn.Module, b: dict) -> torch.Tensor:
        v1, v2 = b["image"]
        v1, v2 = v1.to(device, non_blocking=True), v2.to(device, non_blocking=True)
        if shuffled_pairs:
            v2 = v2.roll(1, dims=0)  # view i is paired with a view of image i-1
        # under torchrun: every process's projections, so the negatives are the whole global batch's (the recipe's)
        return nt_xent(distributed.gather(m(v1)), distributed.gather(m(v2)), recipe.temperature)

    result = fit(model, optimizer, train_dl, step, _simclr_eval(make_loader(val_ds, batch), recipe.temperature, cfg.seed),
                 recipe.epochs, scheduler=simclr_scheduler(optimizer, recipe, steps), scheduler_step="batch",
                 clip_grad=recipe.clip_grad, monitor="val_loss", patience=None, restore_best=False, seed=cfg.seed,
                 max_batches=steps, progress=progress,
                 fingerprint=runs.fingerprint(prepared, recipe=asdict(recipe), weights=weights),
                 checkpoint=out_dir / _ckpt_name(cfg) if write and not shuffled_pairs else None)
    if write and not shuffled_pairs and distributed.is_main():
        save_model(model, out_dir / runs.MODEL_FILES[runs.SIMCLR], "simclr", recipe.image_size, weights=weights,
                   recipe=asdict(recipe))
        files.write_csv(result.history, out_dir / runs.HISTORY)
    return SimCLRRun(model, result, weights, out_dir,
                     {"steps_per_epoch": steps, "recipe": recipe, "n_train_good": len(train_ds), "batch_size": batch})


def load_simclr_encoder(runs_dir: str | Path) -> tuple[nn.Module, dict]:
    """The encoder saved by notebook 02, or a clear message naming the notebook to run first."""
    path = runs.require(runs_dir, runs.SIMCLR, what="SimCLR encoder (notebook 03 probes the encoder notebook 02 saves)")
    model, meta = load_model(path)
    return model.encoder, meta


# --------------------------------------------------------------------------------------------------
# 03 · linear probe and kNN score (no defect labels; good images picked by label)
# --------------------------------------------------------------------------------------------------
def labelled_fraction(frame: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Draw ``fraction`` of the rows stratified by category × label (at least one row per stratum)."""
    parts = []
    for i, (_, g) in enumerate(frame.groupby(["category", "label"], sort=True)):
        n = min(len(g), max(1, round(fraction * len(g))))
        parts.append(g.sample(n=n, random_state=seed + i))
    return pd.concat(parts).sort_index()


def knn_scores(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Label-free anomaly score: mean distance of each L2-normalised query to its ``k`` nearest bank rows."""
    from sklearn.neighbors import NearestNeighbors

    def norm(a: np.ndarray) -> np.ndarray:
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    dist, _ = NearestNeighbors(n_neighbors=min(k, len(bank))).fit(norm(bank)).kneighbors(norm(queries))
    return dist.mean(axis=1)


class _Features(torch.utils.data.Dataset):
    def __init__(self, feats: np.ndarray, labels: np.ndarray):
        self.feats, self.labels = torch.from_numpy(feats).float(), torch.from_numpy(np.asarray(labels)).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.feats[i], "label": self.labels[i]}


def _probe_features(prepared: Prepared, encoder: nn.Module, recipe: ProbeRecipe, labelled: pd.DataFrame
                    ) -> tuple[dict[str, np.ndarray], dict[str, MVTecDataset]]:
    """Frozen-encoder features (no augmentation) of the labelled rows, train good, val and test."""
    cache = prepared.cache(recipe.image_size, progress=False)
    cats = sorted(prepared.manifest["category"].unique())
    sets = {"labelled": labelled, "train_good": prepared.frame("train", label=0),
            "val": prepared.frame("val"), "test": prepared.frame("test")}
    feats, frames = {}, {}
    for name, frame in sets.items():
        frames[name] = MVTecDataset(frame, cache, transform=eval_transform(recipe.image_size), categories=cats)
        feats[name], _ = embed(encoder, make_loader(frames[name], 64))
    return feats, frames


def _probe_eval(head: nn.Module, feats: np.ndarray, labels: np.ndarray, loss_fn: nn.Module
                ) -> Callable[[nn.Module], dict[str, float]]:
    """Val loss, F1 at the F1-max threshold and AUROC of the probe head, on precomputed val features."""
    val_feats = torch.from_numpy(feats).float()
    val_y = torch.as_tensor(np.array(labels), dtype=torch.long)

    def evaluate(m: nn.Module) -> dict[str, float]:
        logits = m(val_feats.to(next(head.parameters()).device)).float().cpu()
        prob = torch.softmax(logits, 1)[:, 1].numpy()
        y = val_y.numpy()
        thr_f1 = M.binary_metrics(y, prob, M.choose_threshold(y, prob, "f1"))
        return {"val_loss": float(loss_fn(logits, val_y)), "val_f1": thr_f1["f1"], "val_auroc": thr_f1["roc_auc"]}
    return evaluate


def _knn_results(feats: dict[str, np.ndarray], frames: dict[str, MVTecDataset], ks: tuple[int, ...]) -> dict:
    """Label-free kNN scores (distance to the k nearest good training embeddings) for val and test."""
    knn = {}
    for k in ks:
        both = pd.concat([_score_frame(frames[s], knn_scores(feats["train_good"], feats[s], k), s)
                          for s in ("val", "test")], ignore_index=True)   # val rows: for a threshold (report)
        frame = both[both["split"] == "test"]
        knn[k] = {"auroc": M.binary_metrics(frame["label"], frame["score"], np.inf)["roc_auc"],
                  "per_category": M.per_category_table(frame)[["category", "n", "n_defective", "auroc"]],
                  "scores": both}
    return knn


def run_probe(prepared: Prepared, encoder: nn.Module, recipe: ProbeRecipe | None = None,
              shuffled_labels: bool = False, stem: str = runs.PROBE, write: bool = True,
              progress: bool = True, encoder_info: dict | None = None) -> runs.ScoredRun:
    """Linear probe on the frozen encoder with 10% of ``train`` labels, plus kNN scores (no defect labels).

    The encoder is frozen and in eval mode, so its features are computed once (no augmentation: the
    linear-evaluation protocol) and the head is trained on them — the same maths as running
    :class:`LinearProbe` batch by batch, much cheaper. The saved model is the full :class:`LinearProbe`.
    """
    cfg = prepared.cfg
    recipe = recipe or scaled(ProbeRecipe(), cfg.profile)
    started, device = time.time(), torch_device()
    out_dir = _out_dir(prepared, stem, write)
    reseed(cfg.seed)
    encoder = encoder.to(device).eval()
    labelled = labelled_fraction(prepared.frame("train"), recipe.label_fraction, cfg.seed)
    feats, frames = _probe_features(prepared, encoder, recipe, labelled)
    y_lab = frames["labelled"].labels.copy()
    if shuffled_labels:
        y_lab = np.random.default_rng(cfg.seed).permutation(y_lab)
    probe = LinearProbe(encoder).to(device)
    head = probe.head
    weights_t = inverse_frequency_weights(y_lab).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weights_t)
    train_dl = _train_loader(_Features(feats["labelled"], y_lab), recipe.batch_size, cfg, workers=0)
    result = fit(head, torch.optim.Adam(head.parameters(), lr=recipe.lr), train_dl,
                 lambda m, b: loss_fn(m(b["image"]), b["label"]),
                 _probe_eval(head, feats["val"], frames["val"].labels, nn.CrossEntropyLoss(weight=weights_t.cpu())),
                 recipe.epochs, clip_grad=recipe.clip_grad, patience=None, restore_best=False, seed=cfg.seed, progress=progress,
                 fingerprint=runs.fingerprint(prepared, recipe=asdict(recipe), encoder=state_hash(encoder),
                                              shuffled=shuffled_labels),
                 checkpoint=out_dir / _ckpt_name(cfg, "-shuffled" if shuffled_labels else "") if write else None)
    with torch.no_grad():
        def probs(name: str) -> np.ndarray:
            logits = head(torch.from_numpy(feats[name]).float().to(device))
            return torch.softmax(logits.float(), 1)[:, 1].cpu().numpy()
        scores = pd.concat([_score_frame(frames[s], probs(s), s) for s in ("val", "test")], ignore_index=True)
    knn = _knn_results(feats, frames, recipe.knn_k)
    do_write = write and not shuffled_labels and distributed.is_main()
    run = runs.write_scored(
        prepared, stem, "SimCLR + linear probe" + (" (SHUFFLED LABELS control)" if shuffled_labels else ""),
        scores, labels=runs.labels_used(prepared, len(labelled), True, "threshold"), started=started,
        threshold_method=recipe.threshold_method, write=do_write, out_dir=out_dir,
        extra={"encoder": encoder_info or {}, "recipe": asdict(recipe), "n_labelled": len(labelled),
               "labelled_counts": labelled.groupby("label").size().to_dict(),
               "knn_auroc": {str(k): v["auroc"] for k, v in knn.items()},
               "knn_labels_used": runs.labels_used(prepared, 0, True, "per-category thresholds"),
               "knn_per_category": {str(k): v["per_category"] for k, v in knn.items()}},
        model=probe, history=result.history,
        info={"fit": result, "weights": (encoder_info or {}).get("weights", "?"), "knn": knn, "labelled": labelled,
              "recipe": recipe})
    if do_write:
        save_model(probe, out_dir / runs.MODEL_FILES[runs.PROBE], "linear_probe", recipe.image_size,
                   encoder=encoder_info or {})
        deploy.write_model_card(run, runs.MODEL_FILES[runs.PROBE], "linear_probe", recipe.image_size)
        files.write_csv(result.history, out_dir / runs.HISTORY)
        for k, v in knn.items():
            files.write_csv(v["scores"], out_dir / f"scores_knn{k}.csv")
    return run
