"""Notebook 04 as functions: architecture, learning with a negative control, reload, resume, coexistence.

Learning test data: three categories (bottle, carpet, hazelnut) with defects 4× the built-in size, 64 px,
batch 16, fixed seeds and TF op determinism. Margins (measured in the comments): the study's network, 20 epochs:
category accuracy ≥ 0.90 (1.0); defect AUROC on test ≥ 0.70 (0.803); with shuffled defect labels < 0.70 (0.471).
The heads on the ImageNet backbone, 8 epochs: ≥ 0.90 (1.0), ≥ 0.90 (1.0), shuffled < 0.80 (0.60).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import prepare_learnable

from helpers.core import config, layout

keras = pytest.importorskip("keras")

from helpers.models import kinds  # noqa: E402
from helpers.models.multitask import LAST_CONV, SHARED_DENSE, build_multitask, predict_multitask  # noqa: E402
from helpers.training.recipes import KerasRecipe, scaled  # noqa: E402
from helpers.workflows import multitask  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def three_cats(tmp_path_factory):
    return prepare_learnable(tmp_path_factory.mktemp("keras"), ("bottle", "carpet", "hazelnut"), SIZE)


def test_each_network_takes_its_input_size():
    """The study's network: the profile's Keras size; the ImageNet one: the torch track's, at most the study's 224."""
    for name, study, imagenet in (("quick", 96, 128), ("full", 224, 224), ("smoke", 64, 64)):
        profile = config.PROFILES[name]
        assert multitask.recipe_for("study", profile).image_size == study
        assert multitask.recipe_for("imagenet", profile).image_size == imagenet
    with pytest.raises(ValueError, match="expected one of"):
        multitask.recipe_for("resnet", config.PROFILES["quick"])


def test_the_heads_alone_share_the_whole_networks_layers():
    """Training the heads on cached features trains the whole network's heads (what the checkpoint saves)."""
    from helpers.models.multitask import build_imagenet_multitask, feature_extractor, heads_only

    model = build_imagenet_multitask(3, 64)
    heads = heads_only(model)
    x = np.random.default_rng(0).random((2, 64, 64, 3), np.float32)
    before = np.asarray(model(x, training=False)["defect"])
    kernel = heads.get_layer("defect").kernel
    kernel.assign(kernel.numpy() + 0.5)
    after = model(x, training=False)
    np.testing.assert_allclose(np.asarray(heads(feature_extractor(model)(x), training=False)["defect"]),
                               np.asarray(after["defect"]), atol=1e-6)
    assert np.abs(np.asarray(after["defect"]) - before).max() > 1e-4
    assert feature_extractor(model).trainable_weights == []       # the backbone stays frozen


def test_architecture_follows_the_recipe():
    model = build_multitask(15, 224)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 128, 256] and convs[-1].name == LAST_CONV
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 4
    assert model.get_layer(SHARED_DENSE).units == 512
    assert model.get_layer("category").units == 15 and model.get_layer("defect").units == 1
    assert model.get_layer("shared_dropout").rate == 0.5
    assert model.get_layer("category_dense").units == 256 and model.get_layer("defect_dense").units == 128
    out = model(np.zeros((2, 224, 224, 3), np.float32))
    assert out["category"].shape == (2, 15) and out["defect"].shape == (2, 1)
    np.testing.assert_allclose(np.asarray(out["category"]).sum(1), 1.0, rtol=1e-5)
    assert scaled(KerasRecipe(), config.get_profile("full")) == KerasRecipe()
    smoke = scaled(KerasRecipe(), config.get_profile("smoke"))
    assert (smoke.image_size, smoke.epochs, smoke.batch_size, smoke.defect_weight) == (64, 1, 32, 2.0)


def test_the_study_network_gets_enough_optimiser_steps_to_learn():
    from helpers.training.recipes import with_step_floor

    quick = config.get_profile("quick")
    r = scaled(KerasRecipe(), quick)
    assert r.epochs == 7                                               # the study's 20, a third
    floored = with_step_floor(r, 284, quick)                          # the built-in train split: 9 batches of 32
    assert floored.epochs == 23 and floored.epochs * 9 >= r.min_steps == 200
    assert floored.min_epochs == 23                                   # early stopping waits for the floor
    assert with_step_floor(r, 5000, quick) == r                       # enough data: the profile's epochs
    full = scaled(KerasRecipe(), config.get_profile("full"))
    assert with_step_floor(full, 3600, config.get_profile("full")) == full   # MVTec AD: ~2,300 steps already
    smoke = config.get_profile("smoke")
    assert with_step_floor(scaled(KerasRecipe(), smoke), 40, smoke).epochs == 1   # CI: code paths, no floors


@pytest.mark.slow
@pytest.mark.learning
def test_learns_and_shuffled_defect_labels_do_not(three_cats, tmp_path):
    recipe = KerasRecipe(image_size=SIZE, epochs=20, batch_size=16)
    real = multitask.run(three_cats, recipe, out_dir=tmp_path / "real", write_metrics=False, verbose=0)
    assert real.category_metrics["accuracy"] >= 0.90
    assert real.test_metrics["roc_auc"] >= 0.70
    assert real.history["val_loss"].min() < real.history["val_loss"].iloc[0]
    # the saved model reloads and gives identical predictions; the label encoding is in its card
    model, categories, size = multitask.load(tmp_path / "real")
    assert categories == ["bottle", "carpet", "hazelnut"] and size == SIZE
    from helpers.data.tf_data import make_dataset
    test = three_cats.frame("test")
    ds = make_dataset(test, categories, SIZE, 16, cache=three_cats.cache(SIZE, progress=False))
    _, again = predict_multitask(model, ds)
    np.testing.assert_allclose(again, real.split_scores("test")["score"], rtol=1e-5, atol=1e-6)
    control = multitask.run(three_cats, recipe, shuffled_defect=True, out_dir=tmp_path / "shuffled",
                            write_metrics=False, verbose=0)
    assert control.test_metrics["roc_auc"] < 0.70


@pytest.mark.slow
@pytest.mark.learning
def test_the_heads_on_the_imagenet_backbone_learn_and_shuffled_labels_do_not(three_cats, tmp_path):
    """The same heads on the frozen ImageNet Lite0, 8 epochs (measured: category accuracy 1.0, test AUROC 1.0; with
    shuffled defect labels 0.60)."""
    recipe = KerasRecipe(image_size=SIZE, epochs=8, batch_size=16)
    runs = {shuffled: multitask.run(three_cats, recipe, network_key="imagenet", shuffled_defect=shuffled,
                                    out_dir=tmp_path / str(shuffled), write_metrics=False, verbose=0)
            for shuffled in (False, True)}
    real, control = runs[False], runs[True]
    assert real.category_metrics["accuracy"] >= 0.90
    assert real.test_metrics["roc_auc"] >= 0.90 and control.test_metrics["roc_auc"] < 0.80
    assert not any(w.trainable for layer in real.model.layers if layer.name.startswith(("stem", "block", "head_"))
                   for w in layer.weights)                                   # the backbone stayed frozen


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, after_epoch: int):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise RuntimeError("simulated disconnect")


@pytest.mark.slow
def test_interrupted_fit_resumes_at_the_next_epoch(three_cats, tmp_path):
    recipe = KerasRecipe(image_size=SIZE, epochs=4, batch_size=32, patience=10)
    with pytest.raises(RuntimeError, match="simulated disconnect"):
        multitask.run(three_cats, recipe, out_dir=tmp_path, verbose=0, extra_callbacks=[_Interrupt(1)])
    first = pd.read_csv(tmp_path / layout.KERAS_LOG)
    assert first["epoch"].tolist() == [0, 1] and (tmp_path / layout.KERAS_BACKUP).exists()
    done = multitask.run(three_cats, recipe, out_dir=tmp_path, verbose=0)
    assert done.resumed
    assert done.history["epoch"].tolist() == [0, 1, 2, 3]      # continued at epoch 3, not from scratch
    pd.testing.assert_frame_equal(done.history.iloc[:2], first)
    assert not (tmp_path / layout.KERAS_BACKUP).exists()       # a finished fit removes its backup
    record = json.loads((tmp_path / layout.METRICS).read_text())
    assert set(pd.read_csv(tmp_path / layout.SCORES)["split"]) == {"val", "test"}
    assert record["metrics"]["category_accuracy"] == pytest.approx(done.category_metrics["accuracy"])
    again = multitask.run(three_cats, recipe, out_dir=tmp_path, verbose=0)          # finished: reused, not retrained
    pd.testing.assert_frame_equal(again.history, done.history)
    np.testing.assert_allclose(again.split_scores("test")["score"], done.split_scores("test")["score"], rtol=1e-6)
    with pytest.raises(RuntimeError, match="simulated disconnect"):                 # another recipe: afresh
        multitask.run(three_cats, replace(recipe, defect_weight=3.0), out_dir=tmp_path, verbose=0,
                      extra_callbacks=[_Interrupt(0)])
    assert pd.read_csv(tmp_path / layout.KERAS_LOG)["epoch"].tolist() == [0]


@pytest.mark.slow
def test_torch_and_tensorflow_share_one_process():
    """configure_frameworks caps both frameworks' threads; both then run in the same interpreter.

    The Keras helpers are imported first on purpose: importing triton (via torchvision.ops) after
    TensorFlow segfaults unless helpers.core.env.load_torch_before_tensorflow ran before TensorFlow.
    """
    code = (
        "import helpers.training.keras_fit, helpers.data.tf_data\n"
        "import torchvision.ops, torch, tensorflow as tf, json\n"
        "from helpers.core.env import configure_frameworks\n"
        "done = configure_frameworks(threads=1)\n"
        "x = torch.ones(64, 64) @ torch.ones(64, 64)\n"
        "y = tf.linalg.matmul(tf.ones((64, 64)), tf.ones((64, 64)))\n"
        "print(json.dumps({'torch': torch.get_num_threads(), 'tf_intra': tf.config.threading.get_intra_op_parallelism_threads(),"
        " 'tf_inter': tf.config.threading.get_inter_op_parallelism_threads(),"
        " 'sum': float(x.sum()) + float(tf.reduce_sum(y))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"torch": 1, "tf_intra": 1, "tf_inter": 1, "sum": 2 * 64 ** 3}


@pytest.mark.slow
def test_mirrored_strategy_over_two_devices_trains_and_checkpoints(synthetic_root, tmp_path):
    """tf.distribute.MirroredStrategy with two logical CPU devices (a stand-in for two GPUs): the recipe's batch is
    split over both replicas, the run trains, checkpoints its best model and scores. A fresh process, because
    logical devices must be set before TensorFlow starts its runtime."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = f"""
import sys; sys.path.insert(0, {str(root)!r})
from helpers.training.keras_fit import mirrored_strategy
from helpers.workflows import multitask
strategy = mirrored_strategy(cpu_devices=2)
from helpers.core.config import get_config
from helpers.data.prepare import prepare
from helpers.training.recipes import KerasRecipe
prep = prepare(get_config("smoke", data_dir={str(synthetic_root)!r}, runs_dir={str(tmp_path)!r}), progress=False)
run = multitask.run(prep, KerasRecipe(image_size=32, epochs=2, batch_size=16), verbose=0, strategy=strategy)
print("replicas", strategy.num_replicas_in_sync, "epochs", run.epochs_run, "auroc", run.test_metrics["roc_auc"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas 2 epochs 2" in done.stdout
    out = tmp_path / layout.MULTITASK
    assert (out / kinds.MULTITASK.model_file).exists() and (out / layout.METRICS).exists()
    assert pd.read_csv(out / layout.KERAS_LOG)["epoch"].tolist() == [0, 1]
