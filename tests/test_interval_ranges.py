"""Every interval stays in its metric's range, on the score patterns real data produces and generated data hides
(perfect separation — common on real MVTec AD —, perfect inversion, all tied, one defective image, a stratum of one
image, one category), and every figure that draws an interval draws these without error; the words said about an
interval hold at the precision it is printed with."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from helpers.evaluation import intervals as I
from helpers.viz import results


def _cases() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)

    def frame(y, s, cats):
        return pd.DataFrame({"label": y, "score": s, "category": cats, "path": [f"i{i}.png" for i in range(len(y))]})

    y = np.r_[np.zeros(20, int), np.ones(63, int)]          # bottle's test folder: 20 good, 63 defective
    one = ["bottle"] * len(y)
    two = ["a"] * 40 + ["b"] * 43
    return {
        "perfect separation": frame(y, y + rng.uniform(0, 0.5, len(y)), one),
        "perfect separation, 2 categories": frame(y, y * 3 + rng.uniform(0, 1, len(y)), two),
        "perfect inversion": frame(y, -y + rng.uniform(0, 0.5, len(y)), one),
        "all tied": frame(y, np.full(len(y), 0.3), one),
        "one defective image": frame(np.r_[np.zeros(9, int), 1], np.r_[rng.uniform(0, 1, 9), 2.0], ["x"] * 10),
        "a stratum of one image": frame(np.r_[np.zeros(6, int), np.ones(3, int), 0, 1],
                                        rng.uniform(0, 1, 11), ["a"] * 9 + ["b", "b"]),
        "Rao-Wu weights, near perfect": frame(np.r_[np.zeros(7, int), np.ones(3, int)],
                                              np.r_[np.linspace(0, 0.6, 7), 0.59, 0.9, 1.0], ["c"] * 10),
    }


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_image_intervals_stay_in_range(name):
    frame = CASES[name]
    spans = I.image_intervals(frame, threshold=float(frame["score"].median()))
    for metric, span in spans.items():
        for end in (span.value, span.low, span.high):
            assert np.isnan(end) or 0.0 <= end <= 1.0, f"{name}: {metric} {span!r} leaves [0, 1]"
        if np.isfinite(span.low):
            assert span.low <= span.high
    table = I.category_intervals(frame)
    ends = table[["auroc", "auroc_low", "auroc_high"]].to_numpy(float)
    assert np.all(np.isnan(ends) | ((ends >= 0) & (ends <= 1))), f"{name}: {table}"
    grid, low, high = I.roc_band(frame)
    assert np.all(np.isnan(low) | ((low >= 0) & (high <= 1) & (low <= high)))


def test_perfect_separation_is_exactly_one_with_an_interval_at_one():
    span = I.image_intervals(CASES["perfect separation"])["roc_auc"]
    assert (span.value, span.low, span.high) == (1.0, 1.0, 1.0)
    inverted = I.image_intervals(CASES["perfect inversion"])["roc_auc"]
    assert (inverted.value, inverted.low, inverted.high) == (0.0, 0.0, 0.0)
    assert "below chance" in inverted.against_chance()


@pytest.mark.parametrize("name", list(CASES))
def test_paired_differences_stay_within_minus_one_and_one(name):
    frame = CASES[name]
    other = frame.assign(score=np.random.default_rng(1).permutation(frame["score"].to_numpy()))
    for a, b in ((frame, other), (other, frame), (frame, frame)):
        d = I.paired_difference(a, b)
        assert all(np.isnan(e) or -1.0 <= e <= 1.0 for e in (d.value, d.low, d.high)), f"{name}: {d!r}"


@pytest.mark.parametrize("name", list(CASES))
def test_map_intervals_stay_in_range(name):
    frame = CASES[name]
    rng = np.random.default_rng(2)
    masks, maps = [], []
    for label, score in zip(frame["label"], frame["score"]):
        mask = np.zeros((16, 16), bool)
        if label:
            mask[4:9, 5:11] = True
        masks.append(mask)
        # maps that find the defect perfectly (a real PatchCore map on bottle nearly does), scaled by the score
        maps.append(mask * 2.0 + rng.uniform(0, 0.1, (16, 16)) * (1 + abs(score)))
    table = I.map_intervals(maps, masks, frame["category"])
    ends = table.drop(columns="category").to_numpy(float)
    assert np.all(np.isnan(ends) | ((ends >= 0) & (ends <= 1))), f"{name}: {table}"


@pytest.mark.parametrize("name", list(CASES))
def test_figures_draw_every_case(name):
    frame = CASES[name]
    table = I.category_intervals(frame)
    # a percentile interval need not hold its value (skewed resamples): the bar chart must draw it anyway
    skewed = table.assign(auroc_low=table["auroc"] + 0.01, auroc_high=table["auroc"] + 0.05)
    for t in (table, skewed):
        results.plot_per_category_auroc(t)
        plt.close("all")
    if frame["label"].nunique() == 2:
        results.plot_roc_pr(frame["label"], frame["score"], categories=frame["category"])
        plt.close("all")


def test_words_hold_at_the_precision_shown():
    # resolved with a low end of +0.002: two decimals would print "+0.00", which reads as "includes 0"
    d = I.Interval(0.12, 0.002, 0.30)
    text = d.format(against=0.0, signed=True)
    assert text == "+0.120 [+0.002, +0.300]"
    assert d.resolved
    # an AUROC whose low end is 0.503: "above chance" must not be printed as "[0.50, ...]"
    assert "[0.503, " in I.Interval(0.7, 0.503, 0.9).against_chance()
    assert I.Interval(0.7, 0.55, 0.9).format(against=0.5) == "0.70 [0.55, 0.90]"   # no extra digits when not needed
