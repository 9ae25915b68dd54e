"""The one localisation metric (pixel AUROC, AU-PRO, pointing game) on cases computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.evaluation.localisation import MEAN_ROW, au_pro, pixel_auroc, pointing_game, pro_curve, score_maps


def _img(rows: list[str]) -> np.ndarray:
    return np.array([[float(c) for c in r] for r in rows])


def test_pixel_auroc_pools_pixels_of_all_images_good_included():
    # defective pixels score 0.35 and 0.8; of the 8 (defective, normal) pairs 7 are ordered right
    maps = [np.array([[0.35, 0.1]]), np.array([[0.8, 0.0]]), np.array([[0.4, 0.0]])]
    masks = [np.array([[1, 0]]), np.array([[1, 0]]), np.array([[0, 0]])]
    # normal pixels 0.1, 0.0 (image 2), 0.4, 0.0 (the good image): 0.35 beats three of them, 0.8 all four
    assert pixel_auroc(maps, masks) == pytest.approx((3 + 4) / 8)
    assert math.isnan(pixel_auroc([np.zeros((2, 2))], [np.zeros((2, 2), bool)]))


def test_au_pro_is_perfect_for_the_mask_itself_and_zero_for_its_inverse():
    mask = _img(["0000", "0110", "0110", "0000"]).astype(bool)
    good = np.zeros((4, 4), bool)
    assert au_pro([mask.astype(float), np.zeros((4, 4))], [mask, good]) == pytest.approx(1.0)
    assert au_pro([1.0 - mask, np.ones((4, 4))], [mask, good]) == pytest.approx(0.0)


def test_au_pro_weighs_regions_not_pixels():
    """Two regions, a small one found (score 1), a large one missed (score 0 like every normal pixel).

    At threshold 1: FPR 0, PRO 1/2 (one region of two, whatever their sizes); at threshold 0: FPR 1, PRO 1.
    Between, PRO(FPR) = 0.5 + 0.5 · FPR, so the area up to 0.3 is 0.5·0.3 + 0.25·0.3² = 0.1725 → 0.575.
    A pixel-weighted overlap would give 1/(1+8) at FPR 0 instead.
    """
    mask = _img(["100000", "000000", "001110", "001110", "001110", "000000"]).astype(bool)
    score = np.zeros(mask.shape)
    score[0, 0] = 1.0
    fpr, pro = pro_curve([score], [mask])
    assert fpr.tolist() == [0.0, 0.0, 1.0] and pro.tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert au_pro([score], [mask]) == pytest.approx(0.575)
    assert au_pro([score], [mask], fpr_limit=1.0) == pytest.approx((0.5 + 1.0) / 2)


def test_au_pro_counts_false_positives_over_all_normal_pixels():
    """One region of 4 pixels scored 0.5; of the 32 normal pixels 8 score 0.9 (FPR 0.25 before any region
    pixel is found), the rest 0. PRO is 0 up to FPR 0.25, jumps to 1 there: area (0.3 − 0.25) / 0.3."""
    mask = np.zeros((6, 6), bool)
    mask[2:4, 2:4] = True
    score = np.where(mask, 0.5, 0.0)
    score[0, :6], score[5, :2] = 0.9, 0.9
    assert au_pro([score], [mask]) == pytest.approx((0.3 - 0.25) / 0.3)


def test_pointing_game():
    mask = np.zeros((3, 3), bool)
    mask[1, 1] = True
    hit, miss, flat = np.zeros((3, 3)), np.zeros((3, 3)), np.ones((3, 3))
    hit[1, 1], miss[0, 0] = 1, 1
    good = np.zeros((3, 3), bool)
    assert pointing_game([hit, miss, flat, miss], [mask, mask, mask, good]) == pytest.approx(1 / 3)  # good: not counted
    assert math.isnan(pointing_game([hit], [good]))


def test_score_maps_per_category_and_their_mean():
    a = np.zeros((4, 4), bool)
    a[1:3, 1:3] = True
    perfect, inverse = a.astype(float), 1.0 - a
    table = score_maps("m", [perfect, np.zeros((4, 4)), inverse, np.ones((4, 4))],
                       [a, np.zeros((4, 4), bool), a, np.zeros((4, 4), bool)], ["x", "x", "y", "y"])
    t = table.set_index("category")
    assert t.loc["x", ["pixel_auroc", "au_pro", "pointing_game"]].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert t.loc["y", ["pixel_auroc", "au_pro", "pointing_game"]].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert t.loc[MEAN_ROW, ["pixel_auroc", "au_pro", "pointing_game"]].tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert t.loc[MEAN_ROW, "n_images"] == 4 and t.loc[MEAN_ROW, "n_defective"] == 2
