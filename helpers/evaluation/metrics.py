"""Metrics every notebook reports the same way, computed with scikit-learn, and the metrics.json schema.

Binary (defective = positive class 1): accuracy, precision, recall, F1, specificity, FPR, ROC-AUC,
PR-AUC (average precision). Category (multi-class): accuracy and weighted precision/recall/F1,
per-class recall. Thresholds are chosen on ``val`` only (F1-max or Youden's J), never on ``test``.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ..core import files

__all__ = ["mean_category_auroc", "NORMALISED_THRESHOLD", "normalise_per_category", "SCHEMA_VERSION", "METRICS_KEYS",
           "DATA_KEYS", "LABELS_USED_KEYS", "THRESHOLD_METHODS", "binary_metrics", "choose_threshold",
           "score_on_test", "category_metrics", "per_class_recall", "per_category_table", "plot_confusion",
           "plot_roc_pr", "plot_per_category_auroc", "metrics_record", "validate_record", "write_metrics",
           "read_metrics"]

SCHEMA_VERSION = 3
METRICS_KEYS = ("schema_version", "notebook", "approach", "protocol", "profile", "split_sizes", "threshold",
                "labels_used", "metrics", "per_category", "data", "code", "device", "versions", "time_taken_s",
                "created")
#: What ``labels_used`` says of a trained approach (see :func:`helpers.runs.labels_used`).
LABELS_USED_KEYS = ("defect_labels_for_training", "labels_to_select_good", "val_labels", "val_labels_for")
#: What ``data`` must say (see :meth:`helpers.prepare.Prepared.provenance`).
DATA_KEYS = ("builtin", "name", "root", "manifest_hash", "split_hash")
THRESHOLD_METHODS = ("f1", "youden", "fixed")


def _has_both_classes(y: np.ndarray) -> bool:
    return len(np.unique(y)) == 2


def binary_metrics(y_true: Iterable[int], y_score: Iterable[float], threshold: float) -> dict[str, float]:
    """Threshold-dependent and ranking metrics for defect detection (label 1 = defective).

    A score ``>= threshold`` predicts defective. ROC-AUC and PR-AUC are NaN when ``y_true`` holds
    one class only.
    """
    y_true = np.asarray(y_true, dtype=int)
    y_score = np.asarray(y_score, dtype=float)
    y_pred = (y_score >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    both = _has_both_classes(y_true)
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else math.nan,
        "fpr": float(fp / (fp + tn)) if fp + tn else math.nan,
        "roc_auc": float(skm.roc_auc_score(y_true, y_score)) if both else math.nan,
        "pr_auc": float(skm.average_precision_score(y_true, y_score)) if both else math.nan,
        "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn), "n": int(len(y_true)),
    }


def choose_threshold(y_true: Iterable[int], y_score: Iterable[float], method: str = "f1") -> float:
    """Pick a decision threshold on validation scores.

    - ``f1``: the threshold with the highest F1 (from sklearn's precision-recall curve);
    - ``youden``: the threshold maximising TPR − FPR (from sklearn's ROC curve).

    With one class only in ``y_true`` it falls back to 0.5 for probabilities.
    """
    y_true = np.asarray(y_true, dtype=int)
    y_score = np.asarray(y_score, dtype=float)
    if method not in ("f1", "youden"):
        raise ValueError(f"Unknown threshold method {method!r}: expected 'f1' or 'youden'")
    if not _has_both_classes(y_true):
        return 0.5
    if method == "f1":
        precision, recall, thresholds = skm.precision_recall_curve(y_true, y_score)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        return float(thresholds[int(np.argmax(f1[:-1]))])
    fpr, tpr, thresholds = skm.roc_curve(y_true, y_score)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], np.max(y_score)))


def score_on_test(scores: pd.DataFrame, method: str = "f1", threshold: float | None = None
                  ) -> tuple[float, dict[str, float], pd.DataFrame]:
    """The protocol in one place: threshold chosen on the ``val`` rows of ``scores`` (columns ``split``,
    ``label``, ``score``, ``category``), metrics and the per-category table on its ``test`` rows. The metrics
    include ``category_auroc_mean``, the mean of the per-category test AUROCs, beside the pooled ``roc_auc``.
    A given ``threshold`` (e.g. after :func:`normalise_per_category`) is used as it is."""
    val, test = scores[scores["split"] == "val"], scores[scores["split"] == "test"]
    if threshold is None:
        threshold = choose_threshold(val["label"], val["score"], method)
    per_cat = per_category_table(test, threshold=threshold)
    return threshold, {**binary_metrics(test["label"], test["score"], threshold),
                       "category_auroc_mean": mean_category_auroc(per_cat)}, per_cat


def mean_category_auroc(per_category: pd.DataFrame) -> float:
    """The mean of the per-category AUROCs (categories with one class only left out; NaN when none is left)."""
    vals = per_category["auroc"].to_numpy(float) if "auroc" in per_category else np.zeros(0)
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan


#: Where the per-category threshold lands after :func:`normalise_per_category`.
NORMALISED_THRESHOLD = 0.5


def normalise_per_category(scores: pd.DataFrame, method: str = "f1") -> tuple[pd.DataFrame, dict[str, dict]]:
    """Scores of per-category models (PatchCore, kNN: distances whose scale differs per category) on one scale.

    Each category's threshold ``t`` is chosen on that category's ``val`` rows (``method``); its scores become
    ``(s − t) / (max − min) + 0.5`` with ``min``/``max`` over its val scores — anomalib's min-max normalisation,
    centred on the threshold and not clipped, so every category's threshold is 0.5 and pooled metrics compare
    like with like. A category whose val rows hold one class only gets ``t`` = its highest val score (the
    fallback is named in the returned parameters). Returns the normalised frame and, per category,
    ``{"threshold", "min", "max", "note"}``.
    """
    out, params = scores.copy(), {}
    for cat, idx in scores.groupby("category").groups.items():
        g = scores.loc[idx]
        val = g[g["split"] == "val"]
        if len(val) == 0:
            raise ValueError(f"category {cat!r} has no val rows: a per-category threshold needs them")
        both = _has_both_classes(val["label"].to_numpy(int))
        t = choose_threshold(val["label"], val["score"], method) if both else float(val["score"].max())
        lo, hi = float(val["score"].min()), float(val["score"].max())
        span = hi - lo if hi > lo else 1.0
        out.loc[idx, "score"] = (g["score"] - t) / span + NORMALISED_THRESHOLD
        params[str(cat)] = {"threshold": float(t), "min": lo, "max": hi,
                            "note": "" if both else "val holds one class only: threshold = highest val score"}
    return out, params


def category_metrics(y_true: Iterable, y_pred: Iterable, labels: list | None = None) -> dict[str, Any]:
    """Accuracy, weighted precision/recall/F1 and per-class recall for the category task."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average="weighted",
                                                     zero_division=0)
    per_class = skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {"accuracy": float(skm.accuracy_score(y_true, y_pred)), "precision_weighted": float(p),
            "recall_weighted": float(r), "f1_weighted": float(f),
            "per_class_recall": {str(k): float(v) for k, v in zip(labels, per_class)}}


def per_class_recall(y_true: Iterable[int], y_pred: Iterable[int]) -> dict[str, float]:
    """Recall of each binary class: good (= specificity) and defective (= sensitivity)."""
    rec = skm.recall_score(y_true, y_pred, labels=[0, 1], average=None, zero_division=0)
    return {"good": float(rec[0]), "defective": float(rec[1])}


def per_category_table(frame: pd.DataFrame, score_col: str = "score", threshold: float | None = None) -> pd.DataFrame:
    """Per category: image counts, image AUROC (NaN with one class), and recall/FPR at ``threshold``."""
    rows = []
    for cat, g in frame.groupby("category", sort=True):
        y, s = g["label"].to_numpy(int), g[score_col].to_numpy(float)
        row = {"category": cat, "n": len(g), "n_defective": int(y.sum()),
               "auroc": float(skm.roc_auc_score(y, s)) if _has_both_classes(y) else math.nan}
        if threshold is not None:
            pred = (s >= threshold).astype(int)
            row["recall"] = float(pred[y == 1].mean()) if (y == 1).any() else math.nan
            row["fpr"] = float(pred[y == 0].mean()) if (y == 0).any() else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def plot_confusion(y_true, y_pred, labels=None, display_labels=None, ax=None, title: str = "",
                   normalize: bool = False):
    """A seaborn heatmap of the confusion matrix (counts, or row-normalised)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    labels = labels if labels is not None else [0, 1]
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels, normalize="true" if normalize else None)
    names = display_labels or (["good", "defective"] if list(labels) == [0, 1] else [str(x) for x in labels])
    if ax is None:
        side = max(3.5, 0.45 * len(labels) + 2)
        _, ax = plt.subplots(figsize=(side + 1, side))
    sns.heatmap(cm, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", cbar=False,
                xticklabels=names, yticklabels=names, ax=ax, square=True)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    return ax


def plot_roc_pr(y_true, y_score, label: str = "", axes=None, threshold: float | None = None):
    """ROC and precision-recall curves side by side (pass ``axes`` to overlay several models)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4))
    y_true, y_score = np.asarray(y_true, int), np.asarray(y_score, float)
    fpr, tpr, _ = skm.roc_curve(y_true, y_score)
    prec, rec, _ = skm.precision_recall_curve(y_true, y_score)
    auc, ap = skm.roc_auc_score(y_true, y_score), skm.average_precision_score(y_true, y_score)
    axes[0].plot(fpr, tpr, label=f"{label} AUC={auc:.3f}".strip())
    axes[0].plot([0, 1], [0, 1], ls=":", c="grey")
    axes[0].set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    axes[1].plot(rec, prec, label=f"{label} AP={ap:.3f}".strip())
    axes[1].axhline(y_true.mean(), ls=":", c="grey")
    axes[1].set(xlabel="recall", ylabel="precision", title="precision-recall")
    if threshold is not None:
        pred = y_score >= threshold
        tpr_t = pred[y_true == 1].mean()
        axes[0].plot([pred[y_true == 0].mean()], [tpr_t], "o", c="k")
        axes[1].plot([tpr_t], [y_true[pred].mean() if pred.any() else 1.0], "o", c="k")
    for ax in axes:
        ax.legend(loc="lower right" if ax is axes[0] else "lower left")
    return axes


def plot_per_category_auroc(table: pd.DataFrame, ax=None, title: str = "image AUROC per category"):
    """A bar chart of the ``auroc`` column of :func:`per_category_table`."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    sns.barplot(data=table, x="category", y="auroc", ax=ax, color="steelblue")
    ax.axhline(0.5, ls=":", c="grey")
    ax.set(ylim=(0, 1.02), title=title)
    ax.tick_params(axis="x", rotation=60)
    return ax


# --------------------------------------------------------------------------------------------------
# metrics.json
# --------------------------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    """JSON-safe: NaN → None, numpy scalars → Python, DataFrames → records."""
    if isinstance(value, pd.DataFrame):
        return [_clean(r) for r in value.to_dict(orient="records")]
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_record(notebook: str, approach: str, protocol: str, profile: str, split_sizes: dict[str, int],
                   threshold: float | None, threshold_method: str, metrics: dict[str, Any],
                   per_category: pd.DataFrame | list | None = None, started: float | None = None,
                   extra: dict[str, Any] | None = None, *, data: dict[str, Any],
                   labels_used: dict[str, Any] | None = None, threshold_detail: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Build a record in the one schema every notebook writes (see :data:`METRICS_KEYS`).

    Args:
        protocol: ``shared-split`` (the project's split, scored on ``test``) or ``mvtec-standard``.
        threshold_method: ``f1`` / ``youden`` (chosen on val) or ``fixed``.
        started: ``time.time()`` at the start of the work, for ``time_taken_s``.
        data: which data and split (:meth:`helpers.prepare.Prepared.provenance`); the code (package version,
            git commit) and the device are added here.
        labels_used: how many labels the approach used, and for what (:data:`LABELS_USED_KEYS`); ``{}`` for a
            notebook that trains nothing.
        threshold_detail: added to ``threshold`` (e.g. the per-category thresholds and normalisation).
    """
    from ..core.env import code_version, device_info, versions

    if threshold_method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold_method must be one of {THRESHOLD_METHODS}")
    record = {
        "schema_version": SCHEMA_VERSION, "notebook": notebook, "approach": approach, "protocol": protocol,
        "profile": profile, "split_sizes": dict(split_sizes),
        "threshold": {"value": threshold, "method": threshold_method,
                      "chosen_on": "val" if threshold_method != "fixed" else None, **(threshold_detail or {})},
        "labels_used": dict(labels_used or {}),
        "metrics": metrics, "per_category": per_category if per_category is not None else [],
        "data": dict(data), "code": code_version(), "device": device_info(), "versions": versions(),
        "time_taken_s": round(time.time() - started, 1) if started else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        record["extra"] = extra
    return _clean(record)


def validate_record(record: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming what is missing or malformed in a metrics record."""
    missing = [k for k in METRICS_KEYS if k not in record]
    if missing:
        raise ValueError(f"metrics record lacks {missing} (schema {record.get('schema_version')}, now "
                         f"{SCHEMA_VERSION}): written by an older version — re-run notebook {record.get('notebook')}")
    if record["labels_used"] and (gap := [k for k in LABELS_USED_KEYS if k not in record["labels_used"]]):
        raise ValueError(f"metrics record's labels_used lacks {gap}")
    lacking = [k for k in DATA_KEYS if k not in (record["data"] or {})]
    if lacking:
        raise ValueError(f"metrics record's data lacks {lacking}: nothing could tell which data it was measured on")
    if record["protocol"] not in ("shared-split", "mvtec-standard"):
        raise ValueError(f"unknown protocol {record['protocol']!r}")
    if not isinstance(record["metrics"], dict) or not record["metrics"]:
        raise ValueError("metrics must be a non-empty dict")
    if not {"value", "method", "chosen_on"} <= set(record["threshold"]):
        raise ValueError("threshold must have value, method and chosen_on")


def write_metrics(record: dict[str, Any], runs_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Validate and write ``RUNS_DIR/<notebook>/metrics.json`` (or ``path``); return its path."""
    validate_record(record)
    path = Path(path) if path is not None else Path(runs_dir) / record["notebook"] / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(path, record, allow_nan=False)
    return path


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a metrics.json."""
    record = json.loads(Path(path).read_text())
    validate_record(record)
    return record
