"""The built-in dataset: deterministic, MVTec-shaped, defects at three levels of difficulty, all real."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers.data.scan import MVTEC_CATEGORIES
from helpers.data.synthetic import DEFECTS, DIFFICULTY, LEVELS, SyntheticSpec, generate_dataset, render_image


def test_every_category_has_two_to_four_defect_types():
    assert set(DEFECTS) == set(MVTEC_CATEGORIES)
    assert all(2 <= len(v) <= 4 for v in DEFECTS.values())


def test_generation_is_deterministic(tmp_path, small_spec, synthetic_root):
    again = generate_dataset(tmp_path / "again", small_spec, progress=False)
    files = sorted(p.relative_to(synthetic_root) for p in synthetic_root.rglob("*.png"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.png"))
    for rel in files[::7]:
        assert (synthetic_root / rel).read_bytes() == (again / rel).read_bytes()
    info = json.loads((again / "builtin_dataset.json").read_text())
    assert info["size"] == 64


def test_layout_modes_and_counts(synthetic_root, small_spec):
    for cat in small_spec.categories:
        assert len(list((synthetic_root / cat / "train" / "good").glob("*.png"))) == small_spec.n_train_good
        for defect in DEFECTS[cat]:
            imgs = sorted((synthetic_root / cat / "test" / defect).glob("*.png"))
            masks = sorted((synthetic_root / cat / "ground_truth" / defect).glob("*_mask.png"))
            assert len(imgs) == len(masks) == small_spec.n_per_defect
        mode = Image.open(synthetic_root / cat / "train" / "good" / "000.png").mode
        assert mode == ("L" if cat in ("grid", "screw", "zipper") else "RGB")


#: Share of the image a defect of each level covers (at 128 px, seed 3): generous bounds around what it draws.
AREA = {"subtle": (0.0003, 0.03), "moderate": (0.002, 0.06), "obvious": (0.01, 0.3)}


@pytest.mark.parametrize("difficulty", ["mixed", "uniform"])
def test_defects_are_visible_masked_and_sized_by_level(difficulty):
    rng_seed = 3
    for cat in MVTEC_CATEGORIES:
        for defect in DEFECTS[cat]:
            img, mask = render_image(cat, np.random.default_rng(rng_seed), 128, defect, difficulty=difficulty)
            clean, none = render_image(cat, np.random.default_rng(rng_seed), 128, None)
            assert none is None
            level = DIFFICULTY[cat][defect] if difficulty == "mixed" else "subtle"
            low, high = AREA[level]
            assert low < mask.mean() < high, (cat, defect, level, mask.mean())
            diff = np.abs(img.astype(int) - clean.astype(int))
            if diff.ndim == 3:
                diff = diff.max(axis=2)
            # the change is concentrated in the mask: the defect is where the mask says
            assert diff[mask].mean() > 4 * max(diff[~mask].mean(), 0.5), (cat, defect)


def test_difficulty_spreads_like_mvtec():
    """Some categories have only obvious defects, some only subtle ones; every level is used; an obvious
    defect covers several times the area of the same primitive drawn subtle."""
    levels = {cat: set(d.values()) for cat, d in DIFFICULTY.items()}
    assert levels["hazelnut"] == {"obvious"} and levels["screw"] == {"subtle"}
    assert set().union(*levels.values()) == set(LEVELS)
    assert LEVELS["obvious"].scale > LEVELS["moderate"].scale > LEVELS["subtle"].scale == 1.0
    areas = {d: [render_image("bottle", np.random.default_rng(i), 128, "broken_large", difficulty=d)[1].mean()
                 for i in range(5)] for d in ("mixed", "uniform")}
    assert np.mean(areas["mixed"]) > 5 * np.mean(areas["uniform"])
    with pytest.raises(ValueError, match="unknown difficulty"):
        render_image("bottle", np.random.default_rng(0), 64, "broken_large", difficulty="hard")


def test_spec_changes_regenerate(tmp_path):
    root = generate_dataset(tmp_path / "d", SyntheticSpec(size=48, n_train_good=1, n_test_good=1, n_per_defect=1,
                                                         categories=("wood",)), progress=False)
    assert Image.open(root / "wood/train/good/000.png").size == (48, 48)
    generate_dataset(root, SyntheticSpec(size=40, n_train_good=1, n_test_good=1, n_per_defect=1,
                                         categories=("wood",)), progress=False)
    assert Image.open(root / "wood/train/good/000.png").size == (40, 40)


def test_settings_of_another_generator_version_are_refused(tmp_path):
    with pytest.raises(ValueError, match="version 1 of the built-in data generator.*new RUNS_DIR"):
        generate_dataset(tmp_path / "d", SyntheticSpec(size=32, n_train_good=1, n_test_good=1, n_per_defect=1,
                                                       categories=("wood",), version=1), progress=False)
    assert not (tmp_path / "d").exists()
