"""The protocol: one deterministic split, written once, read by every notebook (see docs/protocol.md).

- ``test``: 20% of all images, stratified by category × defect type (falling back to category × label
  where a defect type is too rare). Never used for training, early stopping, checkpoint or threshold choice.
  A category's good or defective images, 3 or more, always leave at least one in test and one in val (a product
  with 4 defective photos would otherwise round to none).
- ``val``: 20% of the rest, same stratification: early stopping, checkpoint choice, thresholds.
- ``train``: the rest. One-class methods fit on ``train`` rows with label 0 only.

Files with identical bytes are kept in one split, so no content can leak between splits.
The MVTec standard protocol (fit on MVTec ``train/good``, score every MVTec ``test`` image) is
available as :func:`standard_protocol` for comparison with the literature.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import files
from ..errors import LeakageError, SplitMismatchError

__all__ = ["SPLITS", "SPLIT_COLUMNS", "MIN_STRATUM", "MIN_FOR_EVERY_SPLIT", "make_split",
           "standard_protocol", "check_leakage", "split_counts", "split_hash", "write_split", "read_split", "ensure_split"]

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ["path", "split", "category", "defect_type", "label", "mvtec_split"]
#: A category × defect-type stratum needs this many images to be kept as its own stratum.
MIN_STRATUM = 5




def _strata(manifest: pd.DataFrame) -> pd.Series:
    fine = manifest["category"] + "|" + manifest["defect_type"]
    coarse = manifest["category"] + "|" + manifest["label"].astype(str)
    counts = fine.map(fine.value_counts())
    return fine.where(counts >= MIN_STRATUM, coarse)


def _allocate(sizes: np.ndarray, frac: float) -> np.ndarray:
    """Split ``round(total × frac)`` across strata of ``sizes`` proportionally (largest remainder).

    Per-stratum rounding would drift (many strata of 3 each rounding 0.6 down); this keeps the
    overall fraction exact while every stratum gets its floor and the largest remainders get one more.
    """
    exact = sizes * frac
    alloc = np.floor(exact).astype(np.int64)
    short = int(np.floor(sizes.sum() * frac + 0.5)) - int(alloc.sum())
    order = np.lexsort((np.arange(len(sizes)), -(exact - alloc)))  # ties: stratum order (stable)
    alloc[order[:max(short, 0)]] += 1
    return np.minimum(alloc, sizes)


#: A category's good or defective images, this many or more, keep at least one in val and one in test.
MIN_FOR_EVERY_SPLIT = 3


def _keep_some_in_val_and_test(assignment: np.ndarray, unit_group: np.ndarray, order: list[np.ndarray]) -> None:
    """With few images of a kind (e.g. a product with 4 defective photos, whose strata round to 0 test images),
    move one training unit to test, and one to val, when a category × label group of at least
    :data:`MIN_FOR_EVERY_SPLIT` units has none there: every split then has some of it to score, stop early or set a
    threshold on. Groups that already have one in each are left as they are (larger data splits as before).
    ``order``: the strata's units in their drawn order (the last training unit drawn moves)."""
    drawn = np.concatenate(order) if order else np.array([], np.int64)
    for key in sorted(set(unit_group.tolist())):
        units = [int(u) for u in drawn if unit_group[u] == key]
        if len(units) < MIN_FOR_EVERY_SPLIT:
            continue
        for split in ("test", "val"):
            train = [u for u in units if assignment[u] == "train"]
            if train and not any(assignment[u] == split for u in units):
                assignment[train[-1]] = split


def make_split(manifest: pd.DataFrame, seed: int = 42, test_frac: float = 0.2,
               val_frac: float = 0.2) -> pd.DataFrame:
    """Assign every manifest row to train/val/test (see module docstring). Deterministic in ``seed``.

    Returns a frame with :data:`SPLIT_COLUMNS`, in manifest order.
    """
    if manifest.empty:
        raise ValueError("Cannot split an empty manifest: no usable images were found.")
    rng = np.random.default_rng(seed)
    frame = manifest.reset_index(drop=True)
    strata = _strata(frame)
    # one unit per distinct content: duplicates travel together
    groups = frame.groupby("content_hash", sort=True).indices
    unit_of_row = np.empty(len(frame), dtype=np.int64)
    unit_hashes = sorted(groups)
    for u, h in enumerate(unit_hashes):
        unit_of_row[groups[h]] = u
    unit_stratum = pd.Series(strata.to_numpy()[[groups[h][0] for h in unit_hashes]])
    assignment = np.empty(len(unit_hashes), dtype=object)
    names = sorted(unit_stratum.unique())
    members = [np.flatnonzero(unit_stratum.to_numpy() == name) for name in names]
    members = [units[rng.permutation(len(units))] for units in members]
    sizes = np.array([len(units) for units in members])
    n_test = _allocate(sizes, test_frac)
    n_val = _allocate(sizes - n_test, val_frac)
    for units, k_test, k_val in zip(members, n_test, n_val):
        assignment[units[:k_test]] = "test"
        assignment[units[k_test:k_test + k_val]] = "val"
        assignment[units[k_test + k_val:]] = "train"
    first = [groups[h][0] for h in unit_hashes]
    unit_group = (frame["category"].astype(str) + "|" + frame["label"].astype(str)).to_numpy()[first]
    _keep_some_in_val_and_test(assignment, unit_group, members)
    out = frame[["path", "category", "defect_type", "label", "mvtec_split"]].copy()
    out.insert(1, "split", assignment[unit_of_row])
    return out[SPLIT_COLUMNS]


def standard_protocol(manifest: pd.DataFrame) -> pd.DataFrame:
    """The MVTec standard protocol as a split frame: MVTec ``train/good`` → train, MVTec ``test`` → test.

    Images in MVTec ``train/`` that are not good (none in the real dataset) are left out.
    """
    mvtec = manifest["mvtec_split"].isin(["train", "test"])     # the plain layout's images have no MVTec split
    keep = mvtec & ((manifest["mvtec_split"] == "test") | (manifest["label"] == 0))
    out = manifest.loc[keep, ["path", "category", "defect_type", "label", "mvtec_split"]].copy()
    out.insert(1, "split", np.where(out["mvtec_split"] == "train", "train", "test"))
    return out[SPLIT_COLUMNS].reset_index(drop=True)


def check_leakage(split: pd.DataFrame, manifest: pd.DataFrame | None = None) -> dict:
    """Verify that no path and no content hash is in two splits.

    Args:
        split: a split frame (``path``, ``split``).
        manifest: supplies ``content_hash`` per path (needed for the content check).

    Returns:
        A report: images per split and the number of paths/hashes checked.

    Raises:
        LeakageError: naming the offending paths.
    """
    by_path = split.groupby("path")["split"].nunique()
    bad_paths = by_path[by_path > 1].index.tolist()
    if bad_paths:
        raise LeakageError(f"{len(bad_paths)} paths are in more than one split, e.g. {bad_paths[:5]}")
    report = {"images": split["split"].value_counts().reindex(SPLITS, fill_value=0).to_dict(),
              "paths_checked": int(len(by_path))}
    if manifest is not None:
        merged = split.merge(manifest[["path", "content_hash"]], on="path", how="left")
        if merged["content_hash"].isna().any():
            missing = merged.loc[merged["content_hash"].isna(), "path"].tolist()
            raise LeakageError(f"{len(missing)} split paths are not in the manifest, e.g. {missing[:5]}")
        by_hash = merged.groupby("content_hash")["split"].nunique()
        bad = by_hash[by_hash > 1].index
        if len(bad):
            paths = merged.loc[merged["content_hash"].isin(bad), ["path", "split"]].values.tolist()
            raise LeakageError(f"{len(bad)} identical contents are in more than one split, e.g. {paths[:6]}")
        report["hashes_checked"] = int(len(by_hash))
    return report


def split_counts(split: pd.DataFrame) -> pd.DataFrame:
    """Images per category × split × label (good/defective)."""
    kind = split["label"].map({0: "good", 1: "defective"})
    return (split.assign(kind=kind)
            .pivot_table(index="category", columns=["split", "kind"], values="path",
                         aggfunc="count", fill_value=0)
            .reindex(columns=SPLITS, level=0))


def split_hash(split: pd.DataFrame) -> str:
    """A short hash of which image is in which split (order-independent)."""
    import hashlib

    rows = sorted(f"{p}\t{s}" for p, s in zip(split["path"], split["split"]))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def write_split(split: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``split.csv`` (atomically: a crash never leaves half a split)."""
    return files.write_csv(split, path)


_SPLIT_REMEDY = ("The split is written once so that every model is scored on the same test images, and is "
                 "never edited: move {path} aside (or use another RUNS_DIR) to write it afresh from the seed.")


def read_split(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``split.csv``: the columns, the split names and one row per path are checked.

    Raises:
        SplitMismatchError: the file cannot be read as a split (garbage, missing columns, a misspelt
            split name, a duplicated path); the message names the file and the way out.
    """
    remedy = _SPLIT_REMEDY.format(path=path)
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype=str)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:   # EmptyDataError is a ValueError
        raise SplitMismatchError(f"{path} cannot be read as a split file ({type(err).__name__}: {err}). {remedy}") from err
    missing = set(SPLIT_COLUMNS) - set(df.columns)
    if missing:
        raise SplitMismatchError(f"{path} is not a split file: missing columns {sorted(missing)}. {remedy}")
    bad = sorted(set(df["split"]) - set(SPLITS))
    dup = df.loc[df["path"].duplicated(), "path"].tolist()
    if bad or dup:
        what = (f"unknown split names {bad} (expected {list(SPLITS)})" if bad else "") + \
               ("; " if bad and dup else "") + (f"{len(dup)} duplicated paths, e.g. {dup[:3]}" if dup else "")
        raise SplitMismatchError(f"{path} has {what}. {remedy}")
    df["label"] = df["label"].astype(int)
    return df


def _differences(on_disk: pd.DataFrame, expected: pd.DataFrame) -> list[str]:
    """Rows whose split differs between the file and the split the seed gives."""
    both = on_disk[["path", "split"]].merge(expected[["path", "split"]], on="path", suffixes=("_file", "_seed"))
    moved = both[both["split_file"] != both["split_seed"]]
    return [f"{r.path}: file says {r.split_file}, the seed gives {r.split_seed}" for r in moved.itertuples()]


def ensure_split(manifest: pd.DataFrame, path: str | os.PathLike, seed: int = 42) -> pd.DataFrame:
    """Read the split at ``path`` if it exists and fits ``manifest``; otherwise write it once.

    Every read is verified: the file must hold exactly ``manifest``'s images and give each the split that
    :func:`make_split` gives from ``seed`` — so an edited file (a row moved between splits, a swap, a
    misspelt split name, a duplicate) is refused, never used. The seed is recorded beside the file
    (``split.json``) when it is written, and the verification uses that one.

    Raises:
        SplitMismatchError: the split on disk covers other images than ``manifest``, or differs from the
            seed's split, or is not a split file. It is never silently rewritten: use another ``RUNS_DIR``,
            or move the file aside to start a new protocol.
    """
    path = Path(path)
    if path.exists():
        split = read_split(path)
        on_disk, now = set(split["path"]), set(manifest["path"])
        if on_disk != now:
            raise SplitMismatchError(
                f"{path} was written for other data: {len(now - on_disk)} images are new and "
                f"{len(on_disk - now)} are gone (e.g. new {sorted(now - on_disk)[:3]}, gone "
                f"{sorted(on_disk - now)[:3]}). The split is written once so that every model is scored "
                "on the same test images: use another RUNS_DIR for other data, or delete the file to "
                "start a new protocol deliberately.")
        seed = _recorded_seed(path, seed)
        changed = _differences(split, make_split(manifest, seed=seed))
        if changed:
            raise SplitMismatchError(
                f"{path} is not the split its seed ({seed}) gives for these images: {len(changed)} rows differ, "
                f"e.g. {'; '.join(changed[:3])}. A moved row could put a test image into training. "
                + _SPLIT_REMEDY.format(path=path))
        return split.set_index("path").loc[manifest["path"]].reset_index()[SPLIT_COLUMNS]
    split = make_split(manifest, seed=seed)
    check_leakage(split, manifest)
    write_split(split, path)
    files.write_json(_seed_file(path), {"seed": seed, "split_hash": split_hash(split)})
    return split


def _seed_file(path: Path) -> Path:
    """``split.json`` beside ``split.csv``: the seed the split was made with."""
    return path.with_suffix(".json")


def _recorded_seed(path: Path, default: int) -> int:
    """The seed recorded when the split was written (``default`` for splits written before it was recorded)."""
    meta = _seed_file(path)
    if not meta.exists():
        return default
    try:
        return int(json.loads(meta.read_text())["seed"])
    except (ValueError, KeyError, TypeError) as err:
        raise SplitMismatchError(f"{meta} cannot be read ({type(err).__name__}: {err}): it records the seed "
                                 f"{path.name} was made with. " + _SPLIT_REMEDY.format(path=path)) from err
