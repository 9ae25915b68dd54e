"""How sure a figure is: bootstrap 95% intervals for every metric the series reports, computed one way.

The test images are resampled with replacement, **stratified by category and label** (each resample keeps every
category's number of good and defective images, as the split fixes them), :data:`RESAMPLES` times with a fixed
seed; an interval is the 2.5th and 97.5th percentile of the metric over the resamples (the percentile bootstrap).
A resample is a row of weights — how often each image was drawn — so every metric is a weighted sum and all
resamples are computed at once.

Strata are small here (the built-in test split has 2 defective images per category), and the plain bootstrap
underestimates the variance of a stratum of ``n`` by the factor ``(n − 1)/n`` — half, for ``n = 2``. So each stratum
uses **Rao and Wu's rescaled bootstrap** (1988): ``n − 1`` draws, each weighing ``n/(n − 1)``, which is unbiased for
the variance of a mean (a stratum of one image is kept as it is). On large strata it is the plain bootstrap.

- :func:`image_intervals`: AUROC, PR-AUC and, at a threshold, F1, precision, recall, FPR, specificity, accuracy;
  per category and for the mean of the per-category AUROCs.
- :func:`paired_difference`: two approaches scored on the same images, resampled together: the interval of the
  difference of their AUROCs (a paired bootstrap: it uses the same resamples as the intervals shown beside it and
  works for the mean over categories too, which DeLong's test does not).
- :func:`map_intervals`: pixel AUROC, AU-PRO and the pointing game, resampling images (the map values binned
  into :data:`PIXEL_BINS` quantile bins per category, so that a resample is a weighted sum of per-image counts).

What an interval covers: which test images happened to be drawn. It does not cover training randomness (seeds,
the order of batches); ``docs/benchmarks.md`` shows that spread beside it.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["RESAMPLES", "LEVEL", "SEED", "PIXEL_BINS", "METHOD", "Interval", "resample_counts", "image_intervals",
           "category_intervals", "paired_difference", "roc_band", "MAP_METRICS", "map_draws", "summarise_map_draws",
           "map_intervals", "describe_method", "format_interval", "MEAN_ROW"]

#: Resamples per interval (the issue's floor; 2,000 would move the 95% ends by about ±0.005 on 89 images).
RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
#: The row of a per-category table that holds the mean over categories (the localisation tables use it too).
MEAN_ROW = "(mean over categories)"
#: Quantile bins of the map values, per category, for the localisation intervals.
PIXEL_BINS = 256
#: What ``metrics.json`` says about how its intervals were made.
METHOD = (f"percentile bootstrap, {RESAMPLES} resamples of the test images stratified by category and label "
          f"(Rao–Wu rescaled for small strata), seed {SEED}, {int(LEVEL * 100)}% level")


@dataclass(frozen=True)
class Interval:
    """A value and its bootstrap interval (NaN ends: not defined on these images, e.g. one class only)."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return format_interval(self.value, self.low, self.high)

    def format(self, against: float | None = None, signed: bool = False) -> str:
        """``value [low, high]`` at 2 decimals, or more where an end differs from ``against`` (0 for a difference,
        0.5 for chance) but would print as it: the words said about the interval must hold at the precision shown."""
        return format_interval(self.value, self.low, self.high, against=against, signed=signed)

    def as_list(self) -> list[float]:
        return [self.low, self.high]

    @property
    def resolved(self) -> bool:
        """For a difference: whether the interval excludes 0 (this test set tells the two apart)."""
        return bool(np.isfinite(self.low) and (self.low > 0 or self.high < 0))

    def against_chance(self, what: str = "test AUROC", chance: float = 0.5) -> str:
        """In words, whether these test images tell the value from chance (an AUROC of 0.5)."""
        if not (np.isfinite(self.low) and np.isfinite(self.high)):
            return f"{what} {self}: no interval on these images, so nothing can be said against chance"
        shown = self.format(against=chance)
        if self.low > chance:
            return f"{what} {shown}: above chance ({chance}) on these test images — it has learned something"
        if self.high < chance:
            return f"{what} {shown}: below chance ({chance}) — it ranks defective images as good more often than not"
        return f"{what} {shown}: not told apart from chance ({chance}) by these test images — it has not learned this"


def format_interval(value: float, low: float, high: float, digits: int = 2, against: float | None = None,
                    signed: bool = False) -> str:
    """``0.86 [0.78, 0.93]`` (``n/a`` for a NaN value; ``+0.12 [+0.01, +0.30]`` when ``signed``). Given ``against``
    (0 for a difference, 0.5 for chance), up to 4 more decimals are shown while an end that differs from it would
    print the same as it (``[+0.00, …]`` for an interval that excludes 0)."""
    if value is None or not np.isfinite(value):
        return "n/a"
    sign = "+" if signed else ""
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return f"{value:{sign}.{digits}f}"
    if against is not None:
        top = digits + 4
        while digits < top and any(end != against and f"{end:.{digits}f}" == f"{against:.{digits}f}"
                                   for end in (low, high)):
            digits += 1
    return f"{value:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def describe_method() -> dict[str, object]:
    """The ``intervals`` block's description in ``metrics.json``."""
    return {"method": "percentile bootstrap (Rao-Wu rescaled within strata)", "resamples": RESAMPLES, "level": LEVEL,
            "seed": SEED,
            "stratified_by": ["category", "label"], "resampled": "test images"}


def resample_counts(strata: Sequence, n: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``(n, len(strata))`` weights, one row per resample: within each stratum (e.g. a category × label pair) of
    ``m ≥ 2`` items, ``m − 1`` draws with replacement, each counting ``m/(m − 1)`` (Rao–Wu); a stratum of one item
    keeps weight 1. Every row's weights sum to each stratum's size."""
    keys = np.asarray(pd.Series(list(strata)).astype(str))
    rng = np.random.default_rng(seed)
    weights = np.ones((n, len(keys)), np.float64)
    for key in sorted(set(keys.tolist())):
        idx = np.flatnonzero(keys == key)
        m = len(idx)
        if m < 2:
            continue
        draws = rng.integers(0, m, size=(n, m - 1)) + np.arange(n)[:, None] * m
        weights[:, idx] = np.bincount(draws.ravel(), minlength=n * m).reshape(n, m) * (m / (m - 1))
    return weights


def _percentiles(draws: np.ndarray) -> tuple[float, float]:
    draws = np.asarray(draws, float)
    finite = draws[np.isfinite(draws)]
    # an interval only where the metric is defined on (nearly) every resample
    if finite.size < 0.99 * draws.size or finite.size == 0:
        return math.nan, math.nan
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.clip(np.percentile(finite, [tail, 100 - tail]), finite.min(), finite.max())
    return float(low), float(high)


def _share(part: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``part / (part + rest)`` for non-negative ``part`` and ``rest``: in [0, 1] exactly, whatever the rounding.

    IEEE rounding is monotone, so ``fl(part + rest) ≥ part`` and the correctly rounded quotient is ≤ 1. Dividing by a
    total summed another way (e.g. ``Σw₊ · Σw₋`` for an AUROC) can exceed it by an ulp or two — with the Rao–Wu
    weights ``m/(m − 1)`` a perfect separation came out as 1.0000000000000004, above its own interval's value.
    NaN where both are 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return part / (part + rest)


def _auroc(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Weighted Mann–Whitney AUROC for each row of weights ``w`` (ties count half), in [0, 1] exactly."""
    pos, neg = y == 1, y == 0
    if not pos.any() or not neg.any():
        return np.full(len(w), math.nan)
    sp, sn = s[pos], s[neg]
    above, tied = sp[:, None] > sn[None, :], sp[:, None] == sn[None, :]
    wins = above + 0.5 * tied
    losses = (~above & ~tied) + 0.5 * tied
    wp, wn = w[:, pos], w[:, neg]
    return _share(np.einsum("bi,ij,bj->b", wp, wins, wn), np.einsum("bi,ij,bj->b", wp, losses, wn))


def _average_precision(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Weighted average precision (scikit-learn's step-wise definition) for each row of weights, in [0, 1] exactly:
    ``Σ Δtpₖ · precisionₖ / Σ Δtpₖ`` over the same terms, each precision ≤ 1 (:func:`_share`)."""
    if not (y == 1).any():
        return np.full(len(w), math.nan)
    order = np.argsort(-s, kind="mergesort")
    ws, ys = w[:, order], y[order]
    tp, fp = np.cumsum(ws * ys, 1), np.cumsum(ws * (1 - ys), 1)
    last = np.r_[np.diff(s[order]) != 0, True]
    tp, fp = tp[:, last], fp[:, last]
    precision = np.nan_to_num(_share(tp, fp))
    steps = np.diff(np.concatenate([np.zeros((len(w), 1)), tp], 1), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (steps * precision).sum(1) / steps.sum(1)


def _at_threshold(w: np.ndarray, y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    pred = s >= threshold
    tp, fp = w @ ((y == 1) & pred), w @ ((y == 0) & pred)
    fn, tn = w @ ((y == 1) & ~pred), w @ ((y == 0) & ~pred)

    def ratio(a: np.ndarray, rest: np.ndarray, empty: float) -> np.ndarray:
        return np.where(a + rest > 0, _share(a, rest), empty)

    return {"accuracy": ratio(tp + tn, fp + fn, math.nan), "precision": ratio(tp, fp, 0.0),
            "recall": ratio(tp, fn, 0.0), "f1": ratio(2 * tp, fp + fn, 0.0),
            "fpr": ratio(fp, tn, math.nan), "specificity": ratio(tn, fp, math.nan)}


def _draws(w: np.ndarray, y: np.ndarray, s: np.ndarray, cats: np.ndarray, threshold: float | None
           ) -> dict[str, np.ndarray]:
    """Every metric for each row of weights (row 0 of ``w`` may be all ones: the point estimate)."""
    out = {"roc_auc": _auroc(w, y, s), "pr_auc": _average_precision(w, y, s)}
    if threshold is not None:
        out.update(_at_threshold(w, y, s, threshold))
    per_cat = [_auroc(w[:, cats == c], y[cats == c], s[cats == c]) for c in sorted(set(cats.tolist()))]
    defined = [a for a in per_cat if np.isfinite(a).all()]
    out["category_auroc_mean"] = np.mean(defined, axis=0) if defined else np.full(len(w), math.nan)
    return out


def _frame(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = {"label", "score", "category"} - set(frame.columns)
    if missing:
        raise ValueError(f"scores lack columns {sorted(missing)}: expected label, score and category per image")
    return (frame["label"].to_numpy(int), frame["score"].to_numpy(float), frame["category"].astype(str).to_numpy())


def image_intervals(frame: pd.DataFrame, threshold: float | None = None, n: int = RESAMPLES, seed: int = SEED
                    ) -> dict[str, Interval]:
    """Every image-level metric of ``frame`` (one row per test image: ``label``, ``score``, ``category``) with
    its bootstrap interval: ``roc_auc``, ``pr_auc``, ``category_auroc_mean`` and, with a ``threshold``, the
    metrics at it. The values equal :func:`helpers.evaluation.metrics.binary_metrics`'s."""
    y, s, cats = _frame(frame)
    w = resample_counts([f"{c}/{v}" for c, v in zip(cats, y)], n, seed)
    point = _draws(np.ones((1, len(y))), y, s, cats, threshold)
    draws = _draws(w, y, s, cats, threshold)
    return {k: Interval(float(point[k][0]), *_percentiles(draws[k])) for k in point}


def category_intervals(frame: pd.DataFrame, n: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """Per category: ``n``, ``n_defective``, ``auroc`` and its interval (``auroc_low``, ``auroc_high``)."""
    y, s, cats = _frame(frame)
    w = resample_counts([f"{c}/{v}" for c, v in zip(cats, y)], n, seed)
    rows = []
    for c in sorted(set(cats.tolist())):
        sel = cats == c
        value = float(_auroc(np.ones((1, sel.sum())), y[sel], s[sel])[0])
        low, high = _percentiles(_auroc(w[:, sel], y[sel], s[sel]))
        rows.append({"category": c, "n": int(sel.sum()), "n_defective": int(y[sel].sum()), "auroc": value,
                     "auroc_low": low, "auroc_high": high})
    return pd.DataFrame(rows, columns=["category", "n", "n_defective", "auroc", "auroc_low", "auroc_high"])


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, metric: str = "roc_auc", n: int = RESAMPLES,
                      seed: int = SEED) -> Interval:
    """``metric(a) − metric(b)`` and its paired-bootstrap interval: ``a`` and ``b`` score the same images
    (matched on ``path``), and each resample draws the same images for both."""
    if set(a["path"]) != set(b["path"]):
        raise ValueError(f"a paired comparison needs the same images: {len(set(a['path']) ^ set(b['path']))} differ")
    a, b = a.sort_values("path").reset_index(drop=True), b.sort_values("path").reset_index(drop=True)
    y, sa, cats = _frame(a)
    sb = b["score"].to_numpy(float)
    w = resample_counts([f"{c}/{v}" for c, v in zip(cats, y)], n, seed)
    one = np.ones((1, len(y)))
    value = _draws(one, y, sa, cats, None)[metric][0] - _draws(one, y, sb, cats, None)[metric][0]
    diff = _draws(w, y, sa, cats, None)[metric] - _draws(w, y, sb, cats, None)[metric]
    return Interval(float(value), *_percentiles(diff))


def roc_band(frame: pd.DataFrame, grid: np.ndarray | None = None, n: int = RESAMPLES, seed: int = SEED
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pointwise 95% band of the ROC curve: at each false-positive rate of ``grid``, the percentiles of the
    true-positive rate over the resamples (the same resamples as :func:`image_intervals`). Returns
    ``(grid, low, high)``; NaN bands without both classes."""
    grid = np.linspace(0, 1, 101) if grid is None else np.asarray(grid, float)
    y, s, cats = _frame(frame)
    if len(set(y.tolist())) < 2:
        return grid, np.full(len(grid), math.nan), np.full(len(grid), math.nan)
    w = resample_counts([f"{c}/{v}" for c, v in zip(cats, y)], n, seed)
    order = np.argsort(-s, kind="mergesort")
    last = np.r_[np.diff(s[order]) != 0, True]
    ws, ys = w[:, order], y[order]
    tpr = np.cumsum(ws * ys, 1)[:, last] / (ws * ys).sum(1, keepdims=True)
    fpr = np.cumsum(ws * (1 - ys), 1)[:, last] / (ws * (1 - ys)).sum(1, keepdims=True)
    curves = np.array([np.interp(grid, np.r_[0.0, f], np.r_[0.0, t]) for f, t in zip(fpr, tpr)])
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
    return grid, low, high


# --------------------------------------------------------------------------------------------------
# Localisation: per-image counts over per-category quantile bins, then weighted sums per resample
# --------------------------------------------------------------------------------------------------


def _image_counts(maps: list[np.ndarray], masks: list[np.ndarray], edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per image and bin: defective and normal pixel counts, summed region overlaps, regions, pointing hit."""
    from scipy import ndimage

    k = len(edges) + 1
    pos, neg, overlap = (np.zeros((len(maps), k)) for _ in range(3))
    regions, hits = np.zeros(len(maps)), np.full(len(maps), math.nan)
    for i, (m, mask) in enumerate(zip(maps, masks)):
        b = np.searchsorted(edges, m.ravel(), side="right")
        flat = mask.ravel()
        pos[i], neg[i] = np.bincount(b[flat], minlength=k), np.bincount(b[~flat], minlength=k)
        labels, nreg = ndimage.label(mask, structure=np.ones((3, 3), int))
        if nreg:
            lab = labels.ravel()
            sizes = np.bincount(lab)[1:]
            inside = lab > 0
            overlap[i] = np.bincount(b[inside], weights=1.0 / sizes[lab[inside] - 1], minlength=k)
            hits[i] = 0.0 if m.max() == m.min() else float(flat[int(np.argmax(m))])
        regions[i] = nreg
    return {"pos": pos, "neg": neg, "overlap": overlap, "regions": regions, "hits": hits}


def _map_draws(w: np.ndarray, c: dict[str, np.ndarray], fpr_limit: float) -> dict[str, np.ndarray]:
    pos, neg = w @ c["pos"], w @ c["neg"]
    # bins ascend; a pixel in bin j is above every pixel of bins < j
    below = np.cumsum(neg, 1) - neg
    above = np.cumsum(neg[:, ::-1], 1)[:, ::-1] - neg
    auroc = _share((pos * (below + 0.5 * neg)).sum(1), (pos * (above + 0.5 * neg)).sum(1))
    # thresholds from the top bin down: the share of normal pixels and of each region at or above it (running
    # sums over a total summed otherwise: kept in [0, 1] here, where they are made, since rounding can pass 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = np.clip(np.cumsum(neg[:, ::-1], 1) / neg.sum(1, keepdims=True), 0.0, 1.0)
        pro = np.clip(np.cumsum((w @ c["overlap"])[:, ::-1], 1) / (w @ c["regions"])[:, None], 0.0, 1.0)
    aupro = np.full(len(w), math.nan)
    for r in range(len(w)):
        if not (np.isfinite(fpr[r]).all() and np.isfinite(pro[r]).all()):
            continue
        x, y = np.r_[0.0, fpr[r]], np.r_[0.0, pro[r]]
        end = int(np.searchsorted(x, fpr_limit, side="right"))
        xs, ys = np.r_[x[:end], fpr_limit], np.r_[y[:end], np.interp(fpr_limit, x, y)]
        # the mean of a curve in [0, 1] over [0, fpr_limit]: past 1 by rounding only, so bounded where it is made
        aupro[r] = min(1.0, max(0.0, float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2) / fpr_limit)))
    hit = np.nan_to_num(c["hits"])
    has = np.isfinite(c["hits"]).astype(float)
    pointing = _share(w @ hit, w @ (has - hit))
    return {"pixel_auroc": auroc, "au_pro": aupro, "pointing_game": pointing}


def map_draws(maps: Iterable[np.ndarray], masks: Iterable[np.ndarray], categories: Iterable[str],
              fpr_limit: float = 0.3, n: int = RESAMPLES, seed: int = SEED) -> dict[str, dict[str, np.ndarray]]:
    """Per category, the bootstrap draws of pixel AUROC, AU-PRO and the pointing game (``n`` each). Images are
    resampled within their category, stratified by whether they hold a defect; each category's resamples come
    from its own seed (``seed`` and the category's name), so a category scored alone gets the same draws."""
    import zlib

    maps = [np.asarray(m, np.float64) for m in maps]
    masks = [np.asarray(m, bool) for m in masks]
    cats = np.asarray([str(c) for c in categories])
    if not (len(maps) == len(masks) == len(cats)):
        raise ValueError(f"{len(maps)} maps, {len(masks)} masks and {len(cats)} categories: expected as many of each")
    out = {}
    for cat in sorted(set(cats.tolist())):
        idx = np.flatnonzero(cats == cat)
        w = resample_counts([bool(masks[i].any()) for i in idx], n, seed + zlib.crc32(cat.encode()))
        values = np.concatenate([maps[i].ravel() for i in idx])
        edges = np.unique(np.quantile(values, np.linspace(0, 1, PIXEL_BINS + 1)[1:-1]))
        out[cat] = _map_draws(w, _image_counts([maps[i] for i in idx], [masks[i] for i in idx], edges), fpr_limit)
    return out


MAP_METRICS = ("pixel_auroc", "au_pro", "pointing_game")


def summarise_map_draws(draws: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """The intervals of :func:`map_draws` per category and for the mean over categories (the categories are
    resampled independently, so the mean's draws are the mean of theirs; a metric a category cannot have, e.g. a
    pointing game without defective images, leaves that category out of the mean, as the value does)."""
    columns = ["category", *(f"{k}_{e}" for k in MAP_METRICS for e in ("low", "high"))]
    if not draws:                 # no category with maps to score (e.g. no test image has a mask)
        return pd.DataFrame(columns=columns)
    rows = [{"category": cat, **{f"{k}_{end}": v for k in MAP_METRICS for end, v in zip(("low", "high"), _percentiles(d[k]))}}
            for cat, d in draws.items()]
    mean: dict[str, object] = {"category": MEAN_ROW}
    for k in MAP_METRICS:
        stacked = np.array([d[k] for d in draws.values()]).reshape(len(draws), -1)
        keep = np.isfinite(stacked).mean(1) >= 0.99
        lo_hi = _percentiles(np.nanmean(stacked[keep], 0)) if keep.any() else (math.nan, math.nan)
        mean.update({f"{k}_low": lo_hi[0], f"{k}_high": lo_hi[1]})
    return pd.DataFrame([*rows, mean], columns=columns)


def map_intervals(maps: Iterable[np.ndarray], masks: Iterable[np.ndarray], categories: Iterable[str],
                  fpr_limit: float = 0.3, n: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """Bootstrap intervals of pixel AUROC, AU-PRO and the pointing game per category and for their mean over
    categories (rows as :func:`helpers.evaluation.localisation.score_maps`; columns ``<metric>_low`` and
    ``<metric>_high``)."""
    return summarise_map_draws(map_draws(maps, masks, categories, fpr_limit, n, seed))
