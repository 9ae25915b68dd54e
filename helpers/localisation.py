"""Localisation scored against ground-truth masks: pixel AUROC and the pointing game, for any heatmap."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .gradcam import resize_maps

__all__ = ["localisation_scores", "localisation_table", "summarise_localisation"]


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


def summarise_localisation(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean pixel AUROC, pointing-game hit rate and flat-map count per model × category, plus ``(all)``."""
    agg = {"pixel_auroc": "mean", "pointing_hit": "mean", "path": "count", "flat_map": "sum"}
    names = {"path": "n", "flat_map": "flat_maps"}
    by_cat = per_image.groupby(["model", "category"]).agg(agg).rename(columns=names).reset_index()
    overall = per_image.groupby("model").agg(agg).rename(columns=names).reset_index().assign(category="(all)")
    cols = ["model", "category", "n", "pixel_auroc", "pointing_hit", "flat_maps"]
    return pd.concat([by_cat, overall], ignore_index=True)[cols]
