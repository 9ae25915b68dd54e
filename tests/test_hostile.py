"""Faults and hostile input: links, pipes, unreadable folders, odd names, huge headers, impossible masks,
damaged state, non-finite losses, two runs at once, an unusable RUNS_DIR. Each case is a message or a
listed exclusion, never a silent change and never a traceback where a message belongs."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers import errors
from helpers.core import files
from helpers.data.images import inspect_image, judge_mask, load_mask
from helpers.data.scan import scan_mvtec

ROOT = Path(__file__).resolve().parents[1]


def _reason(scan, rel: str) -> str:
    rows = scan.quarantine[scan.quarantine["path"] == rel]
    assert len(rows) == 1, f"{rel} not quarantined; quarantine = {scan.quarantine.to_dict('records')}"
    return rows.iloc[0]["reason"]


def _all_text(scan) -> str:
    return scan.quarantine.to_csv() + scan.warnings.to_csv() + scan.manifest.to_csv()


# --------------------------------------------------------------------------------------------------
# 3. Links and files that are not regular files
# --------------------------------------------------------------------------------------------------
def test_links_are_listed_with_their_target_and_never_followed(synthetic_copy, tmp_path):
    root = synthetic_copy
    before = scan_mvtec(root, progress=False).manifest
    outside = tmp_path / "outside"
    outside.mkdir()
    good_png = next((root / "bottle" / "test" / "good").glob("*.png"))
    shutil.copy(good_png, outside / "000.png")
    (outside / "secret.txt").write_text("TOP-SECRET-CONTENT")
    test_dir = root / "bottle" / "test"
    (test_dir / "outside_defect").symlink_to(outside, target_is_directory=True)     # leaves the root
    (test_dir / "loop").symlink_to(test_dir, target_is_directory=True)              # back into the tree
    (test_dir / "good" / "dangling.png").symlink_to(tmp_path / "does-not-exist.png")
    (test_dir / "good" / "secret.png").symlink_to(outside / "secret.txt")
    (test_dir / "good" / "copy.png").symlink_to(good_png)                            # a second name for one image
    (root / "linked_category").symlink_to(root / "bottle", target_is_directory=True)

    scan = scan_mvtec(root, progress=False)
    assert scan.manifest["path"].tolist() == before["path"].tolist()   # nothing added, nothing lost
    for rel, target in (("bottle/test/outside_defect", outside), ("bottle/test/loop", test_dir),
                        ("bottle/test/good/dangling.png", tmp_path / "does-not-exist.png"),
                        ("bottle/test/good/secret.png", outside / "secret.txt"),
                        ("bottle/test/good/copy.png", good_png), ("linked_category", root / "bottle")):
        reason = _reason(scan, rel)
        assert "symbolic link" in reason and str(target) in reason and "not followed" in reason
    assert "TOP-SECRET" not in _all_text(scan)                         # no foreign bytes in the outputs


def test_a_fifo_is_listed_not_opened(synthetic_copy):
    fifo = synthetic_copy / "bottle" / "test" / "good" / "pipe.png"
    os.mkfifo(fifo)                                                     # opening it for reading would block
    scan = scan_mvtec(synthetic_copy, progress=False)
    assert "named pipe (FIFO), not a regular file" in _reason(scan, "bottle/test/good/pipe.png")
    assert "bottle/test/good/pipe.png" not in set(scan.manifest["path"])


def test_unreadable_folders_are_listed_and_the_scan_goes_on(synthetic_copy, monkeypatch):
    """Tests run as root in CI, where chmod cannot make a folder unreadable: the refusal is simulated."""
    root = synthetic_copy
    blocked = {root / "bottle" / "test", root / "grid" / "ground_truth", root / "screw" / "train" / "good"}
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) in blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_mvtec(root, progress=False)
    for rel in ("bottle/test/", "grid/ground_truth/", "screw/train/good/"):
        assert _reason(scan, rel) == "folder cannot be read (Permission denied): nothing in it was scanned"
    m = scan.manifest
    assert not ((m["category"] == "bottle") & (m["mvtec_split"] == "test")).any()
    assert (m.loc[m["category"] == "grid", "mask_path"] == "").all()          # no masks could be read
    assert len(m[m["category"] == "carpet"]) > 0                              # the rest is scanned as usual
    assert not scan.warnings["path"].eq("bottle/test/").any()                 # not reported as "empty"


def test_an_unreadable_file_says_so(synthetic_copy, monkeypatch):
    target = next((synthetic_copy / "bottle" / "train" / "good").glob("*.png"))
    real_open = Image.open

    def refuse(fp, *args, **kwargs):
        if Path(fp) == target:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", refuse)
    assert inspect_image(target)["reason"] == "file cannot be read (Permission denied)"


# --------------------------------------------------------------------------------------------------
# 4. Masks that cannot be right
# --------------------------------------------------------------------------------------------------
def test_mask_content_is_checked(synthetic_copy):
    root = synthetic_copy
    masks = sorted((root / "bottle" / "ground_truth").rglob("*_mask.png"))
    empty, zero_one, constant = masks[:3]
    original = load_mask(zero_one)
    Image.fromarray(np.zeros_like(original)).save(empty)
    Image.fromarray(original).save(zero_one)                      # 0/1 values, a common export
    Image.fromarray(np.full_like(original, 255)).save(constant)
    scan = scan_mvtec(root, progress=False)
    by_mask = lambda mask: scan.manifest[scan.manifest["path"] == _image_of(root, mask)].iloc[0]  # noqa: E731
    warnings = dict(zip(scan.warnings["path"], scan.warnings["warning"]))
    assert by_mask(empty)["mask_path"] == ""
    assert "mask is empty" in warnings[_image_of(root, empty)]
    assert by_mask(constant)["mask_path"] == ""
    assert "every pixel defective" in warnings[_image_of(root, constant)]
    assert by_mask(zero_one)["mask_path"] != ""
    assert "0/1" in warnings[_image_of(root, zero_one)]
    assert original.any() and np.array_equal(load_mask(zero_one), original)   # read as the same binary mask


def _image_of(root: Path, mask: Path) -> str:
    return f"bottle/test/{mask.parent.name}/{mask.name.replace('_mask', '')}"


@pytest.mark.parametrize("values, usable, note", [
    (np.array([[0, 255], [0, 0]]), True, ""),
    (np.array([[0, 1], [0, 0]]), True, "0/1"),
    (np.array([[0, 0], [0, 0]]), False, "empty"),
    (np.array([[255, 255], [255, 255]]), False, "every pixel"),
    (np.array([[0, 100], [0, 0]]), False, "empty"),                    # nothing above the 0/255 threshold
    (np.array([[0, 130], [200, 0]]), True, "3 grey levels"),
])
def test_judge_mask(values, usable, note):
    ok, said = judge_mask(values.astype(np.uint8))
    assert ok is usable and note in said and (said == "") == (note == "")


# --------------------------------------------------------------------------------------------------
# 5. Odd names and big images
# --------------------------------------------------------------------------------------------------
def test_a_name_that_is_not_utf8_is_quarantined_and_prepare_completes(synthetic_copy, tmp_path):
    from helpers.core.config import get_config
    from helpers.data.prepare import prepare

    good = synthetic_copy / "bottle" / "train" / "good"
    data = next(good.glob("*.png")).read_bytes()
    with open(os.path.join(os.fsencode(good), b"bad\xff-name.png"), "wb") as fh:
        fh.write(data)
    os.mkdir(os.path.join(os.fsencode(synthetic_copy / "carpet" / "test"), b"defect\xfe"))
    prepared = prepare(get_config("smoke", data_dir=synthetic_copy, runs_dir=tmp_path / "runs"), progress=False)
    q = pd.read_csv(tmp_path / "runs" / "quarantine.csv")
    reasons = dict(zip(q["path"], q["reason"]))
    assert "not valid UTF-8" in reasons["bottle/train/good/bad\\xff-name.png"]
    assert "nothing in the folder was scanned" in reasons["carpet/test/defect\\xfe"]
    assert len(prepared.manifest) > 0


def _png_with_declared_size(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width × height`` (the pixel data is far too short for it)."""
    import io

    buf = io.BytesIO()
    Image.new("L", (40, 40)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_huge_header_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_with_declared_size(12_000, 12_000))
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1) or real_load(self))
    info = inspect_image(path)
    assert not info["ok"] and "image too large (12000×12000 px" in info["reason"] and "not decoded" in info["reason"]
    assert not decoded


def test_reasons_never_quote_file_bytes(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("password=hunter2 " * 10)
    reason = inspect_image(path)["reason"]
    assert "hunter2" not in reason and "plain text" in reason


# --------------------------------------------------------------------------------------------------
# 6. Damaged state
# --------------------------------------------------------------------------------------------------
def _tiny_fit(ckpt: Path, epochs: int, nan_at_call: int | None = None):
    from helpers.training.loop import Resuming, Stepping, fit

    torch.manual_seed(0)
    head = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader([{"image": torch.randn(8, 4), "label": torch.randint(0, 2, (8,))}],
                                         batch_size=None)
    calls = []

    def step(m, b):
        calls.append(1)
        x = b["image"] * (float("nan") if len(calls) == nan_at_call else 1.0)   # e.g. a NaN pixel in a batch
        return torch.nn.functional.cross_entropy(m(x), b["label"])

    return fit(head, opt, loader, step, lambda m: {"val_loss": 0.0}, epochs, resuming=Resuming(ckpt),
               stepping=Stepping(clip_grad=None), progress=False)


def test_a_checkpoint_with_corrupted_weights_is_refused(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    _tiny_fit(ckpt, 1)
    state = torch.load(ckpt, weights_only=True)
    state["model"]["weight"][0, 1] = float("nan")
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match=r"ckpt.pt is damaged: 1 weight tensors hold NaN.*Move it aside"):
        _tiny_fit(ckpt, 2)


def test_a_non_finite_loss_stops_training_with_the_way_out(tmp_path):
    from helpers.errors import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match=r"loss is nan at batch 1 of epoch 3/5.*Lower the learning rate.*"
                                                 r"last good state is in checkpoint .*ckpt.pt"):
        _tiny_fit(tmp_path / "ckpt.pt", 5, nan_at_call=3)


def test_keras_stops_on_a_non_finite_loss():
    from helpers.errors import NonFiniteLossError
    from helpers.training.keras_fit import stop_on_non_finite_loss

    callback = stop_on_non_finite_loss()
    callback.on_train_batch_end(0, {"loss": 0.7})
    with pytest.raises(NonFiniteLossError, match="loss is nan at batch 4"):
        callback.on_train_batch_end(3, {"loss": float("nan")})


def test_a_damaged_manifest_is_blamed_on_itself(synthetic_root, tmp_path):
    from helpers.core.config import get_config
    from helpers.data.prepare import load_prepared, prepare
    from helpers.errors import PreparedStateError

    cfg = get_config("smoke", data_dir=synthetic_root, runs_dir=tmp_path / "runs")
    prepare(cfg, progress=False)
    manifest = cfg.runs_dir / "manifest.csv"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])                          # a copy cut short
    with pytest.raises(PreparedStateError, match=r"manifest.csv is not the manifest notebook 00 wrote.*"
                                                 r"Run notebook 00 again") as err:
        load_prepared(cfg)
    assert "split.csv is kept" in str(err.value)
    manifest.write_bytes(b"\x00\xff garbage")
    with pytest.raises(PreparedStateError, match="manifest.csv cannot be read"):
        load_prepared(cfg)
    prepare(cfg, progress=False)                                         # the way out works
    assert len(load_prepared(cfg).manifest) == text.count("\n") - 1


def test_writes_are_atomic(tmp_path):
    target = tmp_path / "table.csv"
    files.write_csv(pd.DataFrame({"a": [1, 2]}), target)

    class Broken(pd.DataFrame):
        def to_csv(self, path, **kwargs):
            Path(path).write_text("a\n1\n")                              # half written, then the crash
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_csv(Broken({"a": [9, 9, 9]}), target)
    assert pd.read_csv(target)["a"].tolist() == [1, 2]                   # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]   # no temporary left behind


# --------------------------------------------------------------------------------------------------
# 7. Two runs at once
# --------------------------------------------------------------------------------------------------
def test_two_prepares_on_one_runs_folder(tmp_path):
    """Both complete, and agree: unique temporary names, atomic renames (the built-in data, the cache, the split)."""
    code = ("from helpers.core.config import get_config; from helpers.data.prepare import prepare; "
            "prepare(get_config('smoke'), cache_sizes=(48, 64), progress=False)")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DEFECTS_")}, "RUNS_DIR": str(tmp_path / "runs"),
           "MVTEC_DIR": ""}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n\n".join(outputs)
    runs = tmp_path / "runs"
    caches = sorted(p.name for p in (runs / "cache").iterdir())
    assert len(caches) == 2 and not any(name.endswith(".tmp") for name in caches)
    assert not [p for p in runs.rglob("*.tmp")]
    from helpers.core.config import get_config
    from helpers.data.prepare import load_prepared

    assert len(load_prepared(get_config("smoke", runs_dir=runs)).split) > 0


# --------------------------------------------------------------------------------------------------
# 8. An unusable RUNS_DIR
# --------------------------------------------------------------------------------------------------
def test_runs_dir_that_is_a_file(tmp_path):
    from helpers.core.config import get_config

    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(errors.RunsDirError, match=r"RUNS_DIR=.*runs cannot be used: it is a file, not a folder"):
        get_config("smoke", runs_dir=tmp_path / "runs")
    with pytest.raises(errors.RunsDirError, match=r"runs, on its way, is a file"):
        get_config("smoke", runs_dir=tmp_path / "runs" / "sub")


def test_runs_dir_that_cannot_be_written(tmp_path, monkeypatch):
    """Simulated (tests run as root, who can write anywhere): the first write is refused."""
    from helpers.core.config import get_config

    def refuse(*args, **kwargs):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    with pytest.raises(errors.RunsDirError, match=r"cannot be written \(PermissionError: Read-only file system\)"):
        get_config("smoke", runs_dir=tmp_path / "ro")


def test_cli_prints_a_message_not_a_traceback(tmp_path):
    (tmp_path / "runs").write_text("")
    out = subprocess.run([sys.executable, "-m", "helpers", "prepare", "--runs", str(tmp_path / "runs")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "is a file, not a folder" in out.stderr
