"""Notebook 05's artefacts: the trained models of notebooks 01–04 loaded for features and Grad-CAM,
their masks and predictions, and notebook 05's outputs.

The computations live elsewhere: :mod:`helpers.features` (features, t-SNE, silhouettes),
:mod:`helpers.gradcam` (Grad-CAM, overlays) and :mod:`helpers.localisation` (scores against the masks).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..artefacts import runs
from ..core import files
from ..evaluation import metrics as M
from ..evaluation.localisation import MEAN_ROW
from ..explain.features import TSNE_PARAMS, keras_features, pooled_resnet, torch_features
from ..explain.gradcam import keras_gradcam, torch_gradcam

__all__ = ["localise", "TrainedModel", "load_trained_models", "features_of", "gradcam_of", "load_masks", "write_outputs"]


@dataclasses.dataclass
class TrainedModel:
    """One saved model, ready for features and Grad-CAM."""

    name: str
    framework: str                      # "torch" | "keras"
    notebook: str                       # the notebook that saved it
    model: Any
    image_size: int
    features: Any = None                # torch module giving pooled features (None: not used for t-SNE)
    cam_layer: Any = None               # torch target layer (Keras: the layer name)
    weights: str = "?"

    def inputs(self, prepared, frame: pd.DataFrame):
        """The model's input batch for ``frame``'s rows (torch: normalised tensor; Keras: [0, 1] array)."""
        cache = prepared.cache(self.image_size, progress=False)
        raw = np.stack([cache.images[i] for i in cache.indices(frame["path"])]) if len(frame) else \
            np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
        if self.framework == "keras":
            return raw.astype(np.float32) / 255.0
        from ..data.torch_data import eval_transform

        tf = eval_transform(self.image_size)
        if not len(raw):
            return torch.zeros(0, 3, self.image_size, self.image_size)
        return torch.stack([tf(image=im)["image"] for im in raw])


def _load_torch(runs_dir, stem: str):
    """A saved torch model of notebook ``stem`` and its metadata."""
    from ..models.classifiers import load_model

    return load_model(runs.artefact(runs_dir, stem))


def _supervised(runs_dir, name: str) -> TrainedModel:
    m, meta = _load_torch(runs_dir, runs.SUPERVISED)
    return TrainedModel(name, "torch", runs.SUPERVISED, m, meta["image_size"], pooled_resnet(m),
                        m.layer4[-1], meta.get("weights", "?"))


def _simclr(runs_dir, name: str) -> TrainedModel:
    m, meta = _load_torch(runs_dir, runs.SIMCLR)
    return TrainedModel(name, "torch", runs.SIMCLR, m.encoder, meta["image_size"], m.encoder, None,
                        meta.get("weights", "?"))


def _probe(runs_dir, name: str) -> TrainedModel:
    m, meta = _load_torch(runs_dir, runs.PROBE)
    return TrainedModel(name, "torch", runs.PROBE, m, meta["image_size"], None, m.encoder.layer4[-1],
                        str(meta.get("encoder", {}).get("weights", "?")))


def _keras(runs_dir, name: str) -> TrainedModel:
    from .keras_track import LAST_CONV, SHARED_DENSE, load_multitask

    m, meta = load_multitask(runs.notebook_dir(runs_dir, runs.KERAS, create=False))
    return TrainedModel(name, "keras", runs.KERAS, m, meta["image_size"], SHARED_DENSE, LAST_CONV,
                        "trained from scratch")


#: (model name, notebook, loader) of every model notebook 05 looks at, in order.
_MODELS = (("supervised ResNet-50", runs.SUPERVISED, _supervised), ("SimCLR encoder", runs.SIMCLR, _simclr),
           ("linear probe", runs.PROBE, _probe), ("Keras multi-task", runs.KERAS, _keras))


def load_trained_models(runs_dir) -> tuple[list[TrainedModel], list[str]]:
    """Every model 01–04 saved under ``runs_dir``; for each missing one, a line naming the notebook to run."""
    found, missing = [], []
    for name, stem, load in _MODELS:
        path = runs.artefact(runs_dir, stem)
        if path.exists():
            found.append(load(runs_dir, name))
        else:
            missing.append(runs.missing_message(name, path, stem))
    return found, missing


def features_of(entry: TrainedModel, inputs) -> np.ndarray | None:
    """t-SNE features of a trained model (None when the model has none, e.g. the linear probe)."""
    if entry.features is None:
        return None
    if entry.framework == "keras":
        return keras_features(entry.model, inputs, layer=entry.features)
    return torch_features(entry.features, inputs)


def gradcam_of(entry: TrainedModel, inputs) -> np.ndarray | None:
    """Grad-CAM maps toward "defective" (None when the model has no classifier, e.g. the SimCLR encoder)."""
    if entry.cam_layer is None:
        return None
    if entry.framework == "keras":
        return keras_gradcam(entry.model, inputs, conv_layer=entry.cam_layer)
    return torch_gradcam(entry.model, inputs, entry.cam_layer, target_class=1)


def load_masks(prepared, frame: pd.DataFrame) -> list[np.ndarray]:
    """Ground-truth masks (bool, at their own resolution) of ``frame``'s rows; an all-False mask where none."""
    from ..data.images import load_mask

    out = []
    for _, r in frame.iterrows():
        shape = (int(r["height"]), int(r["width"]))
        out.append(load_mask(prepared.root / r["mask_path"] if r["mask_path"] else None, shape).astype(bool))
    return out


def localise(cams: dict[str, np.ndarray], masks: list[np.ndarray], frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model's Grad-CAM maps scored by :func:`helpers.localisation.score_maps` (the one localisation metric:
    pixel AUROC over a category's images, good included; AU-PRO to FPR 0.3; pointing game), and the per-image
    table of the defective images for figures. Masks are resized to the maps; a defective image without a
    mask cannot be scored and is left out."""
    from ..evaluation.localisation import LOCALISATION_COLUMNS, localisation_table, resize_mask, score_maps

    scorable = np.flatnonzero(((frame["label"] == 0) | (frame["mask_path"] != "")).to_numpy())
    tables, per_image = [], []
    for name, maps in cams.items():
        small = [resize_mask(masks[i], maps.shape[1:]) for i in scorable]
        tables.append(score_maps(f"Grad-CAM: {name}", maps[scorable], small, frame["category"].iloc[scorable]))
        bad = [j for j, i in enumerate(scorable) if small[j].any()]
        per_image.append(localisation_table(name, frame.iloc[scorable[bad]], maps[scorable[bad]], [small[j] for j in bad]))
    summary = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=LOCALISATION_COLUMNS)
    per = pd.concat(per_image, ignore_index=True) if per_image else pd.DataFrame(
        columns=["model", "path", "category", "pixel_auroc", "pointing_hit", "flat_map"])
    return summary, per


def write_outputs(cfg, prepared, silhouette: dict[str, dict[str, float]], summary: pd.DataFrame,
                  per_image: pd.DataFrame, started: float, notes: dict[str, Any] | None = None):
    """Notebook 05's folder: metrics.json (silhouettes + localisation), localisation*.csv."""
    out = runs.notebook_dir(cfg.runs_dir, runs.EXPLAIN)
    files.write_csv(summary, out / "localisation.csv")
    files.write_csv(per_image, out / "localisation_per_image.csv")
    flat: dict[str, float] = {}
    for model, s in silhouette.items():
        flat[f"{model} | silhouette by category"] = s["by_category"]
        flat[f"{model} | silhouette by defect"] = s["by_defect"]
    for _, r in summary[summary["category"] == MEAN_ROW].iterrows():
        for col, label in (("pixel_auroc", "pixel AUROC"), ("au_pro", "AU-PRO"), ("pointing_game", "pointing game")):
            flat[f"{r['maps']} | {label}"] = r[col]
    record = M.metrics_record(runs.EXPLAIN, "Explainability: t-SNE silhouettes, Grad-CAM localisation",
                              "shared-split", cfg.profile.name, prepared.split["split"].value_counts().to_dict(),
                              None, "fixed", flat or {"note": "no trained model found"},
                              summary, started=started,
                              extra={"silhouette": silhouette, "tsne": TSNE_PARAMS, **(notes or {})},
                              data=prepared.provenance())
    return M.write_metrics(record, cfg.runs_dir, path=out / runs.METRICS)
