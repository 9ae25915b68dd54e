"""Notebook 04 as functions: the Keras multi-task CNN (object category + defective/good) — study 001's network,
trained from scratch, and the same heads on an ImageNet backbone.

:func:`run` trains one of :data:`helpers.models.multitask.NETWORKS` with the recipe's callbacks (EarlyStopping,
ModelCheckpoint on val defect AUC, CSVLogger, BackupAndRestore: :mod:`helpers.training.keras_fit`), scores the
checkpointed model once on the held-out ``test`` split and writes its model folder (the study's network: notebook
04's; the ImageNet one: ``imagenet/`` inside it): ``metrics.json``, ``scores.csv``, ``model.keras``,
``model_card.json`` (with the label encoding), ``training_log.csv``.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artefacts.card import card_for, write_card
from ..artefacts.scored import ScoredRun, labels_used, write_scored
from ..core import layout
from ..core.env import load_torch_before_tensorflow
from ..data.prepare import Prepared
from ..evaluation import metrics as M
from ..models import kinds
from ..models.multitask import build, feature_extractor, heads_only, network, predict_multitask
from ..training.keras_fit import compile_multitask, fit_or_reuse, set_determinism
from ..training.loop import fingerprint
from ..training.recipes import KerasRecipe, scaled, with_step_floor

__all__ = ["KIND_OF", "MultitaskRun", "recipe_for", "run", "side_by_side", "load", "command", "command_imagenet"]

#: The model kind each network is saved as (its folder, its label in the report).
KIND_OF: dict[str, kinds.ModelKind] = {"study": kinds.MULTITASK, "imagenet": kinds.MULTITASK_IMAGENET}


@dataclass(kw_only=True)
class MultitaskRun(ScoredRun):
    """Notebook 04's scored run, with the category task: the label encoding and its test metrics (only ``note`` when
    the data holds one category)."""

    categories: list[str]
    category_metrics: dict[str, Any]
    epochs_run: int
    resumed: bool
    network: str = "study"


def recipe_for(network_key: str, profile: Any) -> KerasRecipe:
    """Notebook 04's recipe for a network at a profile: study 001's, scaled (:func:`helpers.training.recipes.scaled`);
    a network that takes the torch track's input size (:attr:`KerasNetwork.input_size`) gets the profile's torch size,
    at most the study's 224."""
    recipe = scaled(KerasRecipe(), profile)
    if network(network_key).input_size == "torch":
        recipe = replace(recipe, image_size=min(profile.image_size, KerasRecipe().image_size))
    return recipe


def _datasets(prepared: Prepared, recipe: KerasRecipe, categories: list[str], seed: int, shuffled_defect: bool
              ) -> tuple[Any, dict[str, tuple[pd.DataFrame, Any]]]:
    from ..data.tf_data import make_dataset

    cache = prepared.cache(recipe.image_size, progress=False)
    train = prepared.frame("train")
    if shuffled_defect:
        train = train.assign(label=np.random.default_rng(seed).permutation(train["label"].to_numpy()))

    def make(frame: pd.DataFrame, training: bool) -> Any:
        return make_dataset(frame, categories, recipe.image_size, recipe.batch_size, training=training, cache=cache,
                            seed=seed, parallel=False)     # op determinism (set_determinism) maps in order anyway
    return make(train, True), {s: (prepared.frame(s), make(prepared.frame(s), False)) for s in ("val", "test")}


def _score_splits(model: Any, evals: dict[str, tuple[pd.DataFrame, Any]], categories: list[str]) -> pd.DataFrame:
    """Defect scores and predicted categories of the val and test rows, in order."""
    rows = []
    for split, (frame, ds) in evals.items():
        cat_p, defect_p = predict_multitask(model, ds)
        rows.append(pd.DataFrame({"path": frame["path"], "category": frame["category"],
                                  "label": frame["label"].astype(int), "split": split, "score": defect_p,
                                  "pred_category": [categories[i] for i in cat_p.argmax(1)]}))
    return pd.concat(rows, ignore_index=True)


def _category_task(test: pd.DataFrame, categories: list[str]) -> dict[str, Any]:
    """The category head's test metrics; with one category there is nothing to learn, and that is what is said."""
    if len(categories) < 2:
        return {"note": f"one category ({categories[0] if categories else 'none'}): the category head has nothing to "
                        "learn (its softmax over one class is 1 for every image), so no category metric is reported"}
    return M.category_metrics(test["category"], test["pred_category"], labels=categories)


def _train(prepared: Prepared, recipe: KerasRecipe, net: str, out: Path, categories: list[str], shuffled_defect: bool,
           extra_callbacks: list | None, verbose: int, strategy: Any) -> tuple[Any, dict[str, Any], bool]:
    """Build, compile and fit (or resume, or reuse) the model; the evaluation datasets and whether it resumed. A
    frozen backbone's network is fitted as its heads on cached features (only they are compiled; the whole network
    is saved, without an optimiser of its own)."""
    set_determinism(prepared.cfg.seed)
    train_ds, evals = _datasets(prepared, recipe, categories, prepared.cfg.seed, shuffled_defect)
    frozen = network(net).frozen
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build(net, len(categories), recipe.image_size)
        heads = heads_only(model) if frozen else model
        compile_multitask(heads, recipe, len(categories))
    key = fingerprint(prepared, recipe=asdict(recipe), shuffled=shuffled_defect, categories=categories, network=net)
    if not frozen:
        resumed = fit_or_reuse(model, out, key, recipe, train_ds, evals["val"][1], extra_callbacks, verbose)
        return model, evals, resumed
    train_f, val_f, steps = _cached_features(model, recipe, train_ds, evals["val"][1], prepared.cfg.seed)
    resumed = fit_or_reuse(model, out, key, recipe, train_f, val_f, extra_callbacks, verbose, fitted=heads,
                           steps_per_epoch=steps)
    return model, evals, resumed


def _cached_features(model: Any, recipe: KerasRecipe, train_ds: Any, val_ds: Any, seed: int) -> tuple[Any, Any, int]:
    """A frozen backbone's features, computed once: the training images under ``recipe.feature_draws`` draws of the
    augmentation (shuffled, repeated: each epoch takes as many as there are training images) and the val images;
    and the steps of one epoch."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    backbone = feature_extractor(model)

    def features(ds: Any, draws: int, desc: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        xs, cats, defects = [], [], []
        for _ in tqdm(range(draws), desc=desc, disable=draws < 2):
            for x, y in ds:
                xs.append(np.asarray(backbone.predict_on_batch(x)))      # compiled: ~3× eager's speed
                cats.append(y["category"].numpy())
                defects.append(y["defect"].numpy())
        return np.concatenate(xs), {"category": np.concatenate(cats), "defect": np.concatenate(defects)}

    draws = max(1, recipe.feature_draws)
    fx, fy = features(train_ds, draws, "backbone features of the training images, augmented")
    vx, vy = features(val_ds, 1, "")
    n_train = len(fx) // draws
    train = (tf.data.Dataset.from_tensor_slices((fx, fy)).shuffle(len(fx), seed=seed, reshuffle_each_iteration=True)
             .repeat().batch(recipe.batch_size))
    val = tf.data.Dataset.from_tensor_slices((vx, vy)).batch(recipe.batch_size)
    return train, val, max(1, -(-n_train // recipe.batch_size))


def run(prepared: Prepared, recipe: KerasRecipe | None = None, *, network_key: str = "study", shuffled_defect: bool = False,
        out_dir: str | os.PathLike | None = None, write_metrics: bool = True, verbose: int = 2,
        extra_callbacks: list | None = None, strategy: Any = None) -> MultitaskRun:
    """Train (or resume) and score a multi-task network (``network_key``: ``study``, study 001's CNN from scratch, or
    ``imagenet``, its heads on a frozen ImageNet backbone; :data:`helpers.models.multitask.NETWORKS`), with
    ``recipe`` (default :func:`recipe_for` the network at the profile).

    A frozen backbone's features are computed once (:attr:`KerasRecipe.feature_draws` draws of the augmentation of
    the training images, and the val images) and only the heads are fitted on them; the whole network is saved.

    With a ``tf.distribute`` ``strategy`` (e.g. :func:`helpers.training.keras_fit.mirrored_strategy`: one replica per
    GPU) the model is built and compiled in its scope; each batch of the recipe is split over the replicas.

    - ``BackupAndRestore`` under ``out_dir/backup`` resumes an interrupted ``fit`` at the next epoch;
      the CSV log is appended to, and ModelCheckpoint's best value is carried over from it.
    - The scored model is the one ModelCheckpoint kept (best ``val_defect_auc``), reloaded from disk.
    - ``shuffled_defect`` permutes the training defect labels (negative control).
    """
    cfg = prepared.cfg
    net, kind = network(network_key), KIND_OF[network_key]
    recipe = recipe or recipe_for(network_key, cfg.profile)
    recipe = with_step_floor(recipe, int((prepared.split["split"] == "train").sum()), cfg.profile)
    started = time.time()
    out = Path(out_dir) if out_dir is not None else layout.notebook_dir(cfg.runs_dir, kind.folder)
    out.mkdir(parents=True, exist_ok=True)
    categories = sorted(prepared.manifest["category"].unique())
    _, evals, resumed = _train(prepared, recipe, net.key, out, categories, shuffled_defect, extra_callbacks, verbose,
                               strategy)
    log = pd.read_csv(out / layout.KERAS_LOG)
    model, _ = kind.load(out / kind.model_file)
    scores = _score_splits(model, evals, categories)
    test = scores[scores["split"] == "test"]
    cat_m = _category_task(test, categories)
    write = write_metrics and not shuffled_defect
    run = write_scored(
        prepared, kind.folder, kind.report_rows[0].label + (" (SHUFFLED DEFECT LABELS control)" if shuffled_defect else ""),
        scores, started=started, threshold_method=recipe.threshold_method, out_dir=out,
        labels=labels_used(prepared, int((prepared.split["split"] == "train").sum()), False,
                           "early stopping (val loss), checkpoint (val defect AUC), threshold"),
        write=write,
        extra_metrics={f"category_{k}": cat_m[k] for k in ("accuracy", "precision_weighted", "recall_weighted",
                                                            "f1_weighted") if k in cat_m},
        extra={"backbone": net.backbone, "weights": net.weights,
               "recipe": asdict(recipe), "categories": categories, "epochs_run": len(log),
               "scored_model": "ModelCheckpoint best val_defect_auc",
               "category_per_class_recall": cat_m.get("per_class_recall"), "category_note": cat_m.get("note", "")},
        run_type=MultitaskRun, model=model, history=log, categories=categories, category_metrics=cat_m,
        epochs_run=len(log), resumed=resumed, network=net.key)
    if not shuffled_defect:       # the label encoding and the threshold travel with the model, in its card
        write_card(out, card_for(run, kind.name, kind.model_file, kind.input_spec(recipe.image_size),
                                 categories=tuple(categories), backbone=net.backbone,
                                 weights=net.weights))
    return run


def side_by_side(study: MultitaskRun, imagenet: MultitaskRun) -> tuple[pd.DataFrame, str]:
    """The two networks on the same held-out ``test`` images: what each stands on, how long it trained, its category
    accuracy and its defect AUROC and F1 with their bootstrap 95% intervals; and the paired-bootstrap AUROC
    difference (the same resamples for both: :func:`helpers.evaluation.intervals.paired_difference`), in words."""
    from ..evaluation import intervals as I

    def row(run: MultitaskRun) -> dict[str, Any]:
        net = network(run.network)
        return {"network": net.backbone, "weights": net.weights, "epochs": run.epochs_run,
                "category accuracy": run.category_metrics.get("accuracy", float("nan")),
                "defect AUROC [95%]": run.intervals["roc_auc"].format(),
                "defect F1 [95%]": run.intervals["f1"].format()}

    table = pd.DataFrame([row(study), row(imagenet)]).set_index("network")
    a, b = imagenet.split_scores("test"), study.split_scores("test")
    if a["label"].nunique() < 2:
        return table, "one class in test: no AUROC difference to compare"
    d = I.paired_difference(a, b)
    verdict = "the interval excludes 0" if d.resolved else f"the interval includes 0: these {len(a)} images do not resolve it"
    return table, f"ImageNet backbone − study's CNN, test AUROC: {d.format(against=0.0, signed=True)} ({verdict})"


def load(folder: str | os.PathLike) -> tuple[Any, list[str], int]:
    """Notebook 04's saved model, its label encoding (category names in the order of the category head) and its input
    size, read from the model folder's card."""
    from ..artefacts.card import read_card

    load_torch_before_tensorflow()
    card = read_card(folder)
    model, _ = kinds.get(card.kind).load(Path(folder) / card.model_file)
    return model, list(card.categories), card.input.image_size


def command(prepared: Any, progress: bool, mirrored: bool, backbone: str, network_key: str = "study") -> str:
    """``python -m helpers train multitask``: study 001's network (``mirrored``: MirroredStrategy); a summary line.
    ``backbone`` is the torch track's: the study's network is its own."""
    from ..training.keras_fit import mirrored_strategy
    from .commands import summary_line

    return summary_line(run(prepared, network_key=network_key, verbose=2 if progress else 0,
                            strategy=mirrored_strategy() if mirrored else None))


def command_imagenet(prepared: Any, progress: bool, mirrored: bool, backbone: str) -> str:
    """``python -m helpers train multitask_imagenet``: the study's heads on the frozen ImageNet backbone."""
    return command(prepared, progress, mirrored, backbone, network_key="imagenet")
