"""Maps over images: Grad-CAM grids with the masks, PatchCore's examples, and the overlay PNG of ``predict``.

One renderer, :func:`blend`, colours a map (jet) over its image for every figure and every file, so a map looks
the same in notebook 05, notebook 06, ``predict --heatmaps`` and the inspector page.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..explain.gradcam import resize_maps

__all__ = ["ALPHA", "blend", "plot_overlays", "cam_explorer", "plot_examples", "plot_walkthrough", "side_by_side",
           "save_overlay"]

#: How much of a map's colour covers its image.
ALPHA = 0.45


def blend(image: np.ndarray, heat: np.ndarray, vmin: float = 0.0, vmax: float = 1.0, alpha: float = ALPHA) -> np.ndarray:
    """``image`` (H×W×3 uint8) under ``heat`` (any H'×W', resized to the image; ``vmin``..``vmax`` → jet), as
    H×W×3 uint8."""
    from matplotlib import colormaps

    heat = np.asarray(heat, np.float32)
    if heat.shape != image.shape[:2]:
        heat = resize_maps(heat[None], (image.shape[0], image.shape[1]))[0]
    scaled = np.clip((heat - vmin) / ((vmax - vmin) or 1.0), 0, 1)
    colour = (colormaps["jet"](scaled)[..., :3] * 255).astype(np.float32)
    return ((1 - alpha) * image.astype(np.float32) + alpha * colour).clip(0, 255).astype(np.uint8)


def _contour(ax: Any, mask: np.ndarray | None, shape: tuple[int, ...]) -> None:
    """The mask's outline in white over an image of ``shape``."""
    if mask is None or not np.asarray(mask).any():
        return
    mk = mask if mask.shape == shape[:2] else resize_maps(mask[None].astype(np.float32), (shape[0], shape[1]))[0] > 0.5
    ax.contour(mk, levels=[0.5], colors="white", linewidths=1.0)


def plot_overlays(images: Sequence[np.ndarray], maps: dict[str, np.ndarray], masks: Sequence[np.ndarray | None],
                  titles: Sequence[str], max_images: int = 6) -> Any:
    """Rows: images; columns: the image, then one heatmap overlay per model; mask contours in white."""
    import matplotlib.pyplot as plt

    n = min(len(images), max_images)
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(2.4 * cols, 2.4 * n), squeeze=False)
    for i in range(n):
        img = images[i]
        axes[i, 0].imshow(img)
        axes[i, 0].set_ylabel(titles[i], fontsize=7)
        for j, (name, m) in enumerate(maps.items(), start=1):
            axes[i, j].imshow(blend(img, m[i]))
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
        for j in range(cols):
            _contour(axes[i, j], masks[i], img.shape)
            axes[i, j].set_xticks([]); axes[i, j].set_yticks([])
    axes[0, 0].set_title("image", fontsize=9)
    fig.tight_layout()
    return fig


def cam_explorer(frame: pd.DataFrame, images: np.ndarray, cams: dict[str, np.ndarray], masks: Sequence[np.ndarray],
                 per_page: int = 6) -> Any:
    """Dropdowns (category, good/defective) over :func:`plot_overlays`; static grid when headless."""
    import matplotlib.pyplot as plt

    from .widgets import widgets_wanted

    frame = frame.reset_index(drop=True)

    def draw(category: str, which: str) -> None:
        sel = frame.index[(frame["category"] == category) & (frame["label"] == (1 if which == "defective" else 0))]
        if len(sel) == 0:
            print(f"no {which} test images of {category}")
            return
        sel = sel[:per_page]
        plot_overlays(images[sel], {k: v[sel] for k, v in cams.items()}, [masks[i] for i in sel],
                      [f"{frame.at[i, 'category']}/{frame.at[i, 'defect_type']}" for i in sel])
        plt.show()

    cats = sorted(frame["category"].unique())
    if not widgets_wanted():
        first = frame.sort_values("label", ascending=False).groupby("category").head(1).index[:per_page]
        plot_overlays(images[first], {k: v[first] for k, v in cams.items()}, [masks[i] for i in first],
                      [f"{frame.at[i, 'category']}/{frame.at[i, 'defect_type']}" for i in first])
        plt.show()
        return None
    import ipywidgets as widgets

    return widgets.interact(draw, category=widgets.Dropdown(options=cats),
                            which=widgets.ToggleButtons(options=["defective", "good"]))


def plot_examples(examples: dict[str, dict[str, Any]], categories: Sequence[str] | None = None,
                  per_category: int = 4) -> Any:
    """Anomaly maps over their images with the mask contours (white); one row per category. ``examples``: per
    category, its ``images``, ``maps``, ``masks``, ``labels`` and ``scores`` (notebook 06's ``OneClassResult``).

    Maps share one colour scale per category (so a good image's map looks calm next to a defect's).
    """
    import matplotlib.pyplot as plt

    cats = [c for c in (categories or list(examples)) if c in examples]
    if not cats:
        print("no examples to show")
        return None
    fig, axes = plt.subplots(len(cats), per_category, figsize=(2.3 * per_category, 2.4 * len(cats)), squeeze=False)
    for r, cat in enumerate(cats):
        ex = examples[cat]
        vmax = float(np.max(ex["maps"])) if len(ex["maps"]) else 1.0
        for c in range(per_category):
            ax = axes[r, c]
            ax.set_xticks([]); ax.set_yticks([])
            if c >= len(ex["images"]):
                ax.axis("off")
                continue
            ax.imshow(blend(ex["images"][c], ex["maps"][c], vmax=vmax))
            _contour(ax, ex["masks"][c], ex["images"][c].shape)
            ax.set_title(f"{'defective' if ex['labels'][c] else 'good'} · {ex['scores'][c]:.2f}", fontsize=8)
        axes[r, 0].set_ylabel(cat, fontsize=9)
    fig.tight_layout()
    return fig


def plot_walkthrough(w: Any, caption: str = "") -> Any:
    """PatchCore on one image, step by step (:class:`helpers.workflows.oneclass.Walkthrough`): the image with its
    mask, each patch's distance to its nearest good patch (the grid the model computes), and the anomaly map made
    from it (upsampled, blurred) with the image score. ``caption``: what produced it (backbone, split, profile)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    if caption:
        fig.suptitle(caption, fontsize=8, y=0.02, va="bottom")
    axes[0].imshow(w.image)
    _contour(axes[0], w.mask, w.image.shape)
    axes[0].set_title(f"{w.category}: a defective test image\n(white: its mask)", fontsize=9)
    grid = axes[1].imshow(w.patch_distances, cmap="jet", interpolation="nearest")
    fig.colorbar(grid, ax=axes[1], fraction=0.046, label="distance")
    axes[1].set_title(f"{w.grid[0]}×{w.grid[1]} patches: each one's distance\nto its nearest good patch "
                      f"(bank: {w.bank:,} of {w.patches:,})", fontsize=9)
    axes[2].imshow(blend(w.image, w.anomaly_map, float(w.anomaly_map.min()), float(w.anomaly_map.max())))
    _contour(axes[2], w.mask, w.image.shape)
    axes[2].set_title(f"anomaly map: upsampled, blurred\nimage score {w.score:.3f} (largest patch, reweighted)",
                      fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(rect=(0, 0.06 if caption else 0, 1, 1))     # a strip below the panels for the caption
    return fig


def side_by_side(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """``image`` (H×W×3 uint8) beside the same image under ``heat`` (values in [0, 1], jet colours), H×(2W+4)×3."""
    gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([image, gap, blend(image, heat)], axis=1)


def save_overlay(image: np.ndarray, heat: np.ndarray, path: str | os.PathLike) -> Path:
    """:func:`side_by_side` as a PNG file."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(side_by_side(image, heat)).save(path)
    return path
