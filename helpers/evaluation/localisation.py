"""Localisation scored against ground-truth masks — defined once, used for every map (Grad-CAM of each model
in notebook 05, PatchCore's anomaly maps in notebook 06), and read by the report.

:func:`score_maps` gives, per category and as the mean over categories (as MVTec AD reports it):

- **pixel AUROC**: the pixels of all a category's scored images pooled (good images count as all-normal);
- **AU-PRO** up to a false-positive rate of 0.3, normalised to [0, 1] (Bergmann et al., the MVTec AD paper's
  metric): per-region overlap averaged over every connected defect region (8-connectivity), so a small
  defect counts as much as a large one; false positives are counted over all normal pixels;
- **pointing game**: the share of defective images whose map peaks inside the mask (a flat map points
  nowhere: a miss).

Maps and masks must have the same size (resize masks with :func:`resize_mask`). :func:`localisation_scores`
keeps the per-image view for figures.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ..explain.gradcam import resize_maps
from .intervals import MEAN_ROW

__all__ = ["FPR_LIMIT", "MEAN_ROW", "LOCALISATION_COLUMNS", "INTERVAL_COLUMNS", "resize_mask", "pixel_auroc", "pro_curve",
           "au_pro", "pointing_game", "score_maps", "localisation_scores", "localisation_table"]

#: AU-PRO integrates the PRO curve up to this false-positive rate (the MVTec AD paper's 30%).
FPR_LIMIT = 0.3
#: The ``category`` of the row holding the mean over categories.
LOCALISATION_COLUMNS = ["maps", "category", "n_images", "n_defective", "pixel_auroc", "au_pro", "pointing_game"]
#: Each metric's bootstrap 95% interval (:func:`helpers.evaluation.intervals.map_draws`), beside the value.
INTERVAL_COLUMNS = [f"{k}_{end}" for k in ("pixel_auroc", "au_pro", "pointing_game") for end in ("low", "high")]


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean mask at ``shape`` (nearest neighbour, as masks must stay binary)."""
    from PIL import Image

    mask = np.asarray(mask, bool)
    if mask.shape == tuple(shape):
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(img) > 127


def _pairs(maps, masks) -> tuple[list[np.ndarray], list[np.ndarray]]:
    maps = [np.asarray(m, np.float64) for m in maps]
    masks = [np.asarray(m, bool) for m in masks]
    if len(maps) != len(masks) or any(a.shape != b.shape for a, b in zip(maps, masks)):
        raise ValueError("maps and masks must be as many and of the same sizes (resize the masks first)")
    return maps, masks


def pixel_auroc(maps: Iterable[np.ndarray], masks: Iterable[np.ndarray]) -> float:
    """AUROC of all pixels pooled (NaN without both defective and normal pixels)."""
    maps, masks = _pairs(maps, masks)
    y = np.concatenate([m.ravel() for m in masks]) if masks else np.zeros(0, bool)
    s = np.concatenate([m.ravel() for m in maps]) if maps else np.zeros(0)
    return float(skm.roc_auc_score(y, s)) if 0 < y.sum() < y.size else math.nan


def pro_curve(maps: Iterable[np.ndarray], masks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) at every distinct threshold, from (0, 0): PRO is the mean over all connected defect regions
    of the share of the region's pixels at or above the threshold; FPR the share of normal pixels."""
    from scipy import ndimage

    maps, masks = _pairs(maps, masks)
    scores = np.concatenate([m.ravel() for m in maps])
    region_weight = np.zeros(scores.size)
    offset, regions = 0, 0
    for mask in masks:
        labels, n = ndimage.label(mask, structure=np.ones((3, 3), int))
        flat = labels.ravel()
        if n:
            sizes = np.bincount(flat)[1:]
            inside = flat > 0
            region_weight[offset + np.flatnonzero(inside)] = 1.0 / sizes[flat[inside] - 1]
        offset, regions = offset + flat.size, regions + n
    normal = region_weight == 0
    if regions == 0 or not normal.any():
        return np.array([0.0]), np.array([math.nan])
    order = np.argsort(-scores, kind="mergesort")
    fpr = np.cumsum(normal[order]) / normal.sum()
    pro = np.cumsum(region_weight[order]) / regions
    last_of_tie = np.r_[np.diff(scores[order]) != 0, True]
    return np.r_[0.0, fpr[last_of_tie]], np.r_[0.0, pro[last_of_tie]]


def au_pro(maps: Iterable[np.ndarray], masks: Iterable[np.ndarray], fpr_limit: float = FPR_LIMIT) -> float:
    """Area under the PRO curve from FPR 0 to ``fpr_limit``, divided by ``fpr_limit`` (1 is perfect)."""
    fpr, pro = pro_curve(maps, masks)
    if np.isnan(pro).any():
        return math.nan
    end = int(np.searchsorted(fpr, fpr_limit, side="right"))
    at_limit = float(np.interp(fpr_limit, fpr, pro)) if end < len(fpr) else float(pro[-1])
    x, y = np.r_[fpr[:end], fpr_limit], np.r_[pro[:end], at_limit]
    trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")  # noqa: B009 - NumPy 2 renamed it
    # the mean of a curve in [0, 1]: the trapezoid sum can pass 1 by rounding only, so it is bounded here
    return float(np.clip(trapezoid(y, x) / fpr_limit, 0.0, 1.0))


def pointing_game(maps: Iterable[np.ndarray], masks: Iterable[np.ndarray]) -> float:
    """Share of images with a defect whose map peaks inside the mask; a flat map is a miss (NaN: none)."""
    maps, masks = _pairs(maps, masks)
    hits = [0.0 if m.max() == m.min() else float(k.ravel()[int(np.argmax(m))]) for m, k in zip(maps, masks) if k.any()]
    return float(np.mean(hits)) if hits else math.nan


def score_maps(name: str, maps: Iterable[np.ndarray], masks: Iterable[np.ndarray], categories: Iterable[str],
               fpr_limit: float = FPR_LIMIT, intervals: bool = True) -> pd.DataFrame:
    """The localisation table of one set of maps (:data:`LOCALISATION_COLUMNS`, and with ``intervals`` each
    metric's bootstrap 95% interval, :data:`INTERVAL_COLUMNS`): one row per category and :data:`MEAN_ROW`, the mean
    over categories. ``masks`` are all-False for good images."""
    maps, masks = _pairs(maps, masks)
    cats = np.asarray([str(c) for c in categories])
    rows = []
    for cat in sorted(set(cats.tolist())):
        idx = np.flatnonzero(cats == cat)
        m, k = [maps[i] for i in idx], [masks[i] for i in idx]
        rows.append({"maps": name, "category": cat, "n_images": len(idx), "n_defective": sum(bool(x.any()) for x in k),
                     "pixel_auroc": pixel_auroc(m, k), "au_pro": au_pro(m, k, fpr_limit), "pointing_game": pointing_game(m, k)})
    table = pd.DataFrame(rows, columns=LOCALISATION_COLUMNS)
    mean = {"maps": name, "category": MEAN_ROW, "n_images": int(table["n_images"].sum()),
            "n_defective": int(table["n_defective"].sum()),
            **{c: float(table[c].mean()) if table[c].notna().any() else math.nan
               for c in ("pixel_auroc", "au_pro", "pointing_game")}}
    table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)[LOCALISATION_COLUMNS]
    if not intervals or not len(maps):
        return table
    from .intervals import map_intervals

    return table.merge(map_intervals(maps, masks, cats, fpr_limit), on="category", how="left")


def localisation_scores(heatmap: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Pixel AUROC of ``heatmap`` against a boolean ``mask`` and the pointing-game hit (max inside the mask).

    Both must have the same H×W (upsample the map first). AUROC is NaN for an empty or full mask; a
    constant map (e.g. a Grad-CAM whose ReLU removed everything) scores AUROC 0.5 and a pointing miss,
    and is flagged ``flat_map``.
    """
    heat, m = np.asarray(heatmap, float), np.asarray(mask, bool)
    if heat.shape != m.shape:
        raise ValueError(f"heatmap {heat.shape} and mask {m.shape} differ: resize the heatmap to the mask first")
    auroc = float(skm.roc_auc_score(m.ravel(), heat.ravel())) if 0 < m.sum() < m.size else math.nan
    flat = bool(heat.max() == heat.min())
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    # a flat map points nowhere: counted as a miss (and flagged), not as a hit at pixel (0, 0)
    hit = math.nan if not m.any() else (0.0 if flat else float(m[peak]))
    return {"pixel_auroc": auroc, "pointing_hit": hit, "flat_map": flat}


def localisation_table(model: str, frame: pd.DataFrame, maps: np.ndarray, masks: Iterable[np.ndarray]) -> pd.DataFrame:
    """Per-image localisation rows (model, path, category, pixel AUROC, pointing hit)."""
    rows = []
    for (_, r), heat, mask in zip(frame.iterrows(), maps, masks):
        heat = heat if heat.shape == mask.shape else resize_maps(heat[None], mask.shape)[0]
        rows.append({"model": model, "path": r["path"], "category": r["category"], **localisation_scores(heat, mask)})
    return pd.DataFrame(rows)
