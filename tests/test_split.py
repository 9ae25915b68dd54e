"""The protocol: deterministic, stratified, leakage-free, written once."""
from __future__ import annotations

import pandas as pd
import pytest

from helpers.data import scan_mvtec
from helpers.split import (LeakageError, SplitMismatchError, check_leakage, ensure_split, make_split,
                           standard_protocol)


@pytest.fixture(scope="module")
def manifest(synthetic_root):
    return scan_mvtec(synthetic_root, progress=False).manifest


def test_split_is_deterministic_and_complete(manifest):
    a, b = make_split(manifest, seed=42), make_split(manifest, seed=42)
    pd.testing.assert_frame_equal(a, b)
    assert list(a["path"]) == list(manifest["path"])
    assert set(a["split"]) == {"train", "val", "test"}
    c = make_split(manifest, seed=7)
    assert not a["split"].equals(c["split"])  # the seed matters


def test_split_fractions_and_stratification(manifest):
    s = make_split(manifest)
    n = len(s)
    n_test = (s["split"] == "test").sum()
    n_val = (s["split"] == "val").sum()
    assert n_test == round(0.2 * n)
    assert n_val == round(0.2 * (n - n_test))
    # every category has good and defective images in test
    t = s[s["split"] == "test"]
    for cat, g in t.groupby("category"):
        assert set(g["label"]) == {0, 1}, cat
    # defective share in test within 10 points of the whole
    assert abs(t["label"].mean() - s["label"].mean()) < 0.1


def test_duplicates_stay_together_and_leakage_is_caught(manifest):
    dup = manifest.copy()
    twin = dup.iloc[[0]].copy()
    twin["path"] = "bottle/train/good/twin.png"
    dup = pd.concat([dup, twin], ignore_index=True)
    s = make_split(dup)
    sp = s.set_index("path")["split"]
    assert sp[manifest.iloc[0]["path"]] == sp["bottle/train/good/twin.png"]
    report = check_leakage(s, dup)
    assert report["hashes_checked"] == len(manifest)
    # plant a leak: move the twin to another split
    other = next(x for x in ("train", "val", "test") if x != sp["bottle/train/good/twin.png"])
    s.loc[s["path"] == "bottle/train/good/twin.png", "split"] = other
    with pytest.raises(LeakageError, match="identical contents"):
        check_leakage(s, dup)
    doubled = pd.concat([s, s.iloc[[3]].assign(split="test" if s.iloc[3]["split"] != "test" else "val")])
    with pytest.raises(LeakageError, match="paths are in more than one split"):
        check_leakage(doubled)


def test_split_is_written_once_and_guarded(manifest, tmp_path):
    path = tmp_path / "split.csv"
    first = ensure_split(manifest, path)
    mtime = path.stat().st_mtime_ns
    again = ensure_split(manifest, path, seed=999)  # the seed no longer matters: it is read back
    pd.testing.assert_frame_equal(first, again)
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(SplitMismatchError, match="written for other data"):
        ensure_split(manifest.iloc[:-3], path)


def test_standard_protocol(manifest):
    s = standard_protocol(manifest)
    train = s[s["split"] == "train"]
    assert (train["label"] == 0).all() and (train["mvtec_split"] == "train").all()
    assert (s.loc[s["split"] == "test", "mvtec_split"] == "test").all()
    assert len(s) == len(manifest)
    check_leakage(s, manifest)
