"""``python -m helpers prepare``: writes the files, fails only when nothing usable was found."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import runs

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
    assert res.returncode == 2 and "not an MVTec AD root" in res.stderr
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
    out = runs_dir / runs.PATCHCORE
    record = json.loads((out / "metrics.json").read_text())
    assert record["protocol"] == "shared-split" and "efficientnet-lite0" in record["extra"]["backbone"]
    std = pd.DataFrame(record["extra"]["mvtec_standard"]["per_category"])
    assert std["category"].tolist() == ["bottle", "carpet"] and std["image_auroc"].notna().all()
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["split"]) == {"val", "test"} and set(scores["category"]) == {"bottle", "carpet"}
    assert "MVTec standard protocol" in res.stdout
    bad = _run("oneclass", "--data", str(synthetic_root), "--runs", str(runs_dir), "--profile", "smoke",
               "--categories", "spaceship")
    assert bad.returncode == 2 and "categories not in the data: ['spaceship']" in bad.stderr
