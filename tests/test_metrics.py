"""Metrics agree with scikit-learn and with hand counts; thresholds come from val; the schema holds."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from helpers.artefacts.record import metrics_record, read_metrics, write_metrics
from helpers.evaluation.metrics import binary_metrics, category_metrics, choose_threshold, per_category_table

DATA = {"builtin": True, "name": "built-in sample dataset (generated, not MVTec AD)", "root": "/data",
        "manifest_hash": "m1", "split_hash": "s1"}


def test_binary_metrics_hand_counted():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.6, 0.3, 0.9, 0.4, 0.8, 0.7]
    m = binary_metrics(y, s, threshold=0.5)
    # predicted positive: 0.6, 0.9, 0.8, 0.7 -> tp=3 fp=1 tn=3 fn=1
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 1, 3, 1)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(0.75) and m["fpr"] == pytest.approx(0.25)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s)) == pytest.approx(15 / 16)  # 15 of 16 pos/neg pairs ordered
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, s))


def test_binary_metrics_random_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.random(300) + 0.3 * y
    m = binary_metrics(y, s, 0.6)
    pred = (s >= 0.6).astype(int)
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))


def test_one_class_gives_nan_auc():
    m = binary_metrics([0, 0, 0], [0.1, 0.5, 0.9], 0.5)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])


def test_threshold_choice():
    y = np.array([0] * 50 + [1] * 50)
    s = np.concatenate([np.linspace(0, 0.55, 50), np.linspace(0.45, 1, 50)])
    t_f1 = choose_threshold(y, s, "f1")
    f1_best = max(skm.f1_score(y, s >= t) for t in np.unique(s))
    assert skm.f1_score(y, s >= t_f1) == pytest.approx(f1_best)
    t_j = choose_threshold(y, s, "youden")
    j = lambda t: (s[y == 1] >= t).mean() - (s[y == 0] >= t).mean()  # noqa: E731
    assert j(t_j) == pytest.approx(max(j(t) for t in np.unique(s)))
    with pytest.raises(ValueError):
        choose_threshold(y, s, "magic")


def test_category_metrics_weighted():
    y = ["a", "a", "b", "b", "b", "c"]
    p = ["a", "b", "b", "b", "c", "c"]
    m = category_metrics(y, p)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, p, average="weighted"))
    assert m["per_class_recall"] == {"a": 0.5, "b": pytest.approx(2 / 3), "c": 1.0}


def test_per_category_table_and_schema(tmp_path):
    frame = pd.DataFrame({"category": ["x"] * 4 + ["y"] * 3, "label": [0, 0, 1, 1, 0, 0, 0],
                          "score": [0.1, 0.2, 0.8, 0.9, 0.3, 0.7, 0.2]})
    table = per_category_table(frame, threshold=0.5)
    x = table.set_index("category").loc["x"]
    assert x["auroc"] == 1.0 and x["recall"] == 1.0 and x["fpr"] == 0.0
    assert math.isnan(table.set_index("category").loc["y", "auroc"])
    rec = metrics_record("99_test", "demo", "shared-split", "smoke", {"train": 1, "val": 1, "test": 7},
                         0.5, "f1", binary_metrics(frame["label"], frame["score"], 0.5), table, data=DATA)
    path = write_metrics(rec, tmp_path)
    assert path == tmp_path / "99_test" / "metrics.json"
    back = read_metrics(path)
    assert back == rec and back.per_category[1]["auroc"] is None  # NaN written as null, valid JSON
    assert back.threshold.model_dump(exclude_none=True) == {"value": 0.5, "method": "f1", "chosen_on": "val"}
    assert back.labels_used is None and back.extra.backbone is None     # trained nothing; no backbone recorded
    raw = json.loads(path.read_text())
    # provenance: which data and split, which code, which device — a record without it is refused
    assert back.data.model_dump(exclude_none=True) == DATA and back.code["package"] and "cpu_cores" in back.device

    def refused(change, match):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(change(json.loads(json.dumps(raw)))))
        with pytest.raises(ValueError, match=match):
            read_metrics(bad)

    refused(lambda r: {**r, "protocol": "whatever"}, "protocol")
    refused(lambda r: {k: v for k, v in r.items() if k != "data"}, "older version — re-run notebook 99_test")
    refused(lambda r: {**r, "data": {k: v for k, v in DATA.items() if k != "split_hash"}}, "data.split_hash")
    refused(lambda r: {**r, "extra": {"backbon": "resnet50"}}, "extra.backbon")          # a misspelt field
    refused(lambda r: {**r, "threshold": {**r["threshold"], "value": "high"}}, "threshold.value")
    refused(lambda r: {**r, "schema_version": 99}, "schema 99")
    refused(lambda r: {**r, "metrics": {}}, "non-empty")
    with pytest.raises(ValueError, match="extra.knn_labels"):
        metrics_record("99_test", "demo", "shared-split", "smoke", {"test": 7}, 0.5, "f1", {"f1": 1.0},
                       data=DATA, extra={"knn_labels": {}})
    old = {**raw, "schema_version": 4, "labels_used": {}}                  # schema 4: the same fields, {} for none
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert read_metrics(tmp_path / "old.json").labels_used is None


def test_score_on_test_thresholds_on_val_only():
    import pandas as pd

    from helpers.evaluation.metrics import binary_metrics, choose_threshold, score_on_test

    val = pd.DataFrame({"split": "val", "category": "a", "label": [0, 0, 1, 1], "score": [0.1, 0.2, 0.3, 0.9]})
    test = pd.DataFrame({"split": "test", "category": ["a", "a", "b", "b"], "label": [0, 1, 0, 1],
                         "score": [0.25, 0.35, 0.5, 0.05]})
    thr, m, per_cat = score_on_test(pd.concat([val, test]))
    assert thr == choose_threshold(val["label"], val["score"]) == 0.3     # from val, not test
    assert m == {**binary_metrics(test["label"], test["score"], 0.3), "category_auroc_mean": 0.5}
    assert per_cat["category"].tolist() == ["a", "b"] and per_cat["auroc"].tolist() == [1.0, 0.0]


def test_per_category_normalisation_puts_every_threshold_on_one_half():
    from helpers.evaluation.metrics import NORMALISED_THRESHOLD, choose_threshold, normalise_per_category

    rng = np.random.default_rng(0)
    rows = []
    for cat, offset in (("a", 0.0), ("b", 50.0), ("c", 3.0)):
        for split in ("val", "test"):
            y = np.array([0] * 8 + [1] * 4)
            if cat == "c" and split == "val":
                y = np.zeros(12, int)                                    # val with one class only
            rows.append(pd.DataFrame({"category": cat, "split": split, "label": y,
                                      "score": offset + y + rng.random(12) * 0.8}))
    scores = pd.concat(rows, ignore_index=True)
    out, params = normalise_per_category(scores)
    for cat in ("a", "b"):
        val = scores[(scores["category"] == cat) & (scores["split"] == "val")]
        t = choose_threshold(val["label"], val["score"])
        assert params[cat]["threshold"] == pytest.approx(t)
        same = (scores["category"] == cat)
        assert ((out.loc[same, "score"] >= NORMALISED_THRESHOLD) == (scores.loc[same, "score"] >= t)).all()
    assert "one class only" in params["c"]["note"]
    c_val = scores[(scores["category"] == "c") & (scores["split"] == "val")]
    assert params["c"]["threshold"] == pytest.approx(c_val["score"].max())
