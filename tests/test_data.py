"""Scanning and validation: every bad file is listed with its reason, nothing else is lost."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.data.images import inspect_image, load_rgb
from helpers.data.scan import scan_mvtec
from helpers.errors import DatasetLayoutError


def _reason(scan, rel: str) -> str:
    rows = scan.quarantine[scan.quarantine["path"] == rel]
    assert len(rows) == 1, f"{rel} not quarantined; quarantine = {scan.quarantine.to_dict('records')}"
    return rows.iloc[0]["reason"]


def _warning(scan, rel: str) -> str:
    rows = scan.warnings[scan.warnings["path"] == rel]
    assert len(rows) >= 1, f"no warning for {rel}; warnings = {scan.warnings.to_dict('records')}"
    return " | ".join(rows["warning"])


def test_clean_tree_scans_completely(synthetic_root, small_spec):
    scan = scan_mvtec(synthetic_root, progress=False)
    n_png = sum(1 for p in synthetic_root.rglob("*.png") if "ground_truth" not in p.parts)
    assert len(scan.manifest) == n_png
    assert scan.quarantine.empty
    assert scan.warnings.empty
    m = scan.manifest
    assert set(m["mvtec_split"]) == {"train", "test"}
    assert (m.loc[m["defect_type"] == "good", "label"] == 0).all()
    assert (m.loc[m["defect_type"] != "good", "label"] == 1).all()
    # every defective image is paired with its own mask by name
    bad = m[m["label"] == 1]
    assert (bad["mask_path"] != "").all()
    for _, row in bad.iterrows():
        assert row["mask_path"] == f"{row['category']}/ground_truth/{row['defect_type']}/{Path(row['path']).stem}_mask.png"
    assert set(m.loc[m["category"].isin(["grid", "screw"]), "mode"]) == {"L"}
    assert m["content_hash"].str.len().eq(64).all()


def _png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode or Image.fromarray(arr).mode).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_files_are_quarantined_with_reasons(synthetic_copy):
    root = synthetic_copy
    good_dir = root / "bottle" / "test" / "good"
    n_before = len(scan_mvtec(root, progress=False).manifest)
    (good_dir / "zero.png").write_bytes(b"")
    full = (good_dir / "000.png").read_bytes()
    (good_dir / "truncated.png").write_bytes(full[: len(full) // 2])
    (good_dir / "text.png").write_text("this is not an image, just text pretending to be one\n" * 3)
    Image.new("RGB", (1, 1), (10, 20, 30)).save(good_dir / "tiny.png")
    (good_dir / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 100)
    (good_dir / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
    (good_dir / "notes.txt").write_text("hello")
    scan = scan_mvtec(root, progress=False)
    assert "empty file" in _reason(scan, "bottle/test/good/zero.png")
    assert "corrupt or truncated" in _reason(scan, "bottle/test/good/truncated.png")
    assert "not a decodable image" in _reason(scan, "bottle/test/good/text.png")
    assert "too small" in _reason(scan, "bottle/test/good/tiny.png")
    assert "system metadata" in _reason(scan, "bottle/test/good/.DS_Store")
    assert "system metadata" in _reason(scan, "bottle/test/good/Thumbs.db")
    assert "unsupported extension" in _reason(scan, "bottle/test/good/notes.txt")
    assert len(scan.quarantine) == 7
    assert len(scan.manifest) == n_before  # nothing else lost


def test_png_with_bad_crc_is_quarantined(synthetic_copy):
    path = synthetic_copy / "bottle" / "train" / "good" / "000.png"
    data = bytearray(path.read_bytes())
    idat = data.find(b"IDAT")
    data[idat + 10] ^= 0xFF  # flip bits inside the compressed data: header intact, pixels broken
    path.write_bytes(bytes(data))
    info = inspect_image(path)
    assert not info["ok"] and "corrupt" in info["reason"]


def test_rgba_and_16bit_are_converted_kept_and_listed(synthetic_copy):
    root = synthetic_copy
    d = root / "carpet" / "train" / "good"
    rgba = np.dstack([np.full((64, 64, 3), 120, np.uint8), np.full((64, 64), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
    sixteen = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    Image.fromarray(sixteen).save(d / "deep.png")
    assert Image.open(d / "deep.png").mode.startswith("I")
    scan = scan_mvtec(root, progress=False)
    m = scan.manifest.set_index("path")
    assert m.loc["carpet/train/good/rgba.png", "mode"] == "RGBA"
    assert "alpha" in _warning(scan, "carpet/train/good/rgba.png")
    assert "16-bit" in _warning(scan, "carpet/train/good/deep.png") or "32-bit" in _warning(scan, "carpet/train/good/deep.png")
    arr = load_rgb(d / "deep.png")
    assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8
    assert arr.max() > 200 and arr.min() < 10  # rescaled across the range, not clipped to 255
    assert load_rgb(d / "rgba.png").shape == (64, 64, 3)


def test_grayscale_loads_as_three_channels(synthetic_root):
    arr = load_rgb(synthetic_root / "grid" / "train" / "good" / "000.png")
    assert arr.shape == (64, 64, 3)
    assert (arr[..., 0] == arr[..., 1]).all()


def test_structure_problems_are_warnings_not_losses(synthetic_copy):
    root = synthetic_copy
    (root / "zipper" / "test" / "good").mkdir(parents=True)   # category without train/, empty split dir
    (root / "cable").mkdir()                                  # an empty category folder
    (root / "wood" / "train").mkdir(parents=True)             # a category whose only split is empty
    (root / "carpet" / "test" / "empty_defect").mkdir()
    mask = root / "bottle" / "ground_truth" / "broken_large" / "000_mask.png"
    mask.unlink()                                            # defective image without mask
    Image.new("L", (64, 64)).save(root / "bottle" / "ground_truth" / "broken_large" / "099_mask.png")
    scan = scan_mvtec(root, progress=False)
    assert "no train/" in _warning(scan, "zipper/")
    assert "empty category folder" in _warning(scan, "cable/")
    assert "empty folder" in _warning(scan, "wood/train/")
    assert "empty folder" in _warning(scan, "zipper/test/good/")
    assert "empty folder" in _warning(scan, "carpet/test/empty_defect/")
    assert "without a ground-truth mask" in _warning(scan, "bottle/test/broken_large/000.png")
    assert "without a matching image" in _warning(scan, "bottle/ground_truth/broken_large/099_mask.png")
    row = scan.manifest.set_index("path").loc["bottle/test/broken_large/000.png"]
    assert row["label"] == 1 and row["mask_path"] == ""      # kept, just not pixel-scorable
    assert scan.quarantine.empty


def test_duplicate_contents_are_flagged(synthetic_copy):
    d = synthetic_copy / "bottle" / "train" / "good"
    (d / "copy.png").write_bytes((d / "000.png").read_bytes())
    scan = scan_mvtec(synthetic_copy, progress=False)
    assert "identical bytes" in _warning(scan, "bottle/train/good/copy.png")


def test_wrong_root_says_what_was_expected_and_found(tmp_path, synthetic_root):
    (tmp_path / "photos").mkdir()
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(DatasetLayoutError) as err:
        scan_mvtec(tmp_path, progress=False)
    msg = str(err.value)
    assert "Expected an MVTec AD root" in msg and "photos/" in msg and "readme.md" in msg
    with pytest.raises(DatasetLayoutError, match="single category folder"):
        scan_mvtec(synthetic_root / "bottle", progress=False)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        scan_mvtec(tmp_path / "nope", progress=False)
    with pytest.raises(DatasetLayoutError, match="looks like an MVTec root"):
        scan_mvtec(synthetic_root.parent, progress=False)


def test_inspect_image_accepts_a_valid_png(tmp_path):
    path = tmp_path / "ok.png"
    path.write_bytes(_png_bytes(np.zeros((40, 50, 3), np.uint8)))
    info = inspect_image(path)
    assert info["ok"] and (info["width"], info["height"], info["mode"]) == (50, 40, "RGB")
    # sanity of the helper used above
    assert struct.unpack(">I", path.read_bytes()[16:20])[0] == 50 and zlib.crc32(b"") == 0
