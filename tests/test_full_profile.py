"""The ``full`` profile's code paths — what a Colab GPU user gets with ``PROFILE = "auto"`` — on a handful of images,
so that a change that breaks ``full`` fails CI although no GPU is here. Each model notebook's training runs one epoch
at the full recipe's settings that change the code path: image size (256 px torch, 224 px Keras, PatchCore 256 → 224),
the recipe's batch sizes, two DataLoader worker processes (pin_memory is set when CUDA is there), gradient clipping,
TF32 switched on by the framework setup, PatchCore's 10% coreset. The profile's cap of one batch an epoch
(``max_train_images``) and one epoch are the only changes: what is checked is that the path runs and writes a model
that scores, not what it learns (the learning tests and ``docs/benchmarks.md`` say that). It takes about a minute
and a half, so ``make test-colab`` runs it once, on Colab's stack (``DEFECTS_FULL_PATHS=1``): the versions a GPU
user's runtime has."""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from helpers.core import config, env
from helpers.data import prepare
from helpers.training import recipes

pytestmark = pytest.mark.skipif(os.environ.get("DEFECTS_FULL_PATHS") != "1",
                                reason="the full profile's paths run once, on Colab's stack (make test-colab sets "
                                       "DEFECTS_FULL_PATHS=1)")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Two categories (136 generated 64 px images: 87 train, enough for one full batch of 64) prepared under the full
    profile (256 px cache, 224 px for Keras), one batch an epoch."""
    from helpers.data import synthetic

    base = tmp_path_factory.mktemp("full")
    spec = synthetic.SyntheticSpec(size=64, n_train_good=50, n_test_good=6, n_per_defect=4,
                                   categories=("bottle", "hazelnut"))
    root = synthetic.generate_dataset(base / "mvtec", spec, progress=False)
    cfg = config.with_profile(config.get_config("full", data_dir=root, runs_dir=base / "runs"), max_train_images=64)
    assert cfg.profile.num_workers == 2 and cfg.profile.image_size == 256 and cfg.profile.tf_image_size == 224
    return prepare.prepare(cfg, progress=False)


def test_framework_setup_turns_on_tf32_where_supported():
    import torch

    done = env.configure_frameworks()
    assert done["torch"]["tf32"] and torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def test_supervised_and_simclr_and_probe_at_full_settings(full):
    from helpers.workflows import probe, simclr, supervised

    rec = replace(recipes.scaled(recipes.SupervisedRecipe(), full.cfg.profile), epochs=1)
    assert (rec.image_size, rec.batch_size, rec.clip_grad) == (256, 64, 1.0)
    sup = supervised.run(full, rec, backbone="efficientnet_lite0", write=False, progress=False)
    assert len(sup.history) == 1 and np.isfinite(sup.history["train_loss"]).all()
    assert np.isfinite(sup.split_scores("test")["score"]).all()

    srec = replace(recipes.scaled(recipes.SimCLRRecipe(), full.cfg.profile), epochs=1)
    assert srec.image_size == 256
    pre = simclr.run(full, srec, backbone="efficientnet_lite0", write=False, progress=False)
    prec = replace(recipes.scaled(recipes.ProbeRecipe(), full.cfg.profile), epochs=1, min_steps=1)
    run = probe.run(full, pre.model.encoder, prec, write=False, progress=False)
    assert np.isfinite(run.split_scores("test")["score"]).all()


def test_keras_at_full_settings(full, tmp_path):
    from helpers.workflows import multitask

    rec = replace(recipes.scaled(recipes.KerasRecipe(), full.cfg.profile), epochs=1, min_steps=0)
    assert (rec.image_size, rec.batch_size) == (224, 32)
    run = multitask.run(full, rec, out_dir=tmp_path / "keras", write_metrics=False, verbose=0)
    assert run.epochs_run == 1 and np.isfinite(run.split_scores("test")["score"]).all()
    # the heads on the ImageNet backbone: the torch track's size capped at the study's 224, features computed once
    irec = replace(multitask.recipe_for("imagenet", full.cfg.profile), epochs=1, min_steps=0)
    assert (irec.image_size, irec.batch_size, irec.feature_draws) == (224, 32, 4)
    imagenet = multitask.run(full, irec, network_key="imagenet", out_dir=tmp_path / "imagenet", write_metrics=False,
                             verbose=0)
    assert imagenet.epochs_run == 1 and np.isfinite(imagenet.split_scores("test")["score"]).all()


def test_patchcore_at_full_settings(full):
    from helpers.models.patchcore import load_features
    from helpers.workflows import oneclass

    rec = recipes.scaled(recipes.PatchCoreRecipe(), full.cfg.profile)
    assert (rec.resize, rec.crop, rec.coreset_fraction) == (256, 224, 0.1)
    shared = oneclass.run_protocol(full, "shared-split", rec, ["bottle"], features=load_features("efficientnet_lite0"),
                                   progress=False)
    row = shared.per_category.iloc[0]
    assert row["bank"] == pytest.approx(0.1 * row["patches"], abs=1) and np.isfinite(shared.scores["score"]).all()
