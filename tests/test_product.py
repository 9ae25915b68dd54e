"""A practitioner's own product: the plain folder layout, grayscale JPEGs of varying non-square sizes, few defective
images, masks optional — scanned, split, letterboxed and cached (the generated product, no real file needed)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from helpers.data import cache, product, scan, split
from helpers.errors import DatasetLayoutError


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return product.generate_product(tmp_path_factory.mktemp("photos"), product.ProductSpec(n_good=20, n_per_defect=2))


def test_the_generated_product_is_what_photos_are(photos):
    files = sorted((photos / "metal_strip").glob("*/*.jpg"))
    assert len(files) == 26
    sizes = set()
    for f in files:
        with Image.open(f) as img:
            assert img.format == "JPEG" and img.mode == "L" and 2.0 <= img.width / img.height <= 3.1
            sizes.add(img.size)
    assert len(sizes) > 10                                # sizes vary from image to image


def test_plain_layout_scans_with_masks_and_no_mvtec_split(photos):
    assert scan.detect_layout(photos) == "folders"
    found = scan.scan_mvtec(photos, progress=False)
    m = found.manifest
    assert len(m) == 26 and set(m["category"]) == {"metal_strip"} and found.quarantine.empty
    assert set(m["mvtec_split"]) == {scan.UNSPLIT}
    assert (m.loc[m["label"] == 1, "mask_path"] != "").all() and (m.loc[m["label"] == 0, "mask_path"] == "").all()
    assert split.standard_protocol(m).empty               # MVTec's protocol needs MVTec's own folders
    # the product folder itself is one product, named after the folder
    alone = scan.scan_mvtec(photos / "metal_strip", progress=False).manifest
    assert set(alone["category"]) == {"metal_strip"} and len(alone) == 26


def test_without_masks_every_defective_photo_is_kept_and_listed(photos, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(photos, bare)
    shutil.rmtree(bare / "metal_strip" / "masks")
    (bare / "metal_strip" / "notes.txt").write_text("line 3")
    found = scan.scan_mvtec(bare, progress=False)
    assert (found.manifest["label"] == 1).sum() == 6 and (found.manifest["mask_path"] == "").all()
    assert found.warnings["warning"].str.contains("without a ground-truth mask").sum() == 6
    assert found.quarantine["path"].str.endswith("notes.txt").any()


def test_a_folder_of_neither_layout_says_what_is_expected(tmp_path):
    (tmp_path / "IMG_0001.jpg").write_bytes(b"x")
    with pytest.raises(DatasetLayoutError, match="good/"):
        scan.scan_mvtec(tmp_path, progress=False)


def test_few_defective_images_keep_some_in_val_and_test(photos):
    m = scan.scan_mvtec(photos, progress=False).manifest
    for n in (3, 4, 6):                                   # a product with only n defective photos
        few = m[(m["label"] == 0) | (m.index.isin(m.index[m["label"] == 1][:n]))]
        s = split.make_split(few)
        defective = s[s["label"] == 1]["split"].value_counts()
        assert defective.get("test", 0) >= 1 and defective.get("val", 0) >= 1 and defective.get("train", 0) >= 1, n


def test_non_square_images_fill_the_square_input_and_their_masks_follow(photos, tmp_path):
    # squashed (measured against letterboxing in docs/benchmarks.md): every input pixel is the photo's, and the mask
    # is resized the same way, so it stays on the defect
    m = scan.scan_mvtec(photos, progress=False).manifest
    c = cache.build_cache(m, photos, 64, tmp_path / "cache", progress=False)
    for i, row in m.iterrows():
        img, mask = c.images[i], c.masks[i]
        assert img.shape == (64, 64, 3) and img[:4].max() > 0 and img[-4:].max() > 0    # no padding bands
        if row["defect_type"] in ("dent", "stain"):       # area defects (a 2-px scratch's mask can vanish at 64 px)
            assert mask.sum() > 0
            full = np.asarray(Image.open(photos / row["mask_path"])) > 0
            ys, xs = np.nonzero(full)
            cy, cx = ys.mean() / full.shape[0] * 64, xs.mean() / full.shape[1] * 64
            my, mx = np.nonzero(mask)
            assert abs(my.mean() - cy) < 4 and abs(mx.mean() - cx) < 4      # where the defect is
