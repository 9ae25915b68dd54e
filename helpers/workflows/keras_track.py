"""Notebook 04 as functions: the Keras multi-task CNN (object category + defective/good).

:func:`build_multitask` is the study's architecture; :func:`run_multitask` trains it with the recipe's
callbacks (EarlyStopping, ModelCheckpoint on val defect AUC, CSVLogger, BackupAndRestore), scores the
checkpointed model once on the held-out ``test`` split and writes its notebook folder (see
:mod:`helpers.runs`): ``metrics.json``, ``scores.csv``, ``model.keras`` (+ ``model_meta.json`` with the label
encoding), ``training_log.csv``.

Stable layer names for explainability (notebook 05): :data:`LAST_CONV` and :data:`SHARED_DENSE`.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artefacts import runs
from ..core import files
from ..core.env import load_torch_before_tensorflow
from ..data.prepare import Prepared
from ..evaluation import metrics as M
from ..training.recipes import KerasRecipe, scaled

load_torch_before_tensorflow()

__all__ = ["mirrored_strategy", "stop_on_non_finite_loss", "LAST_CONV", "SHARED_DENSE", "set_determinism",
           "build_multitask", "compile_multitask", "predict_multitask", "save_meta", "load_multitask", "run_multitask",
           "plot_log"]

LAST_CONV = "last_conv"
SHARED_DENSE = "shared_dense"


def set_determinism(seed: int) -> None:
    """Seed Python/NumPy/TF (``keras.utils.set_random_seed``) and make TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_multitask(n_categories: int = 15, image_size: int = 224):
    """The study's multi-task CNN (Keras functional API).

    Backbone: 4 × [Conv2D(32/64/128/256, 3×3, ReLU, same) → MaxPooling2D(2×2)] → GAP → Dense(512, ReLU)
    → Dropout(0.5). Heads: Dense(256) → Dropout(0.3) → Dense(n_categories, softmax, "category") and
    Dense(128) → Dropout(0.3) → Dense(1, sigmoid, "defect").
    """
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    for i, filters in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same",
                          name=LAST_CONV if filters == 256 else f"conv{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(512, activation="relu", name=SHARED_DENSE)(x)
    shared = layers.Dropout(0.5, name="shared_dropout")(x)
    c = layers.Dense(256, activation="relu", name="category_dense")(shared)
    c = layers.Dropout(0.3, name="category_dropout")(c)
    category = layers.Dense(n_categories, activation="softmax", name="category")(c)
    d = layers.Dense(128, activation="relu", name="defect_dense")(shared)
    d = layers.Dropout(0.3, name="defect_dropout")(d)
    defect = layers.Dense(1, activation="sigmoid", name="defect")(d)
    return keras.Model(inputs, {"category": category, "defect": defect}, name="multitask_cnn")


def compile_multitask(model, recipe: KerasRecipe) -> None:
    """Losses (sparse CE + BCE, weights 1.0 / 2.0), Adam with defaults, accuracy and AUC metrics."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(),
                  loss={"category": "sparse_categorical_crossentropy", "defect": "binary_crossentropy"},
                  loss_weights={"category": recipe.category_weight, "defect": recipe.defect_weight},
                  metrics={"category": ["accuracy"], "defect": ["accuracy", keras.metrics.AUC(name="auc")]})


def _datasets(prepared: Prepared, recipe: KerasRecipe, categories: list[str], seed: int,
              shuffled_defect: bool):
    from ..data.tf_data import make_dataset

    cache = prepared.cache(recipe.image_size, progress=False)
    train = prepared.frame("train")
    if shuffled_defect:
        train = train.assign(label=np.random.default_rng(seed).permutation(train["label"].to_numpy()))
    make = lambda frame, training: make_dataset(frame, categories, recipe.image_size, recipe.batch_size,  # noqa: E731
                                                training=training, cache=cache, seed=seed)
    return make(train, True), {s: (prepared.frame(s), make(prepared.frame(s), False)) for s in ("val", "test")}


def predict_multitask(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(category probabilities N×C, defect probabilities N) for a batched dataset, in order."""
    out = model.predict(dataset, verbose=0)
    return np.asarray(out["category"]), np.asarray(out["defect"]).reshape(-1)


def save_meta(out_dir: Path, categories: list[str], image_size: int, threshold: float | None) -> Path:
    """The label encoding (sorted names → 0..C−1), input size and threshold, saved beside the model."""
    path = out_dir / "model_meta.json"
    return files.write_json(path, {"categories": categories, "image_size": image_size, "threshold": threshold,
                                   "scaling": "[0, 1]"})


def load_multitask(out_dir: str | os.PathLike) -> tuple[Any, dict]:
    """The saved model and its metadata (label encoding, image size, threshold)."""
    import keras

    out_dir = Path(out_dir)
    path = out_dir / "model.keras"
    if not path.exists():
        raise FileNotFoundError(runs.missing_message("Keras multi-task model", path, runs.KERAS))
    return keras.models.load_model(path), json.loads((out_dir / "model_meta.json").read_text())


def stop_on_non_finite_loss():
    """A Keras callback that raises :class:`helpers.errors.NonFiniteLossError` when a batch's loss is NaN or
    infinite (Keras's own ``TerminateOnNaN`` only stops, and the run then ends as if it had succeeded)."""
    import keras

    from ..errors import NonFiniteLossError

    class StopOnNonFiniteLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not np.isfinite(float(loss)):
                raise NonFiniteLossError(
                    f"The training loss is {float(loss)} at batch {batch + 1}: training stopped instead of going on "
                    f"with weights that can only get worse. If it resumed from a backup (backup/ beside the model), "
                    "move that aside and run again; otherwise lower the learning rate.")

    return StopOnNonFiniteLoss()


def mirrored_strategy(cpu_devices: int | None = None):
    """``tf.distribute.MirroredStrategy`` over every GPU; with ``cpu_devices``, over that many logical CPU devices
    (for tests without a GPU: call it before TensorFlow has started its runtime)."""
    import tensorflow as tf

    if cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_devices)])
    return tf.distribute.MirroredStrategy()


def _previous_run(out: Path, fingerprint: str) -> str:
    """``"finished"`` (same recipe and split, model saved), ``"resume"`` (same, interrupted) or ``"fresh"``; a
    backup made with another recipe or split is removed, and that is said."""
    path = out / "fingerprint.json"
    try:
        record = json.loads(path.read_text()) if path.exists() else None
    except ValueError:
        record = None
    if record and record.get("fingerprint") == fingerprint:
        done = record.get("finished") and (out / runs.MODEL_FILES[runs.KERAS]).exists()
        return "finished" if done and (out / "training_log.csv").exists() else "resume"
    if record is not None or (out / "backup").exists():
        print(f"The run in {out} was made with another recipe or split: training starts afresh.")
        shutil.rmtree(out / "backup", ignore_errors=True)
    return "fresh"


def _fit_or_reuse(model, out: Path, fingerprint: str, recipe: KerasRecipe, train_ds, val_ds, extra_callbacks,
                  verbose: int) -> bool:
    """Train (resuming an interrupted fit of the same recipe and split), or reuse a finished one; True when
    anything was carried over from an earlier run."""
    previous = _previous_run(out, fingerprint)
    if previous == "finished":
        print(f"Training had already finished for this recipe and split ({out}): reusing the saved model. "
              f"Delete {out / 'fingerprint.json'} to train again.")
        return True
    files.write_json(out / "fingerprint.json", {"fingerprint": fingerprint, "finished": False})
    callbacks, resumed = _callbacks(out, recipe, extra_callbacks)
    model.fit(train_ds, validation_data=val_ds, epochs=recipe.epochs, callbacks=callbacks, verbose=verbose)
    files.write_json(out / "fingerprint.json", {"fingerprint": fingerprint, "finished": True})
    return resumed


def _callbacks(out: Path, recipe: KerasRecipe, extra: list | None) -> tuple[list, bool]:
    """The recipe's callbacks, and whether a backup of an interrupted fit is there to resume from.

    A fresh run deletes a stale log and model; a resumed one appends to the log and carries
    ModelCheckpoint's best value over from it.
    """
    import keras

    backup, log_path, best_path = out / "backup", out / "training_log.csv", out / runs.MODEL_FILES[runs.KERAS]
    resumed = backup.exists()
    if not resumed:  # a fresh run: no stale log or model from an earlier one
        for p in (log_path, best_path):
            p.unlink(missing_ok=True)
    best_so_far = None
    if resumed and log_path.exists() and log_path.stat().st_size:
        best_so_far = float(pd.read_csv(log_path)["val_defect_auc"].max())
    return [
        stop_on_non_finite_loss(),
        keras.callbacks.BackupAndRestore(str(backup)),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=recipe.patience, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_defect_auc", mode="max", save_best_only=True,
                                        initial_value_threshold=best_so_far),
        keras.callbacks.CSVLogger(str(log_path), append=True),
        *(extra or []),
    ], resumed


def _score_splits(model, evals: dict, categories: list[str]) -> pd.DataFrame:
    """Defect scores and predicted categories of the val and test rows, in order."""
    rows = []
    for split, (frame, ds) in evals.items():
        cat_p, defect_p = predict_multitask(model, ds)
        rows.append(pd.DataFrame({"path": frame["path"], "category": frame["category"],
                                  "label": frame["label"].astype(int), "split": split, "score": defect_p,
                                  "pred_category": [categories[i] for i in cat_p.argmax(1)]}))
    return pd.concat(rows, ignore_index=True)


def run_multitask(prepared: Prepared, recipe: KerasRecipe | None = None, shuffled_defect: bool = False,
                  out_dir: str | os.PathLike | None = None, write_metrics: bool = True, verbose: int = 2,
                  extra_callbacks: list | None = None, strategy=None) -> runs.ScoredRun:
    """Train (or resume) and score the multi-task CNN.

    With a ``tf.distribute`` ``strategy`` (e.g. :func:`mirrored_strategy`: one replica per GPU) the model is
    built and compiled in its scope; each batch of the recipe is split over the replicas.

    - ``BackupAndRestore`` under ``out_dir/backup`` resumes an interrupted ``fit`` at the next epoch;
      the CSV log is appended to, and ModelCheckpoint's best value is carried over from it.
    - The scored model is the one ModelCheckpoint kept (best ``val_defect_auc``), reloaded from disk.
    - ``shuffled_defect`` permutes the training defect labels (negative control).

    The returned run's ``history`` is the CSV log; ``info`` holds ``categories``, ``category_metrics``,
    ``epochs_run`` and ``resumed``.
    """
    import keras

    cfg = prepared.cfg
    recipe = recipe or scaled(KerasRecipe(), cfg.profile)
    started = time.time()
    out = Path(out_dir) if out_dir is not None else runs.notebook_dir(cfg.runs_dir, runs.KERAS)
    out.mkdir(parents=True, exist_ok=True)
    categories = sorted(prepared.manifest["category"].unique())
    set_determinism(cfg.seed)
    train_ds, evals = _datasets(prepared, recipe, categories, cfg.seed, shuffled_defect)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_multitask(len(categories), recipe.image_size)
        compile_multitask(model, recipe)
    fingerprint = runs.fingerprint(prepared, recipe=asdict(recipe), shuffled=shuffled_defect, categories=categories)
    resumed = _fit_or_reuse(model, out, fingerprint, recipe, train_ds, evals["val"][1], extra_callbacks, verbose)
    log = pd.read_csv(out / "training_log.csv")
    model = keras.models.load_model(out / runs.MODEL_FILES[runs.KERAS])
    scores = _score_splits(model, evals, categories)
    test = scores[scores["split"] == "test"]
    cat_m = M.category_metrics(test["category"], test["pred_category"], labels=categories)
    run = runs.write_scored(
        prepared, runs.KERAS, "Keras multi-task CNN" + (" (SHUFFLED DEFECT LABELS control)" if shuffled_defect else ""),
        scores, started=started, threshold_method=recipe.threshold_method, out_dir=out,
        labels=runs.labels_used(prepared, int((prepared.split["split"] == "train").sum()), False,
                                "early stopping (val loss), checkpoint (val defect AUC), threshold"),
        write=write_metrics and not shuffled_defect,
        extra_metrics={"category_accuracy": cat_m["accuracy"], "category_precision_weighted": cat_m["precision_weighted"],
                       "category_recall_weighted": cat_m["recall_weighted"], "category_f1_weighted": cat_m["f1_weighted"]},
        extra={"recipe": asdict(recipe), "categories": categories, "epochs_run": len(log),
               "scored_model": "ModelCheckpoint best val_defect_auc",
               "category_per_class_recall": cat_m["per_class_recall"]},
        model=model, history=log,
        info={"categories": categories, "category_metrics": cat_m, "epochs_run": len(log), "resumed": resumed})
    save_meta(out, categories, recipe.image_size, run.threshold)
    if write_metrics and not shuffled_defect:
        from ..deploy.models import KERAS_ARCH, write_model_card

        write_model_card(run, runs.MODEL_FILES[runs.KERAS], KERAS_ARCH, recipe.image_size, categories=categories)
    return run


def plot_log(log: pd.DataFrame):
    """Curves from the CSV log: total and per-head losses, category/defect accuracy, defect AUC."""
    from ..viz.data import plot_history

    log = log.assign(epoch=log["epoch"] + 1)
    panels = {"loss": ["loss", "val_loss"], "per-head loss": ["category_loss", "val_category_loss",
                                                              "defect_loss", "val_defect_loss"],
              "accuracy": ["category_accuracy", "val_category_accuracy", "defect_accuracy", "val_defect_accuracy"],
              "defect AUC": ["defect_auc", "val_defect_auc"]}
    return plot_history(log, panels)
