"""Checks of a model folder's exports on its own images: parity of ONNX with the framework, each backend's test
AUROC, and what INT8 cost (recorded in the card)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..artefacts.card import Int8Quality, ModelCard, read_card, write_card
from ..core import layout
from ..data import preprocessing
from ..errors import ModelFolderError
from .inferencers import Inferencer, open_inferencer
from .inputs import batches

__all__ = ["PARITY_TOLERANCE", "AUROC_BUDGET", "Evaluation", "Parity", "run_images", "scores_of", "evaluate", "parity",
           "record_int8_quality"]

#: fp32 parity: the largest difference allowed between onnxruntime's and the framework's scores.
PARITY_TOLERANCE = 1e-4
#: INT8's allowance: the test AUROC it may lose against fp32; beyond it, deploy the fp32 file.
AUROC_BUDGET = 0.005


@dataclass
class Evaluation:
    """One backend on the folder's ``test`` images: the AUROC, every score and every decision at the threshold."""

    backend: str
    n: int
    roc_auc: float
    scores: np.ndarray
    decisions: np.ndarray


@dataclass
class Parity:
    """ONNX against the framework on the same images (``ok``: scores within :data:`PARITY_TOLERANCE`, maps within it
    times max(1, map scale), the same decisions)."""

    n: int
    max_abs_diff: float
    same_decisions: bool
    map_max_abs_diff: float
    map_scale: float
    ok: bool
    onnx: np.ndarray
    framework: np.ndarray


def run_images(model_dir: str | os.PathLike, split: str, label: int | None = None,
               root: str | os.PathLike | None = None) -> tuple[list[Path], np.ndarray]:
    """The images of one split that the model folder's notebook scored (its ``scores.csv``), with their labels;
    :class:`ModelFolderError` when they are not on this machine.

    ``root``: where the dataset is now (e.g. ``load_prepared(cfg).root`` on a new Colab runtime); default: the root
    the card recorded."""
    folder = Path(model_dir)
    card = read_card(folder, check_model_file=False)
    scores_path = folder / layout.SCORES
    if not scores_path.exists():
        raise ModelFolderError(f"{folder}: no {layout.SCORES}; run the model's notebook to the end.")
    rows = pd.read_csv(scores_path).query("split == @split")
    if label is not None:
        rows = rows[rows["label"] == label]
    base = Path(root or card.data.get("root") or "")
    paths = [base / p for p in rows["path"]]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ModelFolderError(f"{len(missing)} of the {split} images named in {scores_path} are not on this "
                               f"machine (first: {missing[0]}); the card's data root is {base}.")
    return paths, rows["label"].to_numpy()


def scores_of(inferencer: Inferencer, card: ModelCard, paths: Sequence, batch_size: int = 32) -> np.ndarray:
    """Defect scores of ``paths`` in their order (a per-category model scores them grouped by category)."""
    index = {str(p): i for i, p in enumerate(paths)}
    out = np.full(len(paths), np.nan)
    for chunk, category in batches(card, paths, batch_size):
        out[[index[str(p)] for p in chunk]] = inferencer(preprocessing.batch(card.input, chunk), category).defect
    return out


def evaluate(model_dir: str | os.PathLike, backend: str, batch_size: int = 32,
             root: str | os.PathLike | None = None) -> Evaluation:
    """Test AUROC and decisions of one backend on the folder's own ``test`` images (under ``root``)."""
    from sklearn.metrics import roc_auc_score

    folder = Path(model_dir)
    card = read_card(folder)
    paths, labels = run_images(folder, "test", root=root)
    scores = scores_of(open_inferencer(folder, card, backend), card, paths, batch_size)
    auroc = float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else float("nan")
    return Evaluation(backend, len(paths), auroc, scores, scores >= card.threshold.value)


def parity(model_dir: str | os.PathLike, images: Sequence, batch_size: int = 16) -> Parity:
    """ONNX against the framework on ``images``: the largest difference of the scores (the defect score, and the
    category probabilities where there are some), whether every decision at the card's threshold agrees, and for
    models with maps the largest difference of the maps next to their scale (the largest |map| value: maps are
    compared relative to it, as their values can be far from 1). A per-category model's images need their category
    in their path (:func:`helpers.deploy.inputs.category_of`)."""
    folder = Path(model_dir)
    card = read_card(folder)
    onnx, framework = open_inferencer(folder, card, "onnx"), open_inferencer(folder, card, "framework")
    a, b, worst, map_worst, map_scale = [], [], 0.0, 0.0, 0.0
    for chunk, category in batches(card, list(images), batch_size):
        batch = preprocessing.batch(card.input, chunk)
        sa, sb = onnx(batch, category), framework(batch, category)
        a.append(sa.defect)
        b.append(sb.defect)
        if sa.categories is not None and sb.categories is not None:
            worst = max(worst, float(np.max(np.abs(sa.categories - sb.categories))))
        if sa.maps is not None and sb.maps is not None:
            map_worst = max(map_worst, float(np.max(np.abs(sa.maps - sb.maps))))
            map_scale = max(map_scale, float(np.max(np.abs(sb.maps))))
    x, y = (np.concatenate(a), np.concatenate(b)) if a else (np.zeros(0), np.zeros(0))
    t = card.threshold.value
    worst = max(worst, float(np.max(np.abs(x - y))) if len(x) else 0.0)
    same = bool(np.array_equal(x >= t, y >= t))
    ok = worst <= PARITY_TOLERANCE and same and map_worst <= PARITY_TOLERANCE * max(1.0, map_scale)
    return Parity(len(x), worst, same, map_worst, map_scale, ok, x, y)


def record_int8_quality(model_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> Int8Quality:
    """Test AUROC of the fp32 and INT8 files on the folder's ``test`` images, written into the card's ``int8``
    entry (with whether the change is within :data:`AUROC_BUDGET`), and returned."""
    folder = Path(model_dir)
    fp32, int8 = evaluate(folder, "onnx", root=root), evaluate(folder, "onnx-int8", root=root)
    defined = not (np.isnan(fp32.roc_auc) or np.isnan(int8.roc_auc))
    change = int8.roc_auc - fp32.roc_auc if defined else None
    quality = Int8Quality(None if np.isnan(fp32.roc_auc) else fp32.roc_auc, None if np.isnan(int8.roc_auc) else int8.roc_auc,
                          change, fp32.n, int((fp32.decisions != int8.decisions).sum()),
                          None if change is None else bool(change >= -AUROC_BUDGET), AUROC_BUDGET)
    card = read_card(folder)
    if card.int8 is None:
        raise ModelFolderError(f"{folder}: no INT8 export in the card; run `python -m helpers export --int8` first.")
    write_card(folder, card.with_export("int8", replace(card.int8, quality=quality)))
    return quality
