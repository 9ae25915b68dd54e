"""Fitting the Keras model (notebook 04): determinism, the recipe's compile and callbacks, resuming an interrupted
fit (``BackupAndRestore``) or reusing a finished one, a loss that turns NaN, and MirroredStrategy."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import files, layout
from ..core.env import load_torch_before_tensorflow
from ..models.kinds import MULTITASK
from .recipes import KerasRecipe

load_torch_before_tensorflow()     # before any TensorFlow import below (and its log level)

__all__ = ["set_determinism", "compile_multitask", "stop_on_non_finite_loss", "mirrored_strategy", "fit_or_reuse"]


def set_determinism(seed: int) -> None:
    """Seed Python/NumPy/TF (``keras.utils.set_random_seed``) and make TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def compile_multitask(model: Any, recipe: KerasRecipe, n_categories: int = 15) -> None:
    """Losses (sparse CE + BCE, weights 1.0 / 2.0), Adam with defaults, accuracy and AUC metrics.

    With one category (a user's own product line) the category head has nothing to learn — its softmax over one
    class is 1 whatever the image — so its loss weighs 0 and no category metric is computed (Keras would report the
    one-unit head's "accuracy" as a binary accuracy: 0.0)."""
    import keras

    single = n_categories < 2
    model.compile(optimizer=keras.optimizers.Adam(),
                  loss={"category": "sparse_categorical_crossentropy", "defect": "binary_crossentropy"},
                  loss_weights={"category": 0.0 if single else recipe.category_weight, "defect": recipe.defect_weight},
                  metrics={"category": [] if single else ["accuracy"],
                           "defect": ["accuracy", keras.metrics.AUC(name="auc")]})


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
    path = out / layout.KERAS_FINGERPRINT
    try:
        record = json.loads(path.read_text()) if path.exists() else None
    except ValueError:
        record = None
    if record and record.get("fingerprint") == fingerprint:
        done = record.get("finished") and (out / MULTITASK.model_file).exists()
        return "finished" if done and (out / layout.KERAS_LOG).exists() else "resume"
    if record is not None or (out / layout.KERAS_BACKUP).exists():
        print(f"The run in {out} was made with another recipe or split: training starts afresh.")
        shutil.rmtree(out / layout.KERAS_BACKUP, ignore_errors=True)
    return "fresh"


def fit_or_reuse(model, out: Path, fingerprint: str, recipe: KerasRecipe, train_ds, val_ds, extra_callbacks,
                  verbose: int, *, fitted: Any = None, steps_per_epoch: int | None = None) -> bool:
    """Train (resuming an interrupted fit of the same recipe and split), or reuse a finished one; True when
    anything was carried over from an earlier run.

    ``fitted``: the model ``fit`` runs on when it is not ``model`` itself — a frozen backbone's heads on cached
    features (:func:`helpers.models.multitask.heads_only`), whose layers ``model`` shares; ``model`` is what the
    checkpoint saves. ``steps_per_epoch``: for a repeated training dataset."""
    previous = _previous_run(out, fingerprint)
    if previous == "finished":
        print(f"Training had already finished for this recipe and split ({out}): reusing the saved model. "
              f"Delete {out / layout.KERAS_FINGERPRINT} to train again.")
        return True
    files.write_json(out / layout.KERAS_FINGERPRINT, {"fingerprint": fingerprint, "finished": False})
    callbacks, resumed = _callbacks(out, recipe, extra_callbacks, model)
    # shuffle=False: the tf.data pipeline shuffles (Keras ignores shuffle for a dataset, and warns about it otherwise)
    (fitted or model).fit(train_ds, validation_data=val_ds, epochs=recipe.epochs, callbacks=callbacks, verbose=verbose,
                          shuffle=False, steps_per_epoch=steps_per_epoch)
    files.write_json(out / layout.KERAS_FINGERPRINT, {"fingerprint": fingerprint, "finished": True})
    return resumed


def _callbacks(out: Path, recipe: KerasRecipe, extra: list | None, saved: Any) -> tuple[list, bool]:
    """The recipe's callbacks, and whether a backup of an interrupted fit is there to resume from.

    A fresh run deletes a stale log and model; a resumed one appends to the log and carries
    ModelCheckpoint's best value over from it. The checkpoint saves ``saved`` (the whole network), whichever model
    ``fit`` runs on.
    """
    import keras

    class WholeModelCheckpoint(keras.callbacks.ModelCheckpoint):
        def set_model(self, model: Any) -> None:
            super().set_model(saved)

    backup, log_path, best_path = out / layout.KERAS_BACKUP, out / layout.KERAS_LOG, out / MULTITASK.model_file
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
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=recipe.patience, restore_best_weights=True,
                                      start_from_epoch=recipe.min_epochs),   # the step floor first (recipes)
        WholeModelCheckpoint(str(best_path), monitor="val_defect_auc", mode="max", save_best_only=True,
                             initial_value_threshold=best_so_far),
        keras.callbacks.CSVLogger(str(log_path), append=True),
        *(extra or []),
    ], resumed
