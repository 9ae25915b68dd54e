"""Notebooks 01–03 as functions: small pieces by value, and learning tests with negative controls.

The learning tests run each recipe's code on a generated dataset whose defects are 4× the built-in
size (``defect_scale=4``; at scale 1 a ResNet-50 trained from scratch on a CPU stays at chance, see
docs/benchmarks.md), at 64 px, from a random init (no weights can be downloaded here), fixed seeds.
Only sizes, epochs and batch sizes differ from the recipes.

Margins (measured values in the comments; each control is the same run with its supervision destroyed):
- supervised ResNet-50: test AUROC ≥ 0.80 (measured 0.918); shuffled training labels < 0.80 (0.653).
- SimCLR: val NT-Xent falls ≥ 0.05 below its first epoch and below chance log(2B − 1) (3.246 → 3.13);
  with views paired across images (shuffled pairs) it does not.
- linear probe on the SimCLR encoder: test AUROC ≥ 0.70 (0.788); shuffled labels < 0.70 (0.613).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import prepare_learnable
from helpers import config, prepare
from helpers.pytorch_track import (ProbeRecipe, SimCLRRecipe, SupervisedRecipe, knn_scores, labelled_fraction,
                                   load_simclr_encoder, onecycle_lrs, run_probe, run_simclr, run_supervised,
                                   schedule_lrs, scaled)

SIZE = 64


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    """Two categories, big defects, 250 images; prepared (split + 64 px cache) once for the module."""
    return prepare_learnable(tmp_path_factory.mktemp("learnable"), ("bottle", "hazelnut"), SIZE)


def test_labelled_fraction_is_stratified():
    frame = pd.DataFrame({"category": ["a"] * 50 + ["b"] * 30, "label": [0] * 40 + [1] * 10 + [0] * 20 + [1] * 10})
    picked = labelled_fraction(frame, 0.1, seed=0)
    counts = picked.groupby(["category", "label"]).size().to_dict()
    assert counts == {("a", 0): 4, ("a", 1): 1, ("b", 0): 2, ("b", 1): 1}
    assert picked.index.is_unique and picked.index.isin(frame.index).all()
    pd.testing.assert_frame_equal(picked, labelled_fraction(frame, 0.1, seed=0))  # reproducible


def test_knn_scores_are_distances_to_nearest_good():
    bank = np.array([[1.0, 0.0], [0.0, 1.0]])
    queries = np.array([[2.0, 0.0], [1.0, 1.0]])           # same direction as a bank row / between both
    s1 = knn_scores(bank, queries, 1)
    assert s1[0] == pytest.approx(0.0, abs=1e-9)
    assert s1[1] == pytest.approx(math.sqrt(2 - math.sqrt(2)), rel=1e-6)  # unit vectors 45° apart
    s2 = knn_scores(bank, queries, 2)
    assert s2[0] == pytest.approx(math.sqrt(2) / 2, rel=1e-6)  # mean of 0 and sqrt(2)


def test_schedules():
    rec = SupervisedRecipe(epochs=3)
    lrs = onecycle_lrs(rec, steps_per_epoch=10)
    assert len(lrs) == 30 and lrs.max() == pytest.approx(rec.max_lr, rel=1e-3)
    assert lrs[0] == pytest.approx(rec.max_lr / 25, rel=1e-3) and lrs[-1] < lrs[0] / 100
    sim = schedule_lrs(SimCLRRecipe(epochs=10, lr=1e-3), steps_per_epoch=10)
    assert sim[0] == pytest.approx(1e-4) and sim[9] == pytest.approx(1e-3)   # 10 warm-up steps
    assert np.all(np.diff(sim[9:]) <= 1e-12) and sim[-1] < 1e-6            # cosine decay to 0


def test_profiles_shrink_only_sizes():
    full = scaled(SupervisedRecipe(), config.get_profile("full"))
    smoke = scaled(SupervisedRecipe(), config.get_profile("smoke"))
    assert full == SupervisedRecipe()
    assert (smoke.image_size, smoke.epochs) == (64, 2)
    assert (smoke.lr, smoke.max_lr, smoke.batch_size, smoke.patience) == (1e-3, 0.01, 64, 5)


def test_missing_encoder_names_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="02_simclr_pretraining.ipynb first"):
        load_simclr_encoder(tmp_path)


def test_supervised_learns_and_shuffled_control_does_not(learnable):
    recipe = SupervisedRecipe(batch_size=16, epochs=15, patience=15, image_size=SIZE)
    real = run_supervised(learnable, recipe, pretrained=False, write=False, progress=False)
    h = real.fit.history
    assert h["val_loss"].min() < 0.7 * h["val_loss"].iloc[0]           # val loss falls
    assert real.test_metrics["roc_auc"] >= 0.80
    assert set(real.scores["split"]) == {"val", "test"}
    assert len(real.split_scores("test")) == len(learnable.frame("test"))
    control = run_supervised(learnable, recipe, pretrained=False, shuffled_labels=True, write=False, progress=False)
    assert control.test_metrics["roc_auc"] < 0.80


@pytest.fixture(scope="module")
def simclr_runs(learnable):
    recipe = SimCLRRecipe(batch_size=16, epochs=15, image_size=SIZE)
    real = run_simclr(learnable, recipe, pretrained=False, write=False, progress=False)
    control = run_simclr(learnable, recipe, pretrained=False, shuffled_pairs=True, write=False, progress=False)
    return real, control


def test_simclr_learns_and_shuffled_pairs_do_not(simclr_runs):
    real, control = simclr_runs
    chance = math.log(2 * 16 - 1)
    h = real.fit.history
    assert h["val_loss"].iloc[-3:].mean() < h["val_loss"].iloc[0] - 0.05   # held-out NT-Xent falls
    assert h["train_loss"].iloc[-3:].mean() < chance - 0.1
    hc = control.fit.history
    assert hc["val_loss"].iloc[-3:].mean() > hc["val_loss"].iloc[0] - 0.05
    assert hc["train_loss"].iloc[-3:].mean() > chance - 0.1


def test_probe_learns_and_shuffled_control_does_not(simclr_runs, learnable):
    encoder = simclr_runs[0].model.encoder
    recipe = ProbeRecipe(batch_size=8, image_size=SIZE)
    real = run_probe(learnable, encoder, recipe, write=False, progress=False)
    n_train = len(learnable.frame("train"))
    assert len(real.extra["labelled"]) == pytest.approx(0.1 * n_train, abs=4)
    assert real.fit.history["val_loss"].iloc[-1] < real.fit.history["val_loss"].iloc[0]
    assert real.test_metrics["roc_auc"] >= 0.70
    assert set(real.extra["knn"]) == {1, 5}
    control = run_probe(learnable, encoder, recipe, shuffled_labels=True, write=False, progress=False)
    assert control.test_metrics["roc_auc"] < 0.70
    # the encoder stays frozen while the probe trains
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    run_probe(learnable, encoder, ProbeRecipe(batch_size=8, image_size=SIZE, epochs=2), write=False, progress=False)
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


def test_runs_write_outputs_and_resume(learnable, tmp_path):
    """A written run leaves metrics/scores/model; run again, it resumes from the checkpoint (no training)."""
    cfg = config.with_profile(config.get_config("smoke", data_dir=learnable.cfg.data_dir, runs_dir=tmp_path),
                              image_size=SIZE, max_train_images=32)
    prep = prepare.prepare(cfg, progress=False)
    recipe = SupervisedRecipe(batch_size=16, epochs=2, image_size=SIZE)
    first = run_supervised(prep, recipe, pretrained=False, progress=False)
    out = tmp_path / "01_supervised_resnet50"
    for name in ("metrics.json", "scores.csv", "model.pt", "history.csv"):
        assert (out / name).exists(), name
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["path", "category", "label", "split", "score"]
    assert first.fit.history["epoch"].tolist() == [1, 2]
    again = run_supervised(prep, recipe, pretrained=False, progress=False)
    assert again.fit.resumed_from == 1
    pd.testing.assert_frame_equal(again.fit.history, first.fit.history)
    np.testing.assert_allclose(again.scores["score"], first.scores["score"], rtol=1e-5)
