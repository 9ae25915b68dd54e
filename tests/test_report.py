"""The comparison report: reads what notebooks wrote, refuses mismatched test sets, exports the table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.artefacts import record as R
from helpers.core import layout
from helpers.evaluation import metrics as M
from helpers.workflows import report

DATA = {"builtin": True, "name": "built-in", "root": "/data", "manifest_hash": "m1", "split_hash": "s1"}


def _write(runs, folder, file, scores, threshold=None, data=DATA):
    d = runs / folder
    d.mkdir(parents=True, exist_ok=True)
    scores.to_csv(d / file, index=False)
    if threshold is not None:
        record = R.metrics_record(folder, folder, "shared-split", "smoke", {"test": 4}, threshold, "f1",
                                  {"roc_auc": 0.5}, data=data,
                                  labels_used={"defect_labels_for_training": 120, "labels_to_select_good": 0,
                                               "val_labels": 30, "val_labels_for": "early stopping, threshold"})
        R.write_metrics(record, runs)


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
    _write(tmp_path, layout.SUPERVISED, "scores.csv", sup, threshold=0.55)
    knn = _scores(1)
    knn.loc[knn["category"] == "b", "score"] += 10.0          # a distance on a scale of its own in category b
    _write(tmp_path, layout.PROBE, "scores_knn1.csv", knn)
    found, missing = report.load_approaches(tmp_path)
    assert [a.name for a in found] == ["Supervised classifier", "SimCLR kNN (k=1)"]
    assert any(f"{layout.KERAS}.ipynb first" in m for m in missing)
    assert any(f"{layout.PATCHCORE}.ipynb first" in m for m in missing)
    assert report.check_same_test_images(found) == 20
    table = report.comparison_table(found).set_index("approach")
    test = sup[sup["split"] == "test"]
    expected = M.binary_metrics(test["label"], test["score"], 0.55)
    assert table.loc["Supervised classifier", "f1"] == pytest.approx(expected["f1"])
    assert table.loc["Supervised classifier", "threshold"] == 0.55
    assert table.loc["Supervised classifier", report.LABEL_COLUMNS].tolist() == [120, 0, "30 (early stopping, threshold)"]
    # kNN: a threshold per category on that category's val rows; pooled metrics on per-category-normalised scores
    pred, truth = [], []
    for _, g in knn.groupby("category"):
        val, tst = g[g["split"] == "val"], g[g["split"] == "test"]
        pred += (tst["score"] >= M.choose_threshold(val["label"], val["score"])).astype(int).tolist()
        truth += tst["label"].tolist()
    from sklearn.metrics import f1_score, roc_auc_score

    k = table.loc["SimCLR kNN (k=1)"]
    assert k["threshold"] == 0.5 and "per category" in k["threshold chosen"]
    assert k["f1"] == pytest.approx(f1_score(truth, pred))
    ktest = knn[knn["split"] == "test"]
    raw_pooled = roc_auc_score(ktest["label"], ktest["score"])
    per_cat = np.mean([roc_auc_score(g["label"], g["score"]) for _, g in ktest.groupby("category")])
    assert k["category AUROC (mean)"] == pytest.approx(per_cat)
    assert k["roc_auc"] > raw_pooled + 0.1                    # pooling raw distances across scales understates it
    heat = report.category_auroc(found)
    assert heat.shape == (2, 2) and heat.notna().all().all()
    out = report.export(tmp_path, report.comparison_table(found), heat, report.localisation(tmp_path),
                        {"n_test": 20, "profile": "smoke", "data": "test"})
    md = out.read_text()
    assert "| Supervised classifier |" in md and "as reported, on the study's training data" in md
    assert pd.read_csv(tmp_path / "report" / "comparison.csv").shape[0] == 2


def test_different_test_images_are_refused(tmp_path):
    _write(tmp_path, layout.SUPERVISED, "scores.csv", _scores(0), threshold=0.5)
    other = _scores(1, paths=[f"c/test/{i}.png" for i in range(1, 21)])
    _write(tmp_path, layout.KERAS, "scores.csv", other, threshold=0.5)
    found, _ = report.load_approaches(tmp_path)
    with pytest.raises(ValueError, match="different test images"):
        report.check_same_test_images(found)


def test_runs_on_different_data_or_splits_are_refused(tmp_path):
    _write(tmp_path, layout.SUPERVISED, "scores.csv", _scores(0), threshold=0.5)
    _write(tmp_path, layout.KERAS, "scores.csv", _scores(0), threshold=0.5)
    assert report.check_same_data(tmp_path) == DATA
    assert report.check_same_data(tmp_path, expected=DATA) == DATA
    with pytest.raises(ValueError, match="different data or splits"):
        report.check_same_data(tmp_path, expected=dict(DATA, split_hash="s2"))       # this run's split differs
    real = dict(DATA, builtin=False, name="MVTec AD", root="/mvtec", manifest_hash="m9")
    _write(tmp_path, layout.PATCHCORE, "scores.csv", _scores(0), threshold=0.5, data=real)
    with pytest.raises(ValueError, match=r"(?s)different data.*built-in at /data.*MVTec AD at /mvtec \(manifest m9"):
        report.check_same_data(tmp_path)


def test_localisation_reads_gradcam_and_patchcore(tmp_path):
    d = tmp_path / layout.EXPLAIN
    d.mkdir()
    from helpers.evaluation.localisation import MEAN_ROW, score_maps

    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    score_maps("Grad-CAM: m", [mask * 1.0, np.zeros((4, 4))], [mask, np.zeros((4, 4), bool)], ["a", "a"]).to_csv(
        d / "localisation.csv", index=False)
    p = tmp_path / layout.PATCHCORE
    p.mkdir()
    score_maps("PatchCore", [1.0 - mask], [mask], ["a"]).to_csv(p / "localisation.csv", index=False)
    loc = report.localisation(tmp_path).set_index("maps")        # one table, one metric, every map
    assert loc.loc["Grad-CAM: m", ["pixel_auroc", "au_pro", "pointing_game"]].tolist() == [1.0, 1.0, 1.0]
    assert loc.loc["PatchCore", ["pixel_auroc", "au_pro", "pointing_game"]].tolist() == [0.0, 0.0, 0.0]
    assert loc.loc["Grad-CAM: m", "n_images"] == 2 and loc.loc["PatchCore", "n_defective"] == 1
    pd.DataFrame([{"model": "m", "category": MEAN_ROW, "pixel_auroc": 0.7}]).to_csv(d / "localisation.csv", index=False)
    with pytest.raises(ValueError, match="older version"):
        report.localisation(tmp_path)


def test_recipes_say_where_each_value_comes_from():
    """Every recipe field has a source; what the studies do not give is marked "our choice" (with a reason)."""
    from dataclasses import fields

    from helpers.training import recipes

    for kind, sources in recipes.SOURCES.items():
        assert {f.name for f in fields(kind)} == set(sources), kind.__name__
    ours = lambda kind, name: recipes.SOURCES[kind][name].startswith("our choice: ")  # noqa: E731
    assert ours(recipes.SupervisedRecipe, "epochs") and ours(recipes.ProbeRecipe, "clip_grad")
    assert ours(recipes.SimCLRRecipe, "lr") and not ours(recipes.SupervisedRecipe, "batch_size")
    assert all(v.startswith(("our choice: ", "PatchCore's official")) for v in recipes.OTHER_CHOICES.values())
    table = recipes.recipe_table(recipes.SupervisedRecipe(image_size=64, epochs=2))
    assert table.loc["epochs", "full profile"] == 30 and table.loc["batch_size", "full profile"] == ""


def test_the_studies_figures_are_listed_once_each_with_how():
    from helpers.evaluation.studies import study_rows

    rows = study_rows()
    assert rows["approach"].is_unique and len(rows) == 3 and rows["how"].str.len().gt(0).all()
    assert "LabelEncoder" in rows.set_index("approach").loc["study: Keras multi-task", "how"]
