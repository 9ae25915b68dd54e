"""Figures for looking at the data: counts, sample grids with masks, and an interactive explorer."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..data.images import load_mask, load_rgb
from .widgets import widgets_wanted

__all__ = ["plot_counts", "overlay_mask", "show_samples", "explorer"]


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


