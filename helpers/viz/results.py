"""Figures of test results: confusion matrices, ROC and precision-recall curves, per-category AUROC, the report's
heatmap and curves, and the threshold explorer."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ..evaluation.intervals import METHOD, format_interval
from ..evaluation.metrics import binary_metrics

__all__ = ["RESULT_ROWS", "MASK_METRICS", "NO_MASKS",
           "result_table", "interval_table", "interval_caption", "plot_confusion", "plot_roc_pr",
           "plot_per_category_auroc", "plot_test_results", "plot_per_category", "plot_score_histograms", "plot_heatmap",
           "plot_curves", "threshold_explorer", "plot_label_efficiency", "plot_throughput", "plot_predictions"]

#: The test metrics each model notebook shows, in order.
RESULT_ROWS = ("accuracy", "precision", "recall", "f1", "specificity", "fpr", "roc_auc", "pr_auc", "category_auroc_mean")


def result_table(run: Any, study: dict[str, float] | None = None, rows: Sequence[str] = RESULT_ROWS) -> pd.DataFrame:
    """A scored run's test metrics with their bootstrap 95% intervals (and, given, the study's own figures beside
    them): the table every model notebook shows. Its caption says how the intervals were made."""
    table = pd.DataFrame({"ours (test)": [run.test_metrics.get(r, np.nan) for r in rows],
                          "95% interval": [_span(run.intervals.get(r)) for r in rows]}, index=list(rows))
    if study is not None:
        table["study (as reported)"] = [study.get(r, np.nan) for r in rows]
    return table.round(4)


def _span(interval: Any) -> str:
    if interval is None or not np.isfinite(interval.low):
        return ""
    return f"[{interval.low:.3f}, {interval.high:.3f}]"


#: Localisation metrics: NaN in all of them means the row's images have no defect mask to score against.
MASK_METRICS = ("pixel_auroc", "au_pro", "pointing_game")
#: What a table shows instead of a number for a localisation metric of images without masks.
NO_MASKS = "no masks"


def interval_table(table: pd.DataFrame, columns: Sequence[str], digits: int = 2) -> pd.DataFrame:
    """``table`` with each of ``columns`` shown as ``value [low, high]`` from its ``<column>_low`` and
    ``<column>_high`` columns (which are dropped): for reading, not for computing. A row whose localisation
    metrics (:data:`MASK_METRICS`) are all NaN had no defect mask among its images: they read :data:`NO_MASKS`."""
    out = table.copy()
    present = [c for c in MASK_METRICS if c in out]
    no_masks = out[present].isna().all(axis=1) if present else pd.Series(False, index=out.index)
    for c in columns:
        if f"{c}_low" in out:
            out[c] = [format_interval(v, lo, hi, digits) for v, lo, hi in zip(out[c], out[f"{c}_low"], out[f"{c}_high"])]
            out = out.drop(columns=[f"{c}_low", f"{c}_high"])
        if c in MASK_METRICS:
            out[c] = out[c].astype(object).where(~no_masks, NO_MASKS)
    return out


def interval_caption() -> str:
    """One line on what the intervals are (printed under the tables and written under the figures)."""
    return f"95% intervals: {METHOD}. They cover which test images were drawn, not training randomness."



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


def plot_roc_pr(y_true, y_score, label: str = "", axes=None, threshold: float | None = None,
                categories: Sequence[str] | None = None):
    """ROC and precision-recall curves side by side (pass ``axes`` to overlay several models). Given the images'
    ``categories`` (for the stratified resamples), the ROC curve gets its pointwise 95% bootstrap band and both
    legends their metric's interval."""
    import matplotlib.pyplot as plt

    from ..evaluation import intervals as I

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4))
    y_true, y_score = np.asarray(y_true, int), np.asarray(y_score, float)
    fpr, tpr, _ = skm.roc_curve(y_true, y_score)
    prec, rec, _ = skm.precision_recall_curve(y_true, y_score)
    auc, ap = skm.roc_auc_score(y_true, y_score), skm.average_precision_score(y_true, y_score)
    auc_txt, ap_txt = f"AUC={auc:.3f}", f"AP={ap:.3f}"
    if categories is not None:
        frame = pd.DataFrame({"label": y_true, "score": y_score, "category": list(categories)})
        spans = I.image_intervals(frame)
        auc_txt, ap_txt = (f"AUC={spans['roc_auc']}", f"AP={spans['pr_auc']}")
        grid, low, high = I.roc_band(frame)
        line = axes[0].plot(fpr, tpr, label=f"{label} {auc_txt}".strip())[0]
        axes[0].fill_between(grid, low, high, color=line.get_color(), alpha=0.15, lw=0)
    else:
        axes[0].plot(fpr, tpr, label=f"{label} {auc_txt}".strip())
    axes[0].plot([0, 1], [0, 1], ls=":", c="grey")
    axes[0].set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    axes[1].plot(rec, prec, label=f"{label} {ap_txt}".strip())
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
    """A bar chart of the ``auroc`` column of a per-category table, with its bootstrap 95% interval as an error bar
    (``auroc_low``/``auroc_high``, when present) and each category's number of test images under its name."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.55 * len(table) + 2), 3.5))
    x = np.arange(len(table))
    value = table["auroc"].to_numpy(float)
    ax.bar(x, np.nan_to_num(value), color="steelblue")
    if {"auroc_low", "auroc_high"} <= set(table):
        low, high = table["auroc_low"].to_numpy(float), table["auroc_high"].to_numpy(float)
        ok = np.isfinite(low) & np.isfinite(high)
        # drawn from its ends, not as ± offsets: a percentile interval need not contain the value (skewed resamples)
        ax.vlines(x[ok], low[ok], high[ok], colors="k", lw=1)
        for end in (low, high):
            ax.plot(x[ok], end[ok], "_", c="k", ms=8)
        title = f"{title} (bars: 95% bootstrap interval)"
    names = [f"{c}\n{n} ({d} def.)" if "n" in table else str(c)
             for c, n, d in zip(table["category"], table.get("n", table["category"]), table.get("n_defective", x))]
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.axhline(0.5, ls=":", c="grey")
    ax.set(ylim=(0, 1.02), title=title, ylabel="test AUROC")
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


def plot_heatmap(heatmap: pd.DataFrame, low: pd.DataFrame | None = None, high: pd.DataFrame | None = None, ax=None):
    """Approach × category AUROC heatmap (seaborn); given ``low``/``high`` (same shape), each cell also shows its
    bootstrap 95% interval, so that a reader sees which differences the test set can resolve."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with_spans = low is not None and high is not None
    low_, high_ = (low, high) if low is not None and high is not None else (heatmap, heatmap)
    if ax is None:
        width = (1.15 if with_spans else 0.7) * heatmap.shape[1] + 3
        _, ax = plt.subplots(figsize=(max(8, width), (0.8 if with_spans else 0.6) * heatmap.shape[0] + 1.5))
    annot: Any = True
    if with_spans:
        annot = np.vectorize(lambda v, lo, hi: "" if not np.isfinite(v) else
                             f"{v:.2f}" + (f"\n[{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else ""))(
            heatmap.to_numpy(float), low_.reindex_like(heatmap).to_numpy(float), high_.reindex_like(heatmap).to_numpy(float))
    sns.heatmap(heatmap.astype(float), annot=annot, fmt="" if with_spans else ".2f", vmin=0, vmax=1, cmap="RdYlGn",
                ax=ax, cbar_kws={"label": "test AUROC"}, annot_kws={"fontsize": 7 if with_spans else 9})
    ax.set(xlabel="", ylabel="", title="test image AUROC per category" + (" [95% bootstrap interval]" if with_spans else ""))
    return ax


def plot_curves(approaches: Sequence[Any], tests: Sequence[pd.DataFrame] | None = None) -> Any:
    """Overlaid ROC and precision-recall curves of every approach on the test images (``tests``: each approach's
    test rows to draw, e.g. the images every approach scored; default its own)."""
    axes = None
    for a, t in zip(approaches, tests if tests is not None else [a.test for a in approaches]):
        if t["label"].nunique() == 2:
            axes = plot_roc_pr(t["label"], t["score"], label=a.name, axes=axes, categories=t["category"])
    if axes is not None:
        axes[0].set_title("ROC (bands: pointwise 95% bootstrap)")
        for ax in axes:
            ax.legend(fontsize=7, loc="lower right" if ax is axes[0] else "lower left")
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
    plot_roc_pr(test["label"], test["score"], label=label, axes=axes[1:], threshold=run.threshold,
                categories=test["category"])
    fig.tight_layout()
    return fig


def plot_per_category(run: Any, title: str = "image AUROC per category") -> Any:
    """A scored run's per-category test AUROC as bars (the table itself is ``run.per_category``)."""
    return plot_per_category_auroc(run.per_category, title=title)


def plot_label_efficiency(runs: pd.DataFrame, references: pd.DataFrame, title: str = "") -> Any:
    """Test AUROC against the number of labelled defective images: each trained approach's seeds as dots, their mean
    as a line with the mean bootstrap 95% interval as a band; each approach that needs no defect label as a
    horizontal line with its interval."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for approach, g in runs.groupby("approach", sort=False):
        curve = g.groupby("fraction").agg(x=("labelled_defective", "mean"), y=("test_auroc", "mean"),
                                          lo=("auroc_low", "mean"), hi=("auroc_high", "mean")).sort_values("x")
        seeds = g["seed"].nunique()
        line = ax.plot(curve["x"], curve["y"], "-o",
                       label=f"{approach} ({f'mean of {seeds} seeds' if seeds > 1 else 'one seed'})")[0]
        ax.fill_between(curve["x"], curve["lo"], curve["hi"], color=line.get_color(), alpha=0.15, lw=0)
        ax.scatter(g["labelled_defective"], g["test_auroc"], s=10, color=line.get_color(), alpha=0.6)
    for i, (_, r) in enumerate(references.iterrows()):
        colour = plt.cm.Greys(0.45 + 0.15 * i)
        ax.axhline(r["test_auroc"], ls="--", color=colour, label=f"{r['approach']} (no defect label)")
        ax.axhspan(r["auroc_low"], r["auroc_high"], color=colour, alpha=0.08)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)                 # counts of images: no negative half of the symlog axis
    ax.axhline(0.5, ls=":", c="grey")
    ax.set(xlabel="labelled defective training images", ylabel="test AUROC", ylim=(0.3, 1.02),
           title=title or "How many labels? (bands: 95% bootstrap intervals over test images; dots: seeds)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_throughput(speed: pd.DataFrame, batch_sizes: Sequence[int] = (1, 32)) -> Any:
    """Images per second of each model on each backend, one panel per batch size (notebook 08's latency table:
    :func:`helpers.workflows.deployment.latency_table`); says the machine is this one."""
    import matplotlib.pyplot as plt

    order = list(dict.fromkeys(speed["backend"]))          # as measured (the inferencers' order)
    fig, axes = plt.subplots(1, len(batch_sizes), figsize=(5.5 * len(batch_sizes), 3.5), squeeze=False)
    for ax, batch in zip(axes[0], batch_sizes):
        view = speed[speed["batch"] == batch].pivot(index="model", columns="backend", values="images_per_s")
        view[[b for b in order if b in view]].plot.barh(ax=ax)
        ax.set_title(f"images / s at batch {batch} on this machine (higher is better)", fontsize=9)
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def plot_predictions(table: pd.DataFrame, title: str) -> Any:
    """``predict``'s heatmap overlays of the scored files in ``table``, each titled with its decision and score (None
    when no file was scored)."""
    import matplotlib.pyplot as plt

    scored = table[table["problem"] == ""].reset_index(drop=True)
    if scored.empty:
        return None
    fig, axes = plt.subplots(1, len(scored), figsize=(3.2 * len(scored), 1.9), squeeze=False)
    for ax, row in zip(axes[0], scored.itertuples()):
        ax.imshow(plt.imread(row.heatmap))
        ax.axis("off")
        ax.set_title(f"{str(row.path).rsplit('/', 1)[-1][:22]}\n{row.decision} · {row.score:.2f}", fontsize=7,
                     color="crimson" if row.decision == "defective" else "green")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
