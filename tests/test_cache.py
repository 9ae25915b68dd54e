"""The memory-mapped cache holds what decoding + resizing gives, and follows data changes."""
from __future__ import annotations

import numpy as np
from PIL import Image

from helpers.data.cache import build_cache, manifest_hash
from helpers.data.images import load_rgb
from helpers.data.scan import scan_mvtec


def test_cache_matches_decode_and_is_reused(synthetic_root, tmp_path):
    manifest = scan_mvtec(synthetic_root, progress=False).manifest
    cache = build_cache(manifest, synthetic_root, 32, tmp_path, progress=False)
    assert cache.images.shape == (len(manifest), 32, 32, 3) and cache.images.dtype == np.uint8
    assert isinstance(cache.images, np.memmap)
    i = int(np.flatnonzero(manifest["category"] == "grid")[0])
    expected = np.asarray(Image.fromarray(load_rgb(synthetic_root / manifest.at[i, "path"]))
                          .resize((32, 32), Image.BILINEAR, reducing_gap=3.0))
    np.testing.assert_array_equal(cache.images[i], expected)
    # masks: present for defective images, zero for good ones
    j = int(np.flatnonzero(manifest["mask_path"] != "")[0])
    assert cache.masks[j].any() and set(np.unique(cache.masks[j])) <= {0, 1}
    assert not cache.masks[manifest["label"].to_numpy() == 0].any()
    again = build_cache(manifest, synthetic_root, 32, tmp_path, progress=False)
    assert again.directory == cache.directory
    assert not list(tmp_path.glob("*.tmp"))


def test_cache_key_changes_with_data_and_size(synthetic_copy, tmp_path):
    manifest = scan_mvtec(synthetic_copy, progress=False).manifest
    key = manifest_hash(manifest)
    assert manifest_hash(manifest.iloc[::-1]) == key  # order does not matter
    a = build_cache(manifest, synthetic_copy, 24, tmp_path, progress=False)
    b = build_cache(manifest, synthetic_copy, 16, tmp_path, progress=False)
    assert a.directory != b.directory
    img = np.array(Image.open(synthetic_copy / "bottle/train/good/000.png"))
    Image.fromarray(255 - img).save(synthetic_copy / "bottle/train/good/000.png")
    changed = scan_mvtec(synthetic_copy, progress=False).manifest
    assert manifest_hash(changed) != key
    c = build_cache(changed, synthetic_copy, 24, tmp_path, progress=False)
    assert c.directory != a.directory
    row = c.indices(["bottle/train/good/000.png"])[0]
    assert not np.array_equal(c.images[row], a.images[a.indices(["bottle/train/good/000.png"])[0]])
