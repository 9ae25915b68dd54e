"""Against real MVTec AD files (../shared/mvtec_sample); skipped cleanly where they are absent."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from helpers.data.images import load_mask, load_rgb
from helpers.data.scan import scan_mvtec
from helpers.data.split import check_leakage, make_split, standard_protocol


def test_counts_match_the_tree_without_false_quarantine(real_sample):
    scan = scan_mvtec(real_sample, progress=False)
    pngs = [p for p in real_sample.rglob("*.png") if "ground_truth" not in p.parts]
    assert len(scan.manifest) == len(pngs)
    assert scan.quarantine.empty, scan.quarantine.to_dict("records")
    by_cat = scan.manifest.groupby("category").size()
    for cat_dir in (d for d in real_sample.iterdir() if d.is_dir()):
        n = sum(1 for p in cat_dir.rglob("*.png") if "ground_truth" not in p.parts)
        assert by_cat[cat_dir.name] == n
    # masks paired by name where the sample has them
    with_mask = scan.manifest[scan.manifest["mask_path"] != ""]
    assert set(with_mask["category"]) == {"bottle", "hazelnut", "metal_nut", "screw"}
    # the others are kept and listed, not quarantined
    no_mask = scan.manifest[(scan.manifest["label"] == 1) & (scan.manifest["mask_path"] == "")]
    assert len(no_mask) == 11
    assert set(no_mask["path"]) <= set(scan.warnings["path"])


def test_grayscale_categories_load_as_rgb(real_sample):
    scan = scan_mvtec(real_sample, progress=False)
    gray = scan.manifest[scan.manifest["category"].isin(["grid", "screw", "zipper"])]
    assert set(gray["mode"]) == {"L"}
    for rel in gray["path"][:3]:
        arr = load_rgb(real_sample / rel)
        assert arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8
        assert min(arr.shape[:2]) >= 700
    assert set(scan.manifest.loc[~scan.manifest.index.isin(gray.index), "mode"]) == {"RGB"}


def test_masks_are_binary_and_match_image_size(real_sample):
    scan = scan_mvtec(real_sample, progress=False)
    for _, row in scan.manifest[scan.manifest["mask_path"] != ""].iterrows():
        mask = load_mask(real_sample / row["mask_path"])
        assert set(np.unique(mask)) == {0, 1}
        assert mask.shape == (row["height"], row["width"])
        assert Image.open(real_sample / row["mask_path"]).mode == "L"


def test_split_of_real_files_is_leakage_free(real_sample):
    manifest = scan_mvtec(real_sample, progress=False).manifest
    check_leakage(make_split(manifest), manifest)
    std = standard_protocol(manifest)
    assert set(std.loc[std["split"] == "train", "category"]) == {"screw", "hazelnut"}
    assert Path(real_sample).is_dir()
