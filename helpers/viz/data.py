"""Figures for looking at the data: counts, sample grids with masks, and an interactive explorer."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..data.images import load_mask, load_rgb

__all__ = ["plot_counts", "overlay_mask", "show_samples", "HEADLESS_ENV", "widgets_wanted", "explorer",
           "plot_history", "plot_test_results", "plot_per_category"]


def plot_counts(manifest: pd.DataFrame, ax=None):
    """Stacked bars: good and defective images per category."""
    table = manifest.groupby(["category", "label"]).size().unstack(fill_value=0).reindex(columns=[0, 1], fill_value=0)
    table.columns = ["good", "defective"]
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.5))
    table.plot.bar(stacked=True, ax=ax, color=["#4c9a5b", "#c0504d"])
    ax.set(ylabel="images", title="images per category")
    ax.tick_params(axis="x", rotation=60)
    return ax


def overlay_mask(ax, image: np.ndarray, mask: np.ndarray | None, title: str = "") -> None:
    """Show ``image`` with the mask's outline in red (and a light red fill)."""
    ax.imshow(image)
    if mask is not None and mask.any():
        ax.contour(mask, levels=[0.5], colors="red", linewidths=1.0)
        ax.imshow(np.ma.masked_where(mask == 0, mask), cmap="autumn", alpha=0.25)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def show_samples(manifest: pd.DataFrame, root: str | os.PathLike, categories: list[str] | None = None,
                 defect_type: str | None = None, per_row: int = 6, seed: int = 0, rows: int | None = None):
    """A grid: per category one good image then defective ones, masks outlined.

    With ``defect_type`` set, only images of that defect type (one category) are shown.
    """
    root = Path(root)
    categories = categories or sorted(manifest["category"].unique())
    picks: list[list[pd.Series]] = []
    for cat in categories:
        g = manifest[manifest["category"] == cat]
        if defect_type:
            g = g[g["defect_type"] == defect_type]
            chosen = g.sample(min(per_row, len(g)), random_state=seed) if len(g) else g
        else:
            good = g[g["label"] == 0]
            bad = g[g["label"] == 1]
            bad = bad.sort_values("mask_path", ascending=False, key=lambda s: s != "")  # masked first
            chosen = pd.concat([good.head(1), bad.groupby("defect_type").head(1).head(per_row - 1)])
        picks.append([row for _, row in chosen.iterrows()])
    picks = [p for p in picks if p][: rows or len(picks)]
    if not picks:
        print("No images match this selection.")
        return None
    ncols = max(len(p) for p in picks)
    fig, axes = plt.subplots(len(picks), ncols, figsize=(1.9 * ncols, 2.0 * len(picks)), squeeze=False)
    for r, row_items in enumerate(picks):
        for c in range(ncols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(row_items):
                continue
            item = row_items[c]
            img = load_rgb(root / item["path"])
            mask = load_mask(root / item["mask_path"]) if item["mask_path"] else None
            tag = item["defect_type"] + ("" if item["label"] == 0 or mask is not None else " (no mask)")
            overlay_mask(ax, img, mask, f"{item['category']}\n{tag}")
    fig.tight_layout()
    return fig


HEADLESS_ENV = "DEFECTS_HEADLESS"


def widgets_wanted() -> bool:
    """True when interactive widgets can be shown; prints why not otherwise.

    ``python -m helpers run-notebooks`` sets ``DEFECTS_HEADLESS=1``: papermill/nbclient can block for
    ever on a cell that displays an ipywidgets ``Output`` (jupyter/nbclient#312), and an executed
    notebook keeps no live widget anyway, so the static figures are drawn instead.
    """
    if os.environ.get(HEADLESS_ENV, "") not in ("", "0"):
        print("Headless run: static figures instead of widgets (open the notebook to explore interactively).")
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        print("ipywidgets is not available: showing static figures instead.")
        return False
    return True


def explorer(manifest: pd.DataFrame, root: str | os.PathLike, per_row: int = 6):
    """Category and defect-type dropdowns over :func:`show_samples`.

    Without ipywidgets (or outside a live notebook) it falls back to a static grid of every category.
    The widget renders its first selection immediately, so executed notebooks keep a figure too.
    """
    if not widgets_wanted():
        show_samples(manifest, root, per_row=per_row)
        plt.show()
        return None
    import ipywidgets as widgets
    from IPython.display import display

    cats = sorted(manifest["category"].unique())
    cat_dd = widgets.Dropdown(options=cats, description="category")
    def_dd = widgets.Dropdown(description="defect type")
    out = widgets.Output()

    def types_for(cat: str) -> list[str]:
        return ["(all)"] + sorted(manifest.loc[manifest["category"] == cat, "defect_type"].unique())

    def render(*_):
        with out:
            out.clear_output(wait=True)
            kind = None if def_dd.value in (None, "(all)") else def_dd.value
            show_samples(manifest, root, categories=[cat_dd.value], defect_type=kind, per_row=per_row)
            plt.show()

    def on_category(change):
        def_dd.options = types_for(change["new"])
        def_dd.value = "(all)"

    def_dd.options = types_for(cats[0])
    def_dd.value = "(all)"
    cat_dd.observe(on_category, names="value")
    def_dd.observe(render, names="value")
    cat_dd.observe(render, names="value")
    box = widgets.VBox([widgets.HBox([cat_dd, def_dd]), out])
    display(box)
    render()
    return box


def plot_history(history: pd.DataFrame, panels: dict[str, list[str]], lrs: np.ndarray | None = None,
                 steps_per_epoch: int = 1, best_epoch: int | None = None, title: str = ""):
    """Training curves, one panel per entry of ``panels`` (title → history columns), plus the LR schedule.

    ``lrs`` is the planned per-batch learning rate (``steps_per_epoch`` batches an epoch; a run that
    stopped early ran only its first part); ``best_epoch`` (1-based)
    is marked with a dotted line — the weights that were kept.
    """
    n = len(panels) + (lrs is not None)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    axes = axes[0]
    for ax, (name, cols) in zip(axes, panels.items()):
        for col in cols:
            if col in history:
                ax.plot(history["epoch"], history[col], marker="o", ms=3, label=col)
        if best_epoch:
            ax.axvline(best_epoch, ls=":", c="grey")
        values = history[[c for c in cols if c in history]].to_numpy(float)
        if "loss" in name and np.nanmin(values) > 0 and np.nanmax(values) / np.nanmin(values) > 30:
            ax.set_yscale("log")  # one exploding epoch would flatten the rest
        ax.set(title=name, xlabel="epoch")
        ax.legend(fontsize=8)
    if lrs is not None:
        ax = axes[-1]
        ax.plot(np.arange(1, len(lrs) + 1) / steps_per_epoch, lrs)
        ax.axvline(len(history), ls=":", c="grey")
        ax.set(title="learning rate (per batch)", xlabel="epoch", yscale="log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_test_results(run, title: str = "test", label: str = "test"):
    """A scored run's held-out test results: the confusion matrix at its val-chosen threshold, ROC and PR.

    ``run`` is a :class:`helpers.runs.ScoredRun` (every model notebook shows its test results this way).
    """
    import matplotlib.pyplot as plt

    from ..evaluation import metrics as M

    test = run.split_scores("test")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    M.plot_confusion(test["label"], (test["score"] >= run.threshold).astype(int), ax=axes[0], title=title)
    M.plot_roc_pr(test["label"], test["score"], label=label, axes=axes[1:], threshold=run.threshold)
    fig.tight_layout()
    return fig


def plot_per_category(run, title: str = "image AUROC per category"):
    """A scored run's per-category test AUROC as bars (the table itself is ``run.per_category``)."""
    from ..evaluation import metrics as M

    return M.plot_per_category_auroc(run.per_category, title=title)
