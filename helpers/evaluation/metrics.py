"""Metrics every notebook reports the same way, computed with scikit-learn.

Binary (defective = positive class 1): accuracy, precision, recall, F1, specificity, FPR, ROC-AUC,
PR-AUC (average precision). Category (multi-class): accuracy and weighted precision/recall/F1,
per-class recall. Thresholds are chosen on ``val`` only (F1-max or Youden's J), never on ``test``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

__all__ = ["mean_category_auroc", "NO_VAL_NOTE", "NORMALISED_THRESHOLD", "category_span", "normalise_score",
           "normalise_per_category", "THRESHOLD_METHODS",
           "binary_metrics", "choose_threshold", "score_on_test", "category_metrics", "per_class_recall",
           "per_category_table"]

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


#: Why :func:`normalise_per_category` leaves a category's rows out.
NO_VAL_NOTE = "no val image to choose its threshold on"
#: Where the per-category threshold lands after :func:`normalise_per_category`.
NORMALISED_THRESHOLD = 0.5


def category_span(lo: float, hi: float) -> float:
    """The one rule for a category's span: its val score range, or 1 when that range is empty (one val score, or all
    equal). :func:`normalise_per_category`, the model card and PatchCore's exported graph all use it."""
    return hi - lo if hi > lo else 1.0


def normalise_score(score: Any, threshold: float, span: float) -> Any:
    """A per-category score on the shared scale: ``(s − t) / span + 0.5`` (0.5 = the category's threshold)."""
    return (score - threshold) / span + NORMALISED_THRESHOLD


def normalise_per_category(scores: pd.DataFrame, method: str = "f1") -> tuple[pd.DataFrame, dict[str, dict]]:
    """Scores of per-category models (PatchCore, kNN: distances whose scale differs per category) on one scale.

    Each category's threshold ``t`` is chosen on that category's ``val`` rows (``method``); its scores become
    ``(s − t) / (max − min) + 0.5`` with ``min``/``max`` over its val scores — anomalib's min-max normalisation,
    centred on the threshold and not clipped, so every category's threshold is 0.5 and pooled metrics compare
    like with like. A category whose val rows hold one class only gets ``t`` = its highest val score (the
    fallback is named in the returned parameters). A category without val rows has no threshold: its rows are left
    out of the returned frame and its parameters say so (``{"note": ...}`` only). Returns the normalised frame
    and, per category, ``{"threshold", "min", "max", "note"}``.
    """
    out, dropped = scores.copy(), []
    params: dict[str, dict[str, Any]] = {}
    for cat, idx in scores.groupby("category").groups.items():
        g = scores.loc[idx]
        val = g[g["split"] == "val"]
        if len(val) == 0:
            params[str(cat)] = {"note": NO_VAL_NOTE}
            dropped.append(idx)
            continue
        both = _has_both_classes(val["label"].to_numpy(int))
        t = choose_threshold(val["label"], val["score"], method) if both else float(val["score"].max())
        lo, hi = float(val["score"].min()), float(val["score"].max())
        out.loc[idx, "score"] = normalise_score(g["score"], t, category_span(lo, hi))
        params[str(cat)] = {"threshold": float(t), "min": lo, "max": hi,
                            "note": "" if both else "val holds one class only: threshold = highest val score"}
    for idx in dropped:
        out = out.drop(index=idx)
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


# --------------------------------------------------------------------------------------------------
# metrics.json
# --------------------------------------------------------------------------------------------------


