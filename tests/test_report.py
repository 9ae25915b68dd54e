"""The comparison report: reads what notebooks wrote, refuses mismatched test sets, exports the table."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers import metrics as M
from helpers import runs
from helpers import report


DATA = {"builtin": True, "name": "built-in", "root": "/data", "manifest_hash": "m1", "split_hash": "s1"}


def _write(runs, folder, file, scores, threshold=None, data=DATA):
    d = runs / folder
    d.mkdir(parents=True, exist_ok=True)
    scores.to_csv(d / file, index=False)
    if threshold is not None:
        record = M.metrics_record(folder, folder, "shared-split", "smoke", {"test": 4}, threshold, "f1",
                                  {"roc_auc": 0.5}, data=data)
        M.write_metrics(record, runs)


def _scores(seed, paths=None):
    rng = np.random.default_rng(seed)
    paths = paths or [f"c/test/{i}.png" for i in range(20)]
    label = np.array([i % 3 == 0 for i in range(len(paths))], int)
    rows = []
    for split in ("val", "test"):
        score = label * 0.6 + rng.random(len(paths)) * 0.5
        rows.append(pd.DataFrame({"path": [f"{split}/{p}" for p in paths], "category": ["a", "b"] * (len(paths) // 2),
                                  "label": label, "split": split, "score": score}))
    return pd.concat(rows, ignore_index=True)


def test_table_uses_each_notebooks_val_threshold(tmp_path):
    sup = _scores(0)
    _write(tmp_path, runs.SUPERVISED, "scores.csv", sup, threshold=0.55)
    knn = _scores(1)
    _write(tmp_path, runs.PROBE, "scores_knn1.csv", knn)
    found, missing = report.load_approaches(tmp_path)
    assert [a.name for a in found] == ["Supervised ResNet-50", "SimCLR kNN (k=1)"]
    assert any(f"{runs.KERAS}.ipynb first" in m for m in missing)
    assert any(f"{runs.PATCHCORE}.ipynb first" in m for m in missing)
    assert report.check_same_test_images(found) == 20
    table = report.comparison_table(found).set_index("approach")
    test = sup[sup["split"] == "test"]
    expected = M.binary_metrics(test["label"], test["score"], 0.55)
    assert table.loc["Supervised ResNet-50", "f1"] == pytest.approx(expected["f1"])
    assert table.loc["Supervised ResNet-50", "threshold"] == 0.55
    kval = knn[knn["split"] == "val"]
    assert table.loc["SimCLR kNN (k=1)", "threshold"] == pytest.approx(M.choose_threshold(kval["label"], kval["score"]))
    assert "on val" in table.loc["SimCLR kNN (k=1)", "threshold chosen"]
    heat = report.category_auroc(found)
    assert heat.shape == (2, 2) and heat.notna().all().all()
    out = report.export(tmp_path, report.comparison_table(found), heat, report.localisation(tmp_path),
                        {"n_test": 20, "profile": "smoke", "data": "test"})
    md = out.read_text()
    assert "| Supervised ResNet-50 |" in md and "as reported, on the study's training data" in md
    assert pd.read_csv(tmp_path / "report" / "comparison.csv").shape[0] == 2


def test_different_test_images_are_refused(tmp_path):
    _write(tmp_path, runs.SUPERVISED, "scores.csv", _scores(0), threshold=0.5)
    other = _scores(1, paths=[f"c/test/{i}.png" for i in range(1, 21)])
    _write(tmp_path, runs.KERAS, "scores.csv", other, threshold=0.5)
    found, _ = report.load_approaches(tmp_path)
    with pytest.raises(ValueError, match="different test images"):
        report.check_same_test_images(found)


def test_runs_on_different_data_or_splits_are_refused(tmp_path):
    _write(tmp_path, runs.SUPERVISED, "scores.csv", _scores(0), threshold=0.5)
    _write(tmp_path, runs.KERAS, "scores.csv", _scores(0), threshold=0.5)
    assert report.check_same_data(tmp_path) == DATA
    assert report.check_same_data(tmp_path, expected=DATA) == DATA
    with pytest.raises(ValueError, match="different data or splits"):
        report.check_same_data(tmp_path, expected=dict(DATA, split_hash="s2"))       # this run's split differs
    real = dict(DATA, builtin=False, name="MVTec AD", root="/mvtec", manifest_hash="m9")
    _write(tmp_path, runs.PATCHCORE, "scores.csv", _scores(0), threshold=0.5, data=real)
    with pytest.raises(ValueError, match=r"(?s)different data.*built-in at /data.*MVTec AD at /mvtec \(manifest m9"):
        report.check_same_data(tmp_path)


def test_localisation_reads_gradcam_and_patchcore(tmp_path):
    d = tmp_path / runs.EXPLAIN
    d.mkdir()
    pd.DataFrame([{"model": "m", "category": "(all)", "n": 3, "pixel_auroc": 0.7, "pointing_hit": 0.33},
                  {"model": "m", "category": "a", "n": 3, "pixel_auroc": 0.7, "pointing_hit": 0.33}]).to_csv(
        d / "localisation.csv", index=False)
    rec = M.metrics_record(runs.PATCHCORE, "PatchCore", "shared-split", "smoke", {"test": 4}, 1.0, "f1",
                           {"roc_auc": 0.9}, pd.DataFrame([{"category": "a", "n_defective": 2}]),
                           extra={"pixel_auroc_mean": 0.95, "pointing_hit_mean": 0.5}, data=DATA)
    M.write_metrics(rec, tmp_path)
    loc = report.localisation(tmp_path).set_index("maps")
    assert loc.loc["Grad-CAM: m", "pixel_auroc"] == 0.7
    assert loc.loc["PatchCore anomaly map", "pointing_game"] == 0.5 and loc.loc["PatchCore anomaly map", "n"] == 2
    assert json.loads((tmp_path / runs.PATCHCORE / "metrics.json").read_text())["approach"] == "PatchCore"
