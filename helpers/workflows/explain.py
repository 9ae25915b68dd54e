"""Notebook 05 as functions: the trained models of notebooks 01–04 loaded for features and Grad-CAM (each through
its kind, :mod:`helpers.models.kinds`), their masks, localisation scored against them, and notebook 05's outputs.

The computations live elsewhere: :mod:`helpers.explain` (features, t-SNE, silhouettes, Grad-CAM),
:mod:`helpers.evaluation.localisation` (scores against the masks) and :mod:`helpers.viz` (figures).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artefacts import record as R
from ..core import files, layout
from ..data import preprocessing
from ..data.preprocessing import InputSpec
from ..evaluation.localisation import MEAN_ROW
from ..explain.features import TSNE_PARAMS
from ..explain.gradcam import CamSetting
from ..models import backbones, kinds

__all__ = ["TrainedModel", "explained_kinds", "CAM_SETTINGS", "load_trained_models", "features_of", "gradcam_of",
           "compare_cams", "load_masks", "localise", "write_outputs"]


@dataclasses.dataclass
class TrainedModel:
    """One saved model, ready for features and Grad-CAM."""

    name: str
    kind: kinds.ModelKind
    notebook: str                       # the notebook that saved it
    model: Any
    spec: InputSpec
    weights: str = "?"

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    def inputs(self, prepared: Any, frame: pd.DataFrame) -> np.ndarray:
        """The model's input batch for ``frame``'s rows (:mod:`helpers.data.preprocessing`, from the cache)."""
        return preprocessing.from_cache(self.spec, prepared, frame["path"])


def explained_kinds() -> tuple[kinds.ModelKind, ...]:
    """The kinds notebook 05 looks at (the registry's ``explained`` ones), in notebook order."""
    return tuple(sorted((k for k in kinds.KINDS.values() if k.explained), key=lambda k: k.folder))


def _load(runs_dir: Any, name: str, stem: str, kind: kinds.ModelKind) -> TrainedModel:
    path = layout.artefact(runs_dir, stem, kind.model_file)
    if kind.framework == "keras":        # its input size and weights are on its card
        from ..artefacts.card import read_card

        card = read_card(path.parent)
        model, _ = kind.load(path.parent / card.model_file)
        return TrainedModel(name, kind, stem, model, kind.input_spec(card.input.image_size), str(card.weights))
    model, meta = kind.load(path)
    entry = backbones.get(kinds.recorded_backbone(meta))
    weights = meta.get("weights") or (meta.get("encoder") or {}).get("weights", "?")
    return TrainedModel(name, kind, stem, model, kind.input_spec(int(meta["image_size"]), entry.mean, entry.std),
                        str(weights))


def load_trained_models(runs_dir: Any) -> tuple[list[TrainedModel], list[str]]:
    """Every model 01–04 saved under ``runs_dir``; for each missing one, a line naming the notebook to run."""
    found, missing = [], []
    for kind in explained_kinds():
        path = layout.artefact(runs_dir, kind.folder, kind.model_file)
        if path.exists():
            found.append(_load(runs_dir, kind.title, kind.folder, kind))
        else:
            missing.append(layout.missing_message(kind.title, path, kind.folder))
    return found, missing


def features_of(entry: TrainedModel, inputs: np.ndarray) -> np.ndarray | None:
    """t-SNE features of a trained model (None when its kind shows none, e.g. the linear probe)."""
    return entry.kind.features(entry.model, inputs)


def gradcam_of(entry: TrainedModel, inputs: np.ndarray, setting: CamSetting | None = None) -> np.ndarray | None:
    """Class-activation maps toward "defective" (default: the series' :class:`~helpers.explain.gradcam.CamSetting`;
    None when the model has no classifier, e.g. the SimCLR encoder)."""
    return entry.kind.gradcam(entry.model, inputs, setting)


#: The class-activation settings compared in notebook 05: the studies' (Grad-CAM of the defective logit at the last
#: stage, one view) and the series' (HiResCAM of the log-odds at the stride-4, 8 and 16 stages, averaged over the
#: image and its mirror images).
CAM_SETTINGS = {"Grad-CAM, defective logit, last stage (the studies')": CamSetting("gradcam", ("stride32",), "logit",
                                                                                   ("identity",)),
                "HiResCAM, log-odds, stride-4/8/16 stages, 3 mirror views (ours)": CamSetting()}


def compare_cams(models: list[TrainedModel], prepared: Any, split: str = "val") -> pd.DataFrame:
    """Each torch classifier's maps under each of :data:`CAM_SETTINGS`, scored against ``split``'s masks (the mean over
    categories of :func:`helpers.evaluation.localisation.score_maps`). Notebook 05 shows it on ``val`` — never on
    ``test``, which chooses nothing (the series' setting was chosen on the built-in data's train + val defective
    images: ``benchmarks/cam_choice.py``)."""
    frame = prepared.frame(split)
    masks = load_masks(prepared, frame)
    rows = []
    for m in models:
        if m.kind.framework != "torch" or not m.kind.scored:     # the torch classifiers (the backbone registry's stages)
            continue
        batch = m.inputs(prepared, frame)
        for name, setting in CAM_SETTINGS.items():
            maps = m.kind.gradcam(m.model, batch, setting)
            if maps is None:
                continue
            summary, _ = localise({m.name: maps}, masks, frame)
            mean = summary[summary["category"] == MEAN_ROW].iloc[0]
            rows.append({"model": m.name, "maps": name, "split": split, "n_defective": int(mean["n_defective"]),
                         **{k: float(mean[k]) for k in ("pixel_auroc", "au_pro", "pointing_game")}})
    return pd.DataFrame(rows)


def load_masks(prepared: Any, frame: pd.DataFrame) -> list[np.ndarray]:
    """Ground-truth masks (bool, at their own resolution) of ``frame``'s rows; an all-False mask where none."""
    from ..data.images import load_mask

    out = []
    for _, r in frame.iterrows():
        shape = (int(r["height"]), int(r["width"]))
        out.append(load_mask(prepared.root / r["mask_path"] if r["mask_path"] else None, shape).astype(bool))
    return out


def localise(cams: dict[str, np.ndarray], masks: list[np.ndarray], frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model's Grad-CAM maps scored by :func:`helpers.evaluation.localisation.score_maps` (the one localisation metric:
    pixel AUROC over a category's images, good included; AU-PRO to FPR 0.3; pointing game), and the per-image
    table of the defective images for figures. Masks are resized to the maps; a defective image without a
    mask cannot be scored and is left out."""
    from ..evaluation.localisation import LOCALISATION_COLUMNS, localisation_table, resize_mask, score_maps

    scorable = np.flatnonzero(((frame["label"] == 0) | (frame["mask_path"] != "")).to_numpy())
    tables, per_image = [], []
    for name, maps in cams.items():
        small = [resize_mask(masks[i], maps.shape[1:]) for i in scorable]
        tables.append(score_maps(f"CAM: {name}", maps[scorable], small, frame["category"].iloc[scorable]))
        bad = [j for j, i in enumerate(scorable) if small[j].any()]
        per_image.append(localisation_table(name, frame.iloc[scorable[bad]], maps[scorable[bad]], [small[j] for j in bad]))
    summary = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=LOCALISATION_COLUMNS)
    per = pd.concat(per_image, ignore_index=True) if per_image else pd.DataFrame(
        columns=["model", "path", "category", "pixel_auroc", "pointing_hit", "flat_map"])
    return summary, per


def write_outputs(cfg: Any, prepared: Any, silhouette: dict[str, dict[str, float]], summary: pd.DataFrame,
                  per_image: pd.DataFrame, started: float, notes: dict[str, Any] | None = None) -> Path:
    """Notebook 05's folder: metrics.json (silhouettes + localisation), localisation*.csv."""
    out = layout.notebook_dir(cfg.runs_dir, layout.EXPLAIN)
    files.write_csv(summary, out / layout.LOCALISATION)
    files.write_csv(per_image, out / layout.LOCALISATION_PER_IMAGE)
    flat: dict[str, float] = {}
    spans: dict[str, list[float]] = {}
    for model, s in silhouette.items():
        flat[f"{model} | silhouette by category"] = s["by_category"]
        flat[f"{model} | silhouette by defect"] = s["by_defect"]
    for _, r in summary[summary["category"] == MEAN_ROW].iterrows():
        for col, label in (("pixel_auroc", "pixel AUROC"), ("au_pro", "AU-PRO"), ("pointing_game", "pointing game")):
            flat[f"{r['maps']} | {label}"] = r[col]
            if f"{col}_low" in r:
                spans[f"{r['maps']} | {label}"] = [r[f"{col}_low"], r[f"{col}_high"]]
    record = R.metrics_record(layout.EXPLAIN, "Explainability: t-SNE silhouettes, Grad-CAM localisation",
                              "shared-split", cfg.profile.name, prepared.split["split"].value_counts().to_dict(),
                              None, "fixed", flat or {"note": "no trained model found"},
                              summary, started=started,
                              extra={"silhouette": silhouette, "tsne": TSNE_PARAMS, **(notes or {})},
                              data=prepared.provenance(), intervals=spans)
    return R.write_metrics(record, cfg.runs_dir, path=out / layout.METRICS)
