"""Notebooks 01–03 as functions: the supervised ResNet-50, SimCLR pretraining and the linear probe.

Each ``run_*`` function follows its recipe (the ``*Recipe`` dataclasses hold the published numbers);
profiles only shrink image size, epochs and images per epoch (see :func:`scaled`). Every run trains on
``train``, early-stops / picks its threshold on ``val`` and is scored once on ``test``; it writes
``RUNS_DIR/<stem>/`` ``metrics.json``, ``scores.csv`` (val and test rows), ``history.csv`` and the
model, and resumes from its checkpoint after a disconnect.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from . import metrics as M
from .prepare import Prepared
from .torch_data import MVTecDataset, TwoViews, eval_transform, make_loader, simclr_transform, train_transform
from .torch_models import (LinearProbe, SimCLR, inverse_frequency_weights, load_model, nt_xent,
                           resnet50_backbone, save_model, supervised_resnet50)
from .train import FitResult, embed, fit, predict_scores, reseed

SUPERVISED_STEM = "01_supervised_resnet50"
SIMCLR_STEM = "02_simclr_pretraining"
PROBE_STEM = "03_linear_probe"


# --------------------------------------------------------------------------------------------------
# Recipes (the published numbers) and how a profile shrinks them
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SupervisedRecipe:
    """Notebook 01: AdamW + OneCycleLR per batch, weighted CE, early stopping on val loss."""

    batch_size: int = 64
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_lr: float = 0.01
    patience: int = 5
    clip_grad: float = 1.0
    image_size: int = 256
    threshold_method: str = "f1"


@dataclass(frozen=True)
class SimCLRRecipe:
    """Notebook 02: NT-Xent (t = 0.07), batch 48 with drop_last, 7 epochs.

    The study does not name its optimiser; we use AdamW (lr 1e-3, weight decay 1e-4) with a linear
    warm-up over the first 10% of steps and cosine decay to 0. Measured on generated data (defects 4× the
    built-in size, the learning tests' data) from a
    random init: at lr 3e-4 the loss stayed at chance (log(2B − 1)) for 20 epochs, at 3e-3 it collapsed,
    at 1e-3 it fell (docs/benchmarks.md).
    """

    batch_size: int = 48
    epochs: int = 7
    temperature: float = 0.07
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    clip_grad: float = 1.0
    image_size: int = 256


@dataclass(frozen=True)
class ProbeRecipe:
    """Notebook 03: Linear(2048, 2) on the frozen encoder, 10% of train labels, Adam 1e-4, batch 32, 30 epochs.

    Class balance: cross-entropy weighted by the inverse class frequencies of the labelled 10%.
    """

    label_fraction: float = 0.1
    batch_size: int = 32
    epochs: int = 30
    lr: float = 1e-4
    image_size: int = 256
    threshold_method: str = "f1"
    knn_k: tuple[int, ...] = (1, 5)


def scaled(recipe, profile) -> Any:
    """The recipe at a profile's size: image size and epochs shrink; the method stays the same."""
    return replace(recipe, image_size=profile.image_size, epochs=profile.epochs(recipe.epochs))


def max_batches(profile, batch_size: int) -> int | None:
    """Batches per epoch allowed by the profile's ``max_train_images`` (None = all)."""
    if profile.max_train_images is None:
        return None
    return max(1, math.ceil(profile.max_train_images / batch_size))


@dataclass
class TrackResult:
    """What a ``run_*`` function returns (and what its notebook shows)."""

    model: nn.Module
    fit: FitResult | None
    weights: str
    scores: pd.DataFrame                 # path, category, label, split (val/test), score
    threshold: float | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    per_category: pd.DataFrame | None = None
    record: dict[str, Any] | None = None
    out_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def split_scores(self, split: str) -> pd.DataFrame:
        return self.scores[self.scores["split"] == split].reset_index(drop=True)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def finish(prepared: Prepared, stem: str, approach: str, scores: pd.DataFrame, threshold_method: str,
           started: float, out_dir: Path, extra: dict[str, Any] | None = None, write: bool = True
           ) -> tuple[float, dict, pd.DataFrame, dict]:
    """Threshold on val, score test, write ``scores.csv`` and ``metrics.json``; return them."""
    threshold, test_metrics, per_cat = M.score_on_test(scores, threshold_method)
    record = M.metrics_record(stem, approach, "shared-split", prepared.cfg.profile.name,
                              prepared.split["split"].value_counts().to_dict(), threshold, threshold_method,
                              test_metrics, per_cat, started=started,
                              extra={"builtin_data": prepared.source.builtin, **(extra or {})})
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        scores.to_csv(out_dir / "scores.csv", index=False)
        M.write_metrics(record, out_dir.parent)
    return threshold, test_metrics, per_cat, record


def _ckpt_name(cfg, tag: str = "") -> str:
    return f"checkpoint-{cfg.profile.name}-{cfg.profile.image_size}px{tag}.pt"


# --------------------------------------------------------------------------------------------------
# 01 · supervised ResNet-50
# --------------------------------------------------------------------------------------------------
def onecycle(optimizer: torch.optim.Optimizer, recipe: SupervisedRecipe, steps_per_epoch: int):
    """The recipe's OneCycleLR (max_lr 0.01), stepped every batch — used for training and for the plot."""
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.max_lr, epochs=recipe.epochs,
                                               steps_per_epoch=steps_per_epoch)


def planned_lrs(make_scheduler, lr: float, steps: int) -> np.ndarray:
    """The learning rate of every batch that ``make_scheduler(optimizer)`` would give over ``steps`` batches."""
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.asarray(lrs)


def onecycle_lrs(recipe: SupervisedRecipe, steps_per_epoch: int) -> np.ndarray:
    """The learning rate of every batch under the recipe's OneCycleLR (for the schedule plot)."""
    return planned_lrs(lambda opt: onecycle(opt, recipe, steps_per_epoch), recipe.lr, recipe.epochs * steps_per_epoch)


def _classifier_eval(loss_fn: nn.Module, loader) -> Any:
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
                   shuffled_labels: bool = False, stem: str = SUPERVISED_STEM, write: bool = True,
                   progress: bool = True) -> TrackResult:
    """Train and score the supervised ResNet-50 (notebook 01). Resumes from its checkpoint.

    ``shuffled_labels`` permutes the training labels (negative control; nothing should be learned).
    """
    cfg = prepared.cfg
    recipe = recipe or scaled(SupervisedRecipe(), cfg.profile)
    started, device = time.time(), _device()
    out_dir = cfg.notebook_dir(stem) if write else cfg.runs_dir / stem
    reseed(cfg.seed)
    model, weights = supervised_resnet50(pretrained)
    model.to(device)
    train_ds, val_ds, test_ds = _datasets(prepared, recipe.image_size, train_transform(recipe.image_size))
    if shuffled_labels:
        shuffle_labels(train_ds, cfg.seed)
    # BatchNorm1d in the head cannot train on a batch of one: drop a ragged last batch
    train_dl = make_loader(train_ds, recipe.batch_size, shuffle=True, seed=cfg.seed,
                           num_workers=cfg.profile.num_workers, drop_last=len(train_ds) > recipe.batch_size)
    val_dl = make_loader(val_ds, recipe.batch_size)
    steps = max_batches(cfg.profile, recipe.batch_size) or len(train_dl)
    steps = min(steps, len(train_dl))
    weights_t = inverse_frequency_weights(train_ds.labels).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weights_t)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.lr,
                                  weight_decay=recipe.weight_decay)
    scheduler = onecycle(optimizer, recipe, steps)
    result = fit(model, optimizer, train_dl, lambda m, b: loss_fn(m(b["image"]), b["label"]),
                 _classifier_eval(nn.CrossEntropyLoss(weight=weights_t.cpu()), val_dl), recipe.epochs,
                 scheduler=scheduler, scheduler_step="batch", clip_grad=recipe.clip_grad, monitor="val_loss",
                 mode="min", patience=recipe.patience, seed=cfg.seed, max_batches=steps, progress=progress,
                 checkpoint=out_dir / _ckpt_name(cfg, "-shuffled" if shuffled_labels else "") if write else None)
    scores = pd.concat([_score_frame(ds, predict_scores(model, make_loader(ds, recipe.batch_size))[0], split)
                        for ds, split in ((val_ds, "val"), (test_ds, "test"))], ignore_index=True)
    approach = "Supervised ResNet-50" + (" (SHUFFLED LABELS control)" if shuffled_labels else "")
    threshold, test_m, per_cat, record = finish(
        prepared, stem, approach, scores, recipe.threshold_method, started, out_dir,
        extra={"weights": weights, "recipe": asdict(recipe), "best_epoch": result.best_epoch,
               "stopped_early": result.stopped_early, "epochs_run": len(result.history)},
        write=write and not shuffled_labels)
    if write and not shuffled_labels:
        save_model(model, out_dir / "model.pt", "supervised_resnet50", recipe.image_size, weights=weights)
        result.history.to_csv(out_dir / "history.csv", index=False)
    return TrackResult(model, result, weights, scores, threshold, test_m, per_cat, record, out_dir,
                       {"steps_per_epoch": steps, "recipe": recipe})


# --------------------------------------------------------------------------------------------------
# 02 · SimCLR
# --------------------------------------------------------------------------------------------------
def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to 0 (stepped per batch)."""
    warm = max(1, round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def schedule_lrs(recipe: SimCLRRecipe, steps_per_epoch: int) -> np.ndarray:
    """The learning rate of every batch under SimCLR's warm-up + cosine schedule (for the plot)."""
    total = recipe.epochs * steps_per_epoch
    return planned_lrs(lambda opt: warmup_cosine(opt, total, recipe.warmup_fraction), recipe.lr, total)


def _simclr_eval(loader, temperature: float, seed: int) -> Any:
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
               shuffled_pairs: bool = False, stem: str = SIMCLR_STEM, write: bool = True,
               progress: bool = True) -> TrackResult:
    """SimCLR pretraining on the good images of ``train`` (notebook 02); saves the encoder.

    The reported validation loss is NT-Xent on the good images of ``val`` (fixed views). All 7 epochs
    run and the last weights are kept (the recipe has no early stopping). ``shuffled_pairs`` pairs each
    view with a view of a *different* image (the negative control: SimCLR's only supervision is which
    views belong together, so nothing should be learned).
    """
    cfg = prepared.cfg
    recipe = recipe or scaled(SimCLRRecipe(), cfg.profile)
    started, device = time.time(), _device()
    out_dir = cfg.notebook_dir(stem) if write else cfg.runs_dir / stem
    reseed(cfg.seed)
    encoder, weights = resnet50_backbone(pretrained)
    model = SimCLR(encoder).to(device)
    cache = prepared.cache(recipe.image_size, progress=False)
    views = TwoViews(simclr_transform(recipe.image_size))
    train_ds = MVTecDataset(prepared.frame("train", label=0), cache, transform=views)
    val_ds = MVTecDataset(prepared.frame("val", label=0), cache, transform=TwoViews(simclr_transform(recipe.image_size)))
    if len(train_ds) < 2:
        raise ValueError(f"SimCLR needs at least 2 good training images; found {len(train_ds)}")
    batch = min(recipe.batch_size, len(train_ds))
    train_dl = make_loader(train_ds, batch, shuffle=True, seed=cfg.seed, num_workers=cfg.profile.num_workers,
                           drop_last=True)
    val_dl = make_loader(val_ds, batch)
    steps = min(max_batches(cfg.profile, batch) or len(train_dl), len(train_dl))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = warmup_cosine(optimizer, recipe.epochs * steps, recipe.warmup_fraction)

    def step(m: nn.Module, b: dict) -> torch.Tensor:
        v1, v2 = b["image"]
        v1, v2 = v1.to(device, non_blocking=True), v2.to(device, non_blocking=True)
        if shuffled_pairs:
            v2 = v2.roll(1, dims=0)  # view i is paired with a view of image i-1
        return nt_xent(m(v1), m(v2), recipe.temperature)

    result = fit(model, optimizer, train_dl, step, _simclr_eval(val_dl, recipe.temperature, cfg.seed),
                 recipe.epochs, scheduler=scheduler, scheduler_step="batch", clip_grad=recipe.clip_grad,
                 monitor="val_loss", patience=None, restore_best=False, seed=cfg.seed, max_batches=steps,
                 progress=progress, checkpoint=out_dir / _ckpt_name(cfg) if write and not shuffled_pairs else None)
    if write and not shuffled_pairs:
        save_model(model, out_dir / "simclr.pt", "simclr", recipe.image_size, weights=weights,
                   recipe=asdict(recipe))
        result.history.to_csv(out_dir / "history.csv", index=False)
    return TrackResult(model, result, weights, pd.DataFrame(), out_dir=out_dir,
                       extra={"steps_per_epoch": steps, "recipe": recipe, "n_train_good": len(train_ds),
                              "batch_size": batch})


def load_simclr_encoder(runs_dir: str | Path, stem: str = SIMCLR_STEM) -> tuple[nn.Module, dict]:
    """The encoder saved by notebook 02, or a clear message naming the notebook to run first."""
    path = Path(runs_dir) / stem / "simclr.pt"
    if not path.exists():
        raise FileNotFoundError(f"No SimCLR encoder at {path}: run notebook {stem}.ipynb first "
                                "(it pretrains and saves the encoder this notebook probes).")
    model, meta = load_model(path)
    return model.encoder, meta


# --------------------------------------------------------------------------------------------------
# 03 · linear probe and label-free kNN score
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
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415

    norm = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)  # noqa: E731
    nn_ = NearestNeighbors(n_neighbors=min(k, len(bank))).fit(norm(bank))
    dist, _ = nn_.kneighbors(norm(queries))
    return dist.mean(axis=1)


class _Features(torch.utils.data.Dataset):
    def __init__(self, feats: np.ndarray, labels: np.ndarray):
        self.feats, self.labels = torch.from_numpy(feats).float(), torch.from_numpy(np.asarray(labels)).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.feats[i], "label": self.labels[i]}


def run_probe(prepared: Prepared, encoder: nn.Module, recipe: ProbeRecipe | None = None,
              shuffled_labels: bool = False, stem: str = PROBE_STEM, write: bool = True,
              progress: bool = True, encoder_info: dict | None = None) -> TrackResult:
    """Linear probe on the frozen encoder with 10% of ``train`` labels, plus kNN label-free scores.

    The encoder is frozen and in eval mode, so its features are computed once (no augmentation: the
    linear-evaluation protocol) and the head is trained on them — the same maths as running
    :class:`LinearProbe` batch by batch, much cheaper. The saved model is the full :class:`LinearProbe`.
    """
    cfg = prepared.cfg
    recipe = recipe or scaled(ProbeRecipe(), cfg.profile)
    started, device = time.time(), _device()
    out_dir = cfg.notebook_dir(stem) if write else cfg.runs_dir / stem
    reseed(cfg.seed)
    encoder = encoder.to(device).eval()
    cache = prepared.cache(recipe.image_size, progress=False)
    tf = eval_transform(recipe.image_size)
    train_all = prepared.frame("train")
    labelled = labelled_fraction(train_all, recipe.label_fraction, cfg.seed)
    sets = {"labelled": labelled, "train_good": prepared.frame("train", label=0),
            "val": prepared.frame("val"), "test": prepared.frame("test")}
    feats, frames = {}, {}
    for name, frame in sets.items():
        ds = MVTecDataset(frame, cache, transform=tf, categories=sorted(prepared.manifest["category"].unique()))
        feats[name], _ = embed(encoder, make_loader(ds, 64))
        frames[name] = ds
    y_lab = frames["labelled"].labels.copy()
    if shuffled_labels:
        y_lab = np.random.default_rng(cfg.seed).permutation(y_lab)
    probe = LinearProbe(encoder).to(device)
    head = probe.head
    weights_t = inverse_frequency_weights(y_lab).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weights_t)
    train_dl = make_loader(_Features(feats["labelled"], y_lab), recipe.batch_size, shuffle=True, seed=cfg.seed)
    val_feats = torch.from_numpy(feats["val"]).float()
    val_y = torch.as_tensor(np.array(frames["val"].labels), dtype=torch.long)
    eval_loss = nn.CrossEntropyLoss(weight=weights_t.cpu())

    def evaluate(m: nn.Module) -> dict[str, float]:
        logits = m(val_feats.to(device)).float().cpu()
        prob = torch.softmax(logits, 1)[:, 1].numpy()
        y = val_y.numpy()
        thr_f1 = M.binary_metrics(y, prob, M.choose_threshold(y, prob, "f1"))
        return {"val_loss": float(eval_loss(logits, val_y)), "val_f1": thr_f1["f1"],
                "val_auroc": thr_f1["roc_auc"]}

    optimizer = torch.optim.Adam(head.parameters(), lr=recipe.lr)
    result = fit(head, optimizer, train_dl, lambda m, b: loss_fn(m(b["image"]), b["label"]), evaluate,
                 recipe.epochs, clip_grad=None, patience=None, restore_best=False, seed=cfg.seed,
                 progress=progress,
                 checkpoint=out_dir / _ckpt_name(cfg, "-shuffled" if shuffled_labels else "") if write else None)
    with torch.no_grad():
        def probs(name: str) -> np.ndarray:
            logits = head(torch.from_numpy(feats[name]).float().to(device))
            return torch.softmax(logits.float(), 1)[:, 1].cpu().numpy()
        scores = pd.concat([_score_frame(frames[s], probs(s), s) for s in ("val", "test")], ignore_index=True)
    # label-free: distance to the k nearest good training embeddings (no labels beyond "good")
    knn = {}
    for k in recipe.knn_k:
        both = pd.concat([_score_frame(frames[s], knn_scores(feats["train_good"], feats[s], k), s)
                          for s in ("val", "test")], ignore_index=True)   # val rows: for a threshold (report)
        frame = both[both["split"] == "test"]
        knn[k] = {"auroc": M.binary_metrics(frame["label"], frame["score"], np.inf)["roc_auc"],
                  "per_category": M.per_category_table(frame)[["category", "n", "n_defective", "auroc"]],
                  "scores": both}
    approach = "SimCLR + linear probe (10% labels)" + (" (SHUFFLED LABELS control)" if shuffled_labels else "")
    do_write = write and not shuffled_labels
    threshold, test_m, per_cat, record = finish(
        prepared, stem, approach, scores, recipe.threshold_method, started, out_dir,
        extra={"encoder": encoder_info or {}, "recipe": asdict(recipe), "n_labelled": len(labelled),
               "labelled_counts": labelled.groupby("label").size().to_dict(),
               "knn_auroc": {str(k): v["auroc"] for k, v in knn.items()},
               "knn_per_category": {str(k): v["per_category"] for k, v in knn.items()}},
        write=do_write)
    if do_write:
        save_model(probe, out_dir / "model.pt", "linear_probe", recipe.image_size, encoder=encoder_info or {})
        result.history.to_csv(out_dir / "history.csv", index=False)
        for k, v in knn.items():
            v["scores"].to_csv(out_dir / f"scores_knn{k}.csv", index=False)
    return TrackResult(probe, result, (encoder_info or {}).get("weights", "?"), scores, threshold, test_m,
                       per_cat, record, out_dir, {"knn": knn, "labelled": labelled, "recipe": recipe})


#: The study's own figures (SimCLR + probe), as reported — on a sample of its test data.
STUDY_PROBE = {"f1": 0.8418, "recall": 0.9936, "fpr": 0.9893}
#: The study's own figures (supervised ResNet-50), as reported.
STUDY_SUPERVISED = {"accuracy": 0.9263, "f1": 0.8081, "roc_auc": 0.9496, "pr_auc": 0.8922}
