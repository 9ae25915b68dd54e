"""Bootstrap intervals: a hand-computed case, a closed form, the point values, pairing and the map metrics."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from helpers.evaluation import intervals as I
from helpers.evaluation import localisation as L
from helpers.evaluation import metrics as M


def _frame(y, s, cats=None) -> pd.DataFrame:
    return pd.DataFrame({"label": y, "score": s, "category": cats if cats is not None else ["a"] * len(y),
                         "path": [f"img{i}.png" for i in range(len(y))]})


def test_resamples_keep_every_stratum_size_and_reproduce():
    strata = ["a/0"] * 4 + ["a/1"] * 2 + ["b/0"] * 3 + ["c/1"]
    w = I.resample_counts(strata, n=200, seed=3)
    assert w.shape == (200, 10)
    np.testing.assert_allclose(w[:, :4].sum(1), 4)
    np.testing.assert_allclose(w[:, 4:6].sum(1), 2)
    np.testing.assert_allclose(w[:, 6:9].sum(1), 3)
    np.testing.assert_array_equal(w[:, 9], 1.0)                 # a stratum of one image is kept as it is
    # Rao–Wu: m − 1 draws weighing m / (m − 1): in a stratum of 4, each image weighs 0, 4/3, 8/3 or 4
    assert set(np.round(w[:, :4].ravel(), 6)) <= {0.0, 1.333333, 2.666667, 4.0}
    np.testing.assert_array_equal(w, I.resample_counts(strata, n=200, seed=3))
    assert not np.array_equal(w, I.resample_counts(strata, n=200, seed=4))


def test_hand_computed_case():
    """One defective image scored between two good ones. Rao–Wu draws one of the two good images (weight 2), so
    AUROC is 0 or 1 with probability ½ each: variance ¼, which is the unbiased variance of the mean of the two
    placements (0 and 1) divided by 2, as it should be (the plain bootstrap would give ⅛). The interval is [0, 1]."""
    f = _frame([0, 1, 0], [0.2, 0.5, 0.8])
    w = I.resample_counts(f["category"] + "/" + f["label"].astype(str), n=4000, seed=0)
    draws = I._auroc(w, f["label"].to_numpy(), f["score"].to_numpy())
    assert set(np.round(draws, 6)) == {0.0, 1.0}
    assert abs(np.mean(draws) - 0.5) < 0.03
    placements = np.array([0.0, 1.0])
    assert abs(draws.var() - placements.var(ddof=1) / 2) < 0.01
    auc = I.image_intervals(f)["roc_auc"]
    assert (auc.value, auc.low, auc.high) == (0.5, 0.0, 1.0)
    # perfectly separated: every resample separates them too
    sep = I.image_intervals(_frame([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]))["roc_auc"]
    assert (sep.value, sep.low, sep.high) == (1.0, 1.0, 1.0)


def test_auroc_interval_width_matches_the_closed_form_variance():
    """On a large sample the bootstrap interval is the normal one: ±1.96 × the AUROC's standard error, computed here
    in closed form from the placement values (DeLong et al. 1988, the U-statistic's variance)."""
    rng = np.random.default_rng(0)
    n_pos, n_neg = 500, 700
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    s = np.r_[rng.normal(1.0, 1, n_pos), rng.normal(0, 1, n_neg)]
    pos, neg = s[y == 1], s[y == 0]
    v10 = (pos[:, None] > neg[None, :]).mean(1)   # each defective's share of good images below it
    v01 = (pos[:, None] > neg[None, :]).mean(0)
    se = math.sqrt(v10.var(ddof=1) / n_pos + v01.var(ddof=1) / n_neg)
    got = I.image_intervals(_frame(y, s))["roc_auc"]
    assert got.low < got.value < got.high
    assert (got.high - got.low) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.12)


def test_values_equal_the_reported_metrics():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 120)
    s = np.round(y * 0.7 + rng.normal(size=120), 1)  # ties on purpose
    cats = rng.choice(["a", "b", "c"], 120)
    f = _frame(y, s, cats)
    got = I.image_intervals(f, threshold=0.3)
    want = M.binary_metrics(y, s, 0.3)
    for k in ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "fpr", "specificity"):
        assert got[k].value == pytest.approx(want[k], abs=1e-12), k
        assert got[k].low <= got[k].value <= got[k].high, k
    assert got["category_auroc_mean"].value == pytest.approx(M.mean_category_auroc(M.per_category_table(f)))
    per = I.category_intervals(f)
    np.testing.assert_allclose(per["auroc"], M.per_category_table(f)["auroc"])
    assert ((per["auroc_low"] <= per["auroc"]) & (per["auroc"] <= per["auroc_high"])).all()


def test_one_class_category_has_no_interval():
    f = _frame([0, 0, 0, 1, 0], [0.1, 0.2, 0.3, 0.9, 0.1], ["a", "a", "a", "b", "b"])
    per = I.category_intervals(f).set_index("category")
    assert math.isnan(per.loc["a", "auroc"]) and math.isnan(per.loc["a", "auroc_low"])
    assert str(I.Interval(math.nan, math.nan, math.nan)) == "n/a"


def test_paired_difference():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(40, int), np.zeros(60, int)]
    good = _frame(y, y * 2.0 + rng.normal(size=100))
    weak = good.assign(score=y * 0.2 + rng.normal(size=100)).sample(frac=1, random_state=0)  # order must not matter
    same = I.paired_difference(good, good)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and not same.resolved
    d = I.paired_difference(good, weak)
    assert d.value > 0 and d.resolved
    assert d.value == pytest.approx(I.image_intervals(good)["roc_auc"].value - I.image_intervals(weak)["roc_auc"].value)
    with pytest.raises(ValueError, match="same images"):
        I.paired_difference(good, weak.iloc[1:])


def test_map_intervals_bracket_the_exact_values():
    rng = np.random.default_rng(3)
    maps, masks, cats = [], [], []
    for i in range(24):
        m, k = rng.random((24, 24)), np.zeros((24, 24), bool)
        if i % 3 == 0:
            k[4:10, 4:10] = True
            k[15:17, 15:20] = True
            m[4:10, 4:10] += 0.6
        maps.append(m)
        masks.append(k)
        cats.append("x" if i < 12 else "y")
    exact = L.score_maps("m", maps, masks, cats).set_index("category")
    got = I.map_intervals(maps, masks, cats).set_index("category")
    for metric in ("pixel_auroc", "au_pro"):
        for cat in exact.index:
            lo, hi = got.loc[cat, f"{metric}_low"], got.loc[cat, f"{metric}_high"]
            assert lo - 0.01 <= exact.loc[cat, metric] <= hi + 0.01, (metric, cat)
            assert hi - lo < 0.3
    # every defective image's map peaks in its first region: the pointing game is 1 on every resample
    assert got.loc[L.MEAN_ROW, "pointing_game_low"] == got.loc[L.MEAN_ROW, "pointing_game_high"] == 1.0


def test_small_strata_do_not_shrink_the_interval():
    """The built-in split's shape — many categories of 2 defective and 4 good test images — from one population:
    stratifying by category must not narrow the pooled AUROC's interval below the closed form (the plain bootstrap
    would, by about √(3/4·½) on these strata; Rao–Wu's rescaling keeps it)."""
    rng = np.random.default_rng(5)
    cats = np.repeat([f"c{i}" for i in range(40)], 6)
    y = np.tile([1, 1, 0, 0, 0, 0], 40)
    s = rng.normal(y * 1.2, 1)
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).astype(float)
    se = math.sqrt(wins.mean(1).var(ddof=1) / len(pos) + wins.mean(0).var(ddof=1) / len(neg))
    got = I.image_intervals(_frame(y, s, cats))["roc_auc"]
    assert (got.high - got.low) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.12)


def test_against_chance_says_what_the_interval_allows():
    from helpers.evaluation.intervals import Interval

    assert "above chance" in Interval(0.8, 0.7, 0.9).against_chance()
    assert "not told apart from chance" in Interval(0.55, 0.45, 0.65).against_chance()
    assert "below chance" in Interval(0.3, 0.2, 0.4).against_chance()
    assert "no interval" in Interval(0.5, float("nan"), float("nan")).against_chance()


def test_no_maps_give_an_empty_table_not_an_error():
    from helpers.evaluation.intervals import MAP_METRICS, summarise_map_draws

    table = summarise_map_draws({})
    assert table.empty and list(table.columns)[0] == "category" and len(table.columns) == 1 + 2 * len(MAP_METRICS)
