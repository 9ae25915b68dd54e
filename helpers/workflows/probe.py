"""Notebook 03 as functions: the linear probe on SimCLR's frozen encoder (10% of ``train`` labelled), and the
label-free kNN score on the same features."""
from __future__ import annotations

import math
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
from ..data.torch_data import MVTecDataset, eval_transform, make_loader
from ..evaluation import intervals as I
from ..evaluation import metrics as M
from ..models import backbones, kinds
from ..models.classifiers import LinearProbe, defect_probability, inverse_frequency_weights
from ..training.loop import FitResult, Resuming, Stepping, Stopping, embed, fingerprint, fit, reseed, state_hash
from ..training.recipes import ProbeRecipe, scaled
from .common import out_dir, score_frame, train_loader

__all__ = ["APPROACH", "ProbeRun", "labelled_fraction", "knn_scores", "epochs_for", "encoder_key", "frozen_features",
           "train_head", "run",
           "command"]

APPROACH = "SimCLR + linear probe"


@dataclass(kw_only=True)
class ProbeRun(ScoredRun):
    """Notebook 03's scored run: the probe's training, the labelled rows, and the kNN scores (per k: test AUROC,
    per-category table and val/test scores)."""

    fit: FitResult
    weights: str
    recipe: ProbeRecipe
    labelled: pd.DataFrame
    knn: dict[int, dict[str, Any]]


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


def encoder_key(encoder: nn.Module) -> str:
    """The registry key of a SimCLR encoder (a backbone's :class:`helpers.models.backbones.StagedNet`): its
    normalisation follows from it. An encoder that does not say which backbone it is is refused, never given
    ResNet-50's normalisation by default."""
    key = getattr(encoder, "key", None)
    if not isinstance(key, str) or key not in backbones.BACKBONES:
        raise ValueError(f"the encoder ({type(encoder).__name__}) names no known backbone (key={key!r}; known: "
                         f"{', '.join(backbones.BACKBONES)}): load it with simclr.load_encoder")
    return key


def frozen_features(prepared: Prepared, encoder: nn.Module, recipe: ProbeRecipe, labelled: pd.DataFrame,
                    stats: tuple[Any, Any]) -> tuple[dict[str, np.ndarray], dict[str, MVTecDataset]]:
    """Frozen-encoder features (no augmentation) of the labelled rows, train good, val and test."""
    cache = prepared.cache(recipe.image_size, progress=False)
    cats = sorted(prepared.manifest["category"].unique())
    sets = {"labelled": labelled, "train_good": prepared.frame("train", label=0),
            "val": prepared.frame("val"), "test": prepared.frame("test")}
    feats, frames = {}, {}
    for name, frame in sets.items():
        frames[name] = MVTecDataset(frame, cache, transform=eval_transform(recipe.image_size, *stats), categories=cats)
        feats[name], _ = embed(encoder, make_loader(frames[name], 64))
    return feats, frames


def _probe_eval(head: nn.Module, feats: np.ndarray, labels: np.ndarray, loss_fn: nn.Module, metrics: bool = True
                ) -> Callable[[nn.Module], dict[str, float]]:
    """Val loss, F1 at the F1-max threshold and AUROC of the probe head (``metrics``), on precomputed val features."""
    val_feats = torch.from_numpy(feats).float()
    val_y = torch.as_tensor(np.array(labels), dtype=torch.long)

    def evaluate(m: nn.Module) -> dict[str, float]:
        logits = m(val_feats.to(next(head.parameters()).device)).float().cpu()
        prob = defect_probability(logits).numpy()
        if not metrics:
            return {"val_loss": float(loss_fn(logits, val_y))}
        y = val_y.numpy()
        thr_f1 = M.binary_metrics(y, prob, M.choose_threshold(y, prob, "f1"))
        return {"val_loss": float(loss_fn(logits, val_y)), "val_f1": thr_f1["f1"], "val_auroc": thr_f1["roc_auc"]}
    return evaluate


def _knn_results(feats: dict[str, np.ndarray], frames: dict[str, MVTecDataset], ks: tuple[int, ...]) -> dict:
    """Label-free kNN scores (distance to the k nearest good training embeddings) for val and test."""
    knn = {}
    for k in ks:
        both = pd.concat([score_frame(frames[s].frame, knn_scores(feats["train_good"], feats[s], k), s)
                          for s in ("val", "test")], ignore_index=True)   # val rows: for a threshold (report)
        frame = both[both["split"] == "test"]
        knn[k] = {"auroc": M.binary_metrics(frame["label"], frame["score"], np.inf)["roc_auc"],
                  "auroc_interval": I.image_intervals(frame)["roc_auc"],
                  "per_category": I.category_intervals(frame), "scores": both}
    return knn


def epochs_for(recipe: ProbeRecipe, steps_per_epoch: int) -> int:
    """The recipe's epochs, or more when its labelled set is so small that they would take fewer than
    ``recipe.min_steps`` optimisation steps (the features are computed once, so the extra epochs cost milliseconds)."""
    return max(recipe.epochs, math.ceil(recipe.min_steps / max(1, steps_per_epoch)))


def train_head(prepared: Prepared, probe: LinearProbe, feats: dict[str, np.ndarray], y_lab: np.ndarray,
               val_labels: np.ndarray, recipe: ProbeRecipe, *, checkpoint: Any = None, progress: bool = False,
               shuffled: bool = False, seed: int | None = None, val_metrics: bool = True) -> FitResult:
    """The recipe's optimisation of the head on the labelled rows' features: Adam, class-weighted cross-entropy.

    ``val_metrics=False`` records only the val loss per epoch (the head is the same: nothing is selected on val);
    notebook 09 fits the head dozens of times, where the per-epoch F1/AUROC cost more than the fit."""
    cfg, head = prepared.cfg, probe.head
    device = next(head.parameters()).device
    weights_t = inverse_frequency_weights(y_lab).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weights_t)
    train_dl = train_loader(_Features(feats["labelled"], y_lab), recipe.batch_size, cfg, workers=0)
    evaluate = _probe_eval(head, feats["val"], val_labels, nn.CrossEntropyLoss(weight=weights_t.cpu()), val_metrics)
    return fit(head, torch.optim.Adam(head.parameters(), lr=recipe.lr), train_dl,
               lambda m, b: loss_fn(m(b["image"]), b["label"]), evaluate, epochs_for(recipe, len(train_dl)),
               seed=cfg.seed if seed is None else seed, progress=progress,
               stepping=Stepping(clip_grad=recipe.clip_grad),
               stopping=Stopping(patience=None, restore_best=False),
               resuming=Resuming(checkpoint, fingerprint(prepared, recipe=asdict(recipe), encoder=state_hash(probe.encoder),
                                                         shuffled=shuffled)))


def run(prepared: Prepared, encoder: nn.Module, recipe: ProbeRecipe | None = None, *, shuffled_labels: bool = False,
        stem: str = layout.PROBE, write: bool = True, progress: bool = True,
        encoder_info: dict[str, Any] | None = None, seed: int | None = None) -> ProbeRun:
    """Linear probe on the frozen encoder with 10% of ``train`` labels, plus kNN scores (no defect labels).

    The encoder is frozen and in eval mode, so its features are computed once (no augmentation: the
    linear-evaluation protocol) and the head is trained on them — the same maths as running
    :class:`LinearProbe` batch by batch, much cheaper. The saved model is the full :class:`LinearProbe`.
    ``seed`` (default the config's) draws the labelled rows and initialises the head.
    """
    cfg = prepared.cfg
    seed = cfg.seed if seed is None else seed
    recipe = recipe or scaled(ProbeRecipe(), cfg.profile)
    started, device = time.time(), torch_device()
    folder = out_dir(prepared, stem, write)
    reseed(seed)
    encoder = encoder.to(device).eval()
    entry = backbones.get(encoder_key(encoder))
    labelled = labelled_fraction(prepared.frame("train"), recipe.label_fraction, seed)
    feats, frames = frozen_features(prepared, encoder, recipe, labelled, (entry.mean, entry.std))
    y_lab = frames["labelled"].labels.copy()
    if shuffled_labels:
        y_lab = np.random.default_rng(seed).permutation(y_lab)
    probe = LinearProbe(encoder).to(device)
    checkpoint = folder / layout.checkpoint_name(cfg.profile.name, cfg.profile.image_size,
                                                 "-shuffled" if shuffled_labels else "") if write else None
    result = train_head(prepared, probe, feats, y_lab, frames["val"].labels, recipe, checkpoint=checkpoint,
                        progress=progress, shuffled=shuffled_labels, seed=seed)
    with torch.no_grad():
        def probs(name: str) -> np.ndarray:
            logits = probe.head(torch.from_numpy(feats[name]).float().to(device))
            return defect_probability(logits).cpu().numpy()
        scores = pd.concat([score_frame(frames[s].frame, probs(s), s) for s in ("val", "test")], ignore_index=True)
    knn = _knn_results(feats, frames, recipe.knn_k)
    do_write = write and not shuffled_labels and distributed.is_main()
    run = write_scored(
        prepared, stem, APPROACH + (" (SHUFFLED LABELS control)" if shuffled_labels else ""),
        scores, labels=labels_used(prepared, len(labelled), True, "threshold"), started=started,
        threshold_method=recipe.threshold_method, write=do_write, out_dir=folder,
        extra={"backbone": entry.key, "weights": str((encoder_info or {}).get("weights", "?")) + " + SimCLR (notebook 02)",
               "encoder": encoder_info or {}, "recipe": asdict(recipe), "n_labelled": len(labelled),
               "labelled_counts": labelled.groupby("label").size().to_dict(),
               "knn_auroc": {str(k): v["auroc"] for k, v in knn.items()},
               "knn_auroc_interval": {str(k): v["auroc_interval"].as_list() for k, v in knn.items()},
               "knn_labels_used": labels_used(prepared, 0, True, "per-category thresholds"),
               "knn_per_category": {str(k): v["per_category"] for k, v in knn.items()}},
        run_type=ProbeRun, model=probe, history=result.history, fit=result,
        weights=str((encoder_info or {}).get("weights", "?")), recipe=recipe, labelled=labelled, knn=knn)
    if do_write:
        _save(run, entry, encoder_info or {})
    return run


def _save(run: ProbeRun, entry: backbones.Backbone, encoder_info: dict[str, Any]) -> None:
    """The probe (encoder and head), its card, its training history and the kNN scores, in the run's folder."""
    name = kinds.PROBE.model_file
    kinds.PROBE.save(run.model, run.out_dir / name, backbone=entry.key, image_size=run.recipe.image_size,
                     encoder=encoder_info)
    spec = kinds.PROBE.input_spec(run.recipe.image_size, entry.mean, entry.std)
    write_card(run.out_dir, card_for(run, kinds.PROBE.name, name, spec, backbone=entry.key, weights=run.weights))
    files.write_csv(run.fit.history, run.out_dir / layout.HISTORY)
    for k, v in run.knn.items():
        files.write_csv(v["scores"], run.out_dir / layout.knn_scores(k))


def command(prepared: Any, progress: bool, mirrored: bool, backbone: str) -> str:
    """``python -m helpers train probe``: notebook 03's probe on notebook 02's encoder; a summary line."""
    from . import simclr
    from .commands import summary_line

    encoder, meta = simclr.load_encoder(prepared.cfg.runs_dir)
    return summary_line(run(prepared, encoder, progress=progress,
                            encoder_info={"weights": meta.get("weights"), "simclr_recipe": meta.get("recipe")}))
