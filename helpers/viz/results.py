"""Figures of test results: confusion matrices, ROC and precision-recall curves, per-category AUROC, the report's
heatmap and curves, and the threshold explorer."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ..evaluation.metrics import binary_metrics

__all__ = ["plot_confusion", "plot_roc_pr", "plot_per_category_auroc", "plot_test_results", "plot_per_category",
           "plot_score_histograms", "plot_heatmap", "plot_curves", "threshold_explorer"]


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


def plot_score_histograms(scores: pd.DataFrame, split: str = "test", col_wrap: int = 5) -> Any:
    """Image scores of good vs defective images, one panel per category (as many columns as there are categories, up
    to ``col_wrap``: one category's data is one panel, not the corner of a grid laid out for 15)."""
    import seaborn as sns

    data = scores[scores["split"] == split].assign(kind=lambda d: np.where(d["label"] == 1, "defective", "good"))
    col_wrap = max(1, min(col_wrap, data["category"].nunique()))
    grid = sns.displot(data, x="score", hue="kind", col="category", col_wrap=col_wrap, kind="hist", bins=15,
                       height=2.2, aspect=1.2, facet_kws={"sharex": False, "sharey": False},
                       palette={"good": "#4c9a5b", "defective": "#c0504d"}, element="step")
    grid.set_titles("{col_name}")
    return grid


def plot_heatmap(heatmap: pd.DataFrame, ax=None):
    """Approach × category AUROC heatmap (seaborn)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(max(8, 0.7 * heatmap.shape[1] + 3), 0.6 * heatmap.shape[0] + 1.5))
    sns.heatmap(heatmap, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="RdYlGn", ax=ax, cbar_kws={"label": "test AUROC"})
    ax.set(xlabel="", ylabel="", title="test image AUROC per category")
    return ax


def plot_curves(approaches: Sequence[Any]) -> Any:
    """Overlaid ROC and precision-recall curves of every approach on the test images."""
    axes = None
    for a in approaches:
        t = a.test
        if t["label"].nunique() == 2:
            axes = plot_roc_pr(t["label"], t["score"], label=a.name, axes=axes)
    return axes


def threshold_explorer(approaches: Sequence[Any]) -> Any:
    """Approach dropdown + threshold slider → confusion matrix, precision, recall, FPR (static when headless)."""
    import matplotlib.pyplot as plt

    from .widgets import widgets_wanted

    by_name = {a.name: a for a in approaches}

    def show(name: str, quantile: float | None) -> None:
        a = by_name[name]
        t = a.test
        thr = float(np.quantile(t["score"], quantile)) if quantile is not None else a.threshold
        m = binary_metrics(t["label"], t["score"], thr)
        fig, ax = plt.subplots(figsize=(3.6, 3.2))
        plot_confusion(t["label"], (t["score"] >= thr).astype(int), ax=ax,
                       title=f"{name}\nthreshold {thr:.4g}")
        plt.show()
        print(f"precision {m['precision']:.3f} | recall {m['recall']:.3f} | FPR {m['fpr']:.3f} | F1 {m['f1']:.3f}"
              f"  (val-chosen threshold: {a.threshold:.4g})")

    if not approaches:
        print("nothing to explore: no approach found")
        return None
    if not widgets_wanted():
        for a in approaches:
            show(a.name, None)
        return None
    import ipywidgets as widgets

    return widgets.interact(show, name=widgets.Dropdown(options=list(by_name)),
                            quantile=widgets.FloatSlider(value=0.7, min=0.0, max=1.0, step=0.01,
                                                         description="score quantile", continuous_update=False))


def plot_test_results(run: Any, title: str = "test", label: str = "test") -> Any:
    """A scored run's held-out test results: the confusion matrix at its val-chosen threshold, ROC and PR.

    ``run`` is a :class:`helpers.artefacts.scored.ScoredRun` (every model notebook shows its test results this way).
    """
    import matplotlib.pyplot as plt

    test = run.split_scores("test")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    plot_confusion(test["label"], (test["score"] >= run.threshold).astype(int), ax=axes[0], title=title)
    plot_roc_pr(test["label"], test["score"], label=label, axes=axes[1:], threshold=run.threshold)
    fig.tight_layout()
    return fig


def plot_per_category(run: Any, title: str = "image AUROC per category") -> Any:
    """A scored run's per-category test AUROC as bars (the table itself is ``run.per_category``)."""
    return plot_per_category_auroc(run.per_category, title=title)
