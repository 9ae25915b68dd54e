"""Label budgets: nested, stratified subsets of ``train``'s labelled images (notebook 09).

A budget is a fraction of ``train``'s images whose good/defective label a model may learn from. Each category ×
label stratum is put in one seeded order and a budget takes a prefix of every stratum, so the subsets are
**nested** (a larger budget holds every image of a smaller one, for the same seed) and **stratified** (each
stratum contributes its share, the remainders going to the strata with the largest fractional shares). A budget
holds ``round(f × defective images)`` defective images, at least one; where they are at least as many as the
categories with a defective training image, every such category gets one; and every category keeps at least one
good image, so that a model sees what "good" looks like in each.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["nested_budgets", "budget_table"]


def _order(frame: pd.DataFrame, seed: int) -> dict[tuple[str, int], np.ndarray]:
    """Each stratum's row positions in one seeded order (the same order for every budget)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, idx in sorted(frame.groupby(["category", "label"], sort=True).indices.items()):
        out[(str(key[0]), int(key[1]))] = np.asarray(idx)[rng.permutation(len(idx))]
    return out


def _take(order: dict[tuple[str, int], np.ndarray], fraction: float) -> list[int]:
    defective = [k for k in order if k[1] == 1]
    n_def = sum(len(order[k]) for k in defective)
    budget_def = min(n_def, max(1, round(fraction * n_def))) if n_def else 0
    take = {}
    for (cat, label), idx in order.items():
        k = math.floor(fraction * len(idx) + 1e-9)
        if label == 0:
            k = max(k, 1)                               # every category keeps a good image
        elif budget_def >= len(defective):
            k = max(k, 1)                               # one defective image per category, where the budget allows
        take[(cat, label)] = min(k, len(idx))
    # the defective remainder, to the strata with the largest fractional shares (stratum order breaks ties)
    short = budget_def - sum(take[k] for k in defective)
    for key in sorted(defective, key=lambda k: -(fraction * len(order[k]) - take[k])):
        if short <= 0:
            break
        if take[key] < len(order[key]):
            take[key] += 1
            short -= 1
    return [i for key, idx in order.items() for i in idx[:take[key]].tolist()]


def nested_budgets(train: pd.DataFrame, fractions: Sequence[float], seed: int) -> dict[float, pd.DataFrame]:
    """For each fraction in ``fractions`` (0 < f ≤ 1), the labelled subset of ``train`` (rows with ``category`` and
    ``label``), nested across fractions for one ``seed``; ``1.0`` is all of ``train``."""
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise ValueError(f"label budgets must be fractions in (0, 1]; got {bad}")
    missing = {"category", "label"} - set(train.columns)
    if missing:
        raise ValueError(f"train rows lack {sorted(missing)}: expected a category and a label per image")
    frame = train.reset_index(drop=True)
    order = _order(frame, seed)
    out: dict[float, pd.DataFrame] = {}
    previous: set[int] = set()
    for f in sorted(fractions):
        rows = set(_take(order, f)) | previous       # the prefix rule is monotone; the union only guards rounding
        out[float(f)] = frame.iloc[sorted(rows)].reset_index(drop=True)
        previous = rows
    return out


def budget_table(budgets: dict[float, pd.DataFrame]) -> pd.DataFrame:
    """Per budget: labelled images, good and defective, and the categories with a labelled defective image."""
    return pd.DataFrame([{"fraction": f, "labelled": len(b), "good": int((b["label"] == 0).sum()),
                          "defective": int((b["label"] == 1).sum()),
                          "categories with a defect label": int(b.loc[b["label"] == 1, "category"].nunique())}
                         for f, b in sorted(budgets.items())])
