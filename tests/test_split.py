"""The protocol: deterministic, stratified, leakage-free, written once."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.data.scan import scan_mvtec
from helpers.data.split import check_leakage, ensure_split, make_split, standard_protocol, write_split
from helpers.errors import LeakageError, SplitMismatchError


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


def _edited(manifest, tmp_path, edit):
    """A written split, edited on disk by ``edit(frame) -> frame`` (as a user or a script might)."""
    path = tmp_path / "split.csv"
    ensure_split(manifest, path)
    frame = pd.read_csv(path, keep_default_na=False)
    edit(frame).to_csv(path, index=False)
    return path


def _one(frame, split):
    return frame.index[frame["split"] == split][0]


@pytest.mark.parametrize("name, edit, message", [
    ("test row moved to train", lambda f: f.assign(split=f["split"].where(f.index != _one(f, "test"), "train")),
     "rows differ, e.g. .*file says train, the seed gives test"),
    ("train and test rows swapped", lambda f: f.assign(split=f["split"].mask(f.index == _one(f, "test"), "train")
                                                        .mask(f.index == _one(f, "train"), "test")), "2 rows differ"),
    ("misspelt split name", lambda f: f.assign(split=f["split"].replace({"val": "valid"})), r"unknown split names \['valid'\]"),
    ("duplicated row", lambda f: pd.concat([f, f.iloc[[0]].assign(split="test")]), "1 duplicated paths"),
    ("a column dropped", lambda f: f.drop(columns="split"), r"missing columns \['split'\]"),
])
def test_an_edited_split_is_refused(manifest, tmp_path, name, edit, message):
    path = _edited(manifest, tmp_path, edit)
    with pytest.raises(SplitMismatchError, match=message) as err:
        ensure_split(manifest, path)
    assert "move " in str(err.value) and str(path) in str(err.value)         # what to do, and which file


def test_garbage_in_the_split_file_gives_a_message(manifest, tmp_path):
    path = tmp_path / "split.csv"
    ensure_split(manifest, path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 not a csv \xff\xfe")
    with pytest.raises(SplitMismatchError, match="cannot be read as a split file|is not a split file"):
        ensure_split(manifest, path)
    path.write_text("")
    with pytest.raises(SplitMismatchError, match="cannot be read as a split file"):
        ensure_split(manifest, path)


def test_the_recorded_seed_verifies_the_split(manifest, tmp_path):
    path = tmp_path / "split.csv"
    ensure_split(manifest, path, seed=7)
    assert json.loads((tmp_path / "split.json").read_text())["seed"] == 7
    pd.testing.assert_frame_equal(ensure_split(manifest, path, seed=42), ensure_split(manifest, path, seed=7))
    other = make_split(manifest, seed=8)
    write_split(other, path)                                                 # a split of another seed, swapped in
    with pytest.raises(SplitMismatchError, match=r"seed \(7\)"):
        ensure_split(manifest, path)
