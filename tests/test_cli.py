"""``python -m helpers prepare``: writes the files, fails only when nothing usable was found."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers.core import layout

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_prepare_writes_outputs(synthetic_copy, tmp_path):
    (synthetic_copy / "bottle/test/good/broken.png").write_bytes(b"")
    runs_dir = tmp_path / "runs_dir"
    res = _run("prepare", "--data", str(synthetic_copy), "--runs", str(runs_dir), "--size", "24")
    assert res.returncode == 0, res.stderr
    manifest = pd.read_csv(runs_dir / "manifest.csv")
    assert list(manifest.columns[:3]) == ["path", "category", "mvtec_split"]
    split = pd.read_csv(runs_dir / "split.csv")
    assert set(split["split"]) == {"train", "val", "test"} and {"label", "category"} <= set(split.columns)
    q = pd.read_csv(runs_dir / "quarantine.csv")
    assert q.to_dict("records") == [{"path": "bottle/test/good/broken.png", "reason": "empty file (0 bytes)"}]
    assert "bottle/test/good/broken.png: empty file" in res.stdout
    assert any((runs_dir / "cache").glob("*_24/images.npy"))


def test_prepare_fails_clearly(tmp_path):
    res = _run("prepare", "--data", str(tmp_path), "--runs", str(tmp_path / "r"))
    assert res.returncode == 2 and "neither an MVTec AD root nor a folder of sorted photos" in res.stderr
    bad = tmp_path / "mvtec" / "wood" / "train" / "good"
    bad.mkdir(parents=True)
    (bad / "000.png").write_text("nope")
    res = _run("prepare", "--data", str(tmp_path / "mvtec"), "--runs", str(tmp_path / "r2"))
    assert res.returncode == 2 and "No usable image" in res.stderr


@pytest.mark.slow
def test_oneclass_writes_the_notebooks_metrics(synthetic_root, tmp_path):
    import json

    runs_dir = tmp_path / "runs_dir"
    res = _run("oneclass", "--data", str(synthetic_root), "--runs", str(runs_dir), "--profile", "smoke",
               "--categories", "bottle", "carpet")
    assert res.returncode == 0, res.stderr
    out = runs_dir / layout.PATCHCORE
    record = json.loads((out / "metrics.json").read_text())
    assert record["protocol"] == "shared-split" and record["extra"]["backbone"] == "efficientnet_lite0"
    std = pd.DataFrame(record["extra"]["mvtec_standard"]["per_category"])
    assert std["category"].tolist() == ["bottle", "carpet"] and std["image_auroc"].notna().all()
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["split"]) == {"val", "test"} and set(scores["category"]) == {"bottle", "carpet"}
    assert "MVTec standard protocol" in res.stdout
    bad = _run("oneclass", "--data", str(synthetic_root), "--runs", str(runs_dir), "--profile", "smoke",
               "--categories", "spaceship")
    assert bad.returncode == 2 and "categories not in the data: ['spaceship']" in bad.stderr


@pytest.mark.slow
def test_train_runs_a_notebooks_training_in_one_process_and_under_torchrun(synthetic_root, tmp_path):
    """``python -m helpers train supervised`` writes what notebook 01 writes; under torchrun (2 processes, gloo)
    too, once (rank 0), with each global batch split over the processes."""
    import json

    for name, launcher in (("one", [sys.executable]),
                           ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])):
        runs_dir = tmp_path / name
        res = subprocess.run([*launcher, "-m", "helpers", "train", "supervised", "--data", str(synthetic_root), "--runs",
                              str(runs_dir), "--profile", "smoke"], cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
        record = json.loads((runs_dir / layout.SUPERVISED / "metrics.json").read_text())
        assert record["labels_used"]["defect_labels_for_training"] > 0
        card = json.loads((runs_dir / layout.SUPERVISED / "model_card.json").read_text())
        assert card["threshold"]["value"] == record["threshold"]["value"] and card["input"]["image_size"] == 64
        assert card["data"]["split_hash"] == record["data"]["split_hash"]
        processes = "2 processes" if name == "two" else "1 process"
        assert res.stdout.count("Supervised classifier: test AUROC") == 1 and processes in res.stdout
    res = _run("train", "multitask", "--runs", str(tmp_path / "missing"), "--profile", "smoke", "--data", str(tmp_path))
    assert res.returncode == 2 and "neither an MVTec AD root nor a folder of sorted photos" in res.stderr
