"""``predict``: score image files and folders with a model folder, the way its notebook scored ``test``.

One row per input entry — scored, or listed with the reason it was not — and, with ``heatmaps``, an overlay PNG
per scored image (PatchCore's anomaly map, or Grad-CAM toward "defective" computed with the framework model
whatever backend scores). The inspector page (:mod:`helpers.deploy.serve`) scores with the same :class:`Predictor`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..artefacts.card import ModelCard, read_card
from ..data import preprocessing
from ..models import kinds
from ..viz.maps import save_overlay
from .inferencers import Inferencer, open_inferencer
from .inputs import batches, category_of, collect_inputs, vet

__all__ = ["PREDICT_COLUMNS", "BatchResult", "Predictor", "predict"]

#: The columns of :func:`predict`'s table.
PREDICT_COLUMNS = ["path", "category", "score", "decision", "predicted_category", "heatmap", "problem"]


@dataclass
class BatchResult:
    """One scored batch: each image's defect score, decision at the threshold, predicted category ('' for models
    without a category head) and map for display (H×W in [0, 1]; None unless asked for)."""

    scores: np.ndarray
    decisions: list[str]
    predicted: list[str]
    maps: np.ndarray | None


class Predictor:
    """A model folder ready to score: its validated card, the inferencer of one backend and, for maps, Grad-CAM on
    the framework model (gradients are not in an ONNX file)."""

    def __init__(self, model_dir: str | os.PathLike, backend: str = "onnx", threads: int | None = None):
        self.folder = Path(model_dir)
        self.card: ModelCard = read_card(self.folder)
        self.kind = kinds.get(self.card.kind)
        self.inferencer: Inferencer = open_inferencer(self.folder, self.card, backend, threads)
        self._cam_model: object | None = None

    def decision(self, score: float, threshold: float | None = None) -> str:
        return "defective" if score >= (self.card.threshold.value if threshold is None else threshold) else "good"

    def _cams(self, batch: np.ndarray) -> np.ndarray | None:
        if self._cam_model is None:
            self._cam_model = getattr(self.inferencer, "model", None) or self.kind.load(self.folder / self.card.model_file)[0]
        return self.kind.gradcam(self._cam_model, batch)

    def score(self, images: Sequence, category: int | None = None, maps: bool = False) -> BatchResult:
        """Score files or H×W×3 uint8 arrays (one category's, for a per-category model: ``category`` its index)."""
        batch = preprocessing.batch(self.card.input, images)
        out = self.inferencer(batch, category)
        names = list(self.card.categories)
        predicted = ([names[j] for j in out.categories.argmax(1)] if out.categories is not None and names
                     else [""] * len(batch))
        heat = None
        if maps:
            heat = np.clip(out.maps, 0, 1) if out.maps is not None else self._cams(batch)
        return BatchResult(out.defect, [self.decision(s) for s in out.defect], predicted, heat)

    def display(self, image: str | os.PathLike | np.ndarray) -> np.ndarray:
        """The image as the model saw it (resized, and cropped for PatchCore), H×W×3 uint8."""
        return preprocessing.load_image(self.card.input, image)


def predict(model_dir: str | os.PathLike, inputs: Sequence[str | os.PathLike], backend: str = "onnx",
            batch_size: int = 32, progress: bool = True, heatmaps: str | os.PathLike | None = None,
            category: str | None = None) -> pd.DataFrame:
    """Score image files and folders with a model folder.

    Returns one row per input entry (:data:`PREDICT_COLUMNS`): ``path, category, score, decision``
    (``defective``/``good`` at the card's threshold), ``predicted_category`` (models with a category head),
    ``heatmap`` (the overlay written, with ``heatmaps``) and ``problem`` (why an entry was not scored: not an
    image, corrupt, a link, no category for PatchCore, …; empty when scored). Each file is checked by
    :func:`helpers.data.images.inspect_image` (header size first, then a full decode) before it is scored, so one
    bad file costs only itself.

    A per-category model (PatchCore) has a memory bank per category: an image's category comes from its path (a
    folder named after one, :func:`helpers.deploy.inputs.category_of`) or from ``category``, which applies to every
    input. ``heatmaps``: a folder for one overlay PNG per scored image (the image beside it with the map over it).
    """
    from tqdm.auto import tqdm

    predictor = Predictor(model_dir, backend)
    paths, problems = collect_inputs(inputs)
    good, cats = vet(paths, problems, predictor.card, category)
    category_of_path = dict(zip(map(str, good), cats))
    out_dir = Path(heatmaps) if heatmaps is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tqdm(total=len(good), desc=f"scoring ({backend})", unit="img", disable=not progress) as bar:
        for chunk, index in batches(predictor.card, good, batch_size, cats):
            scored = predictor.score(chunk, index, maps=out_dir is not None)
            written = [""] * len(chunk)
            if out_dir is not None and scored.maps is not None:
                written = [str(save_overlay(predictor.display(p), m, out_dir / f"{len(rows) + j:05d}_{Path(p).stem}.png"))
                           for j, (p, m) in enumerate(zip(chunk, scored.maps))]
            rows += [{"path": str(p), "category": category_of_path[str(p)], "score": float(s), "decision": d,
                      "predicted_category": c, "heatmap": h, "problem": ""}
                     for p, s, d, c, h in zip(chunk, scored.scores, scored.decisions, scored.predicted, written)]
            bar.update(len(chunk))
    rows += [{"path": p["path"], "category": category_of(p["path"]), "score": np.nan, "decision": "",
              "predicted_category": "", "heatmap": "", "problem": p["problem"]} for p in problems]
    return pd.DataFrame(rows, columns=PREDICT_COLUMNS)
