"""The comparison report: reads what notebooks wrote, compares on the test images every approach scored (naming what
each left out and why), intervals and paired comparisons, exports the table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.artefacts import record as R
from helpers.core import layout
from helpers.evaluation import metrics as M
from helpers.workflows import report

DATA = {"builtin": True, "name": "built-in", "root": "/data", "manifest_hash": "m1", "split_hash": "s1"}


def _write(runs, folder, file, scores, threshold=None, data=DATA, extra=None):
    d = runs / folder
    d.mkdir(parents=True, exist_ok=True)
    scores.to_csv(d / file, index=False)
    if threshold is not None:
        record = R.metrics_record(folder, folder, "shared-split", "smoke", {"test": 4}, threshold, "f1",
                                  {"roc_auc": 0.5}, data=data, extra=extra,
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
    assert any(f"{layout.MULTITASK}.ipynb first" in m for m in missing)
    assert any(f"{layout.PATCHCORE}.ipynb first" in m for m in missing)
    assert len(report.coverage(found).common) == 20
    table = report.comparison_table(found).set_index("approach")
    assert (table["roc_auc_low"] <= table["roc_auc"]).all() and (table["roc_auc"] <= table["roc_auc_high"]).all()
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
    heat, low, high = report.category_auroc(found)
    assert heat.shape == low.shape == high.shape == (2, 2) and heat.notna().all().all()
    assert ((low <= heat) & (heat <= high)).all().all()
    pairs = report.paired_comparisons(found)
    assert len(pairs) == 1 and pairs["in words"].iloc[0].startswith(pairs["comparison"].iloc[0] + ": ")
    out = report.export(tmp_path, report.comparison_table(found), heat, report.localisation(tmp_path),
                        {"n_test": 20, "profile": "smoke", "data": "test"}, comparisons=pairs, cov=report.coverage(found))
    md = out.read_text()
    assert "| Supervised classifier |" in md and "as reported, on the study's training data" in md
    assert "Which differences this test set can resolve" in md and "95% intervals: percentile bootstrap" in md
    assert (tmp_path / "report" / layout.PAIRS).exists() and (tmp_path / "report" / layout.COVERAGE).exists()
    assert pd.read_csv(tmp_path / "report" / "comparison.csv").shape[0] == 2


def test_partial_coverage_compares_on_common_images_and_says_why(tmp_path):
    """PatchCore without a bank for a category (no good training image) scores fewer test images: the report
    compares every approach on the images all of them scored, and names what was left out and why."""
    sup = _scores(0)
    _write(tmp_path, layout.SUPERVISED, "scores.csv", sup, threshold=0.5)
    partial = _scores(1)
    partial = partial[partial["category"] == "a"]                           # no bank for category b
    _write(tmp_path, layout.PATCHCORE, "scores.csv", partial, threshold=0.5,
           extra={"not_scored": {"b": "no good training image"}})
    found, _ = report.load_approaches(tmp_path)
    split = sup[sup["split"] == "test"]
    cov = report.coverage(found, split)
    assert len(cov.common) == 10 and cov.n_test == 20
    assert cov.per_category.loc["PatchCore", "b"] == "0/10" and cov.per_category.loc["Supervised classifier", "b"] == "10/10"
    assert cov.gaps == ["PatchCore: no good training image for b"]
    assert "10 of 20 test images were scored by every approach" in cov.describe()
    table = report.comparison_table(found, cov).set_index("approach")
    assert (table["n_test"] == 10).all()
    common = split[split["category"] == "a"]
    assert table.loc["Supervised classifier", "roc_auc"] == pytest.approx(
        M.binary_metrics(common["label"], common["score"], 0.5)["roc_auc"])
    heat, _, _ = report.category_auroc(found, cov)
    assert list(heat.columns) == ["a"]
    assert len(report.paired_comparisons(found, cov)) == 1
    # nothing in common: empty tables, no crash
    empty = report.coverage(found, pd.DataFrame({"path": ["elsewhere.png"], "category": ["z"]}))
    assert len(report.comparison_table(found, empty)) == 0 and len(report.paired_comparisons(found, empty)) == 0


def test_runs_on_different_data_or_splits_are_refused(tmp_path):
    _write(tmp_path, layout.SUPERVISED, "scores.csv", _scores(0), threshold=0.5)
    _write(tmp_path, layout.MULTITASK, "scores.csv", _scores(0), threshold=0.5)
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


def test_rows_on_different_backbones_are_flagged(tmp_path):
    _write(tmp_path, layout.SUPERVISED, "scores.csv", _scores(0), threshold=0.5,
           extra={"backbone": "resnet50", "weights": "IMAGENET1K_V2"})
    _write(tmp_path, layout.PATCHCORE, "scores.csv", _scores(1), threshold=0.5,
           extra={"backbone": "efficientnet_lite0", "weights": "ImageNet (efficientnet_lite_pytorch)"})
    from helpers.models.multitask import NETWORKS

    for net, folder in (("study", layout.MULTITASK), ("imagenet", layout.MULTITASK_IMAGENET)):   # what notebook 04 records
        _write(tmp_path, folder, "scores.csv", _scores(2), threshold=0.5,
               extra={"backbone": NETWORKS[net].backbone, "weights": NETWORKS[net].weights})
    found, _ = report.load_approaches(tmp_path)
    table = report.comparison_table(found).set_index("approach")
    assert table.loc["Supervised classifier", "backbone"] == "resnet50 (IMAGENET1K_V2)"
    assert table.loc["Keras multi-task CNN", "backbone"] == "study 001's CNN (none: trained from scratch, as study 001)"
    assert table.loc["Keras multi-task (ImageNet backbone)", "backbone"].startswith("efficientnet_lite0 (Keras rebuild)")
    warning = report.mixed_backbones(found)
    assert "different backbones" in warning and "PatchCore: efficientnet_lite0" in warning
    assert report.mixed_backbones(found[:1]) == ""


def test_a_product_without_masks_reads_no_masks_and_few_defects_are_explained(tmp_path):
    """A product with no masks: the localisation rows say so in words (not "n/a" or NaN); a test set with few
    defective images says what that means for the intervals, in the notebook and the exported report."""
    from helpers.evaluation.localisation import score_maps
    from helpers.viz.results import NO_MASKS, interval_table

    maps = [np.random.default_rng(i).random((4, 4)) for i in range(3)]
    empty = [np.zeros((4, 4), bool)] * 3                       # defective images without masks: all-False masks
    loc = score_maps("PatchCore", maps, empty, ["p"] * 3)
    shown = interval_table(loc, ["pixel_auroc", "au_pro", "pointing_game"])
    assert (shown[["pixel_auroc", "au_pro", "pointing_game"]] == NO_MASKS).all().all()
    scores = _scores(0, paths=[f"c/test/{i}.png" for i in range(12)])     # 4 defective test images
    _write(tmp_path, layout.SUPERVISED, "scores.csv", scores, threshold=0.55)
    found, _ = report.load_approaches(tmp_path)
    cov = report.coverage(found)
    assert sum(cov.defective.values()) == 4
    assert "Few defective test images (4 in all" in cov.describe()
    path = report.export(tmp_path, report.comparison_table(found, cov), pd.DataFrame(), loc, {"n_test": 12}, cov=cov)
    text = path.read_text()
    assert "Few defective test images" in text and "no ground-truth masks" in text and NO_MASKS in text
    many = report.few_defects_note({"a": 10, "b": 12})
    assert many == "" and "b: 3" in report.few_defects_note({"a": 10, "b": 3})
