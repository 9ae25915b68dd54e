"""Notebook 05 as functions: t-SNE of learned features, Grad-CAM for both frameworks, localisation scores.

- Features: :func:`torch_features` (pooled 2048-d ResNet-50 features of the supervised model or the SimCLR
  encoder) and :func:`keras_features` (the multi-task model's shared Dense(512)).
- :func:`tsne_2d` (scikit-learn, perplexity 30, PCA init, random_state 42) and :func:`silhouettes`
  (in the original feature space, by category and by defect label).
- Grad-CAM: :func:`torch_gradcam` uses the ``grad-cam`` package (``pytorch_grad_cam.GradCAM``) on a target
  layer, target = the defective class; :func:`keras_gradcam` is the tf.GradientTape recipe on the defect
  head w.r.t. the last Conv2D. Both return maps of the input's size in [0, 1].
- :func:`localisation_scores`: pixel AUROC of a map against a ground-truth mask, and the pointing game
  (is the map's maximum inside the mask?).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm
from torch import nn

from .env import load_torch_before_tensorflow

TSNE_PARAMS = {"perplexity": 30.0, "random_state": 42, "init": "pca"}


# --------------------------------------------------------------------------------------------------
# Features, t-SNE, silhouettes
# --------------------------------------------------------------------------------------------------
def pooled_resnet(model: nn.Module) -> nn.Module:
    """The pooled 2048-d features of a torchvision ResNet (its ``fc`` skipped), sharing its weights."""
    return nn.Sequential(*[m for name, m in model.named_children() if name != "fc"], nn.Flatten())


@torch.no_grad()
def torch_features(encoder: nn.Module, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Run ``encoder`` (eval mode) over a normalised N×3×H×W tensor in batches; N×D numpy features."""
    encoder.eval()
    device = next(encoder.parameters()).device
    out = [encoder(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).flatten(1).numpy()


def keras_features(model, images: np.ndarray, layer: str = "shared_dense", batch_size: int = 64) -> np.ndarray:
    """Outputs of ``layer`` (default: the shared Dense(512)) for N×H×W×3 images in [0, 1]."""
    load_torch_before_tensorflow()
    import keras  # noqa: PLC0415

    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(sub.predict(images, batch_size=batch_size, verbose=0))


def tsne_2d(features: np.ndarray, **overrides: Any) -> np.ndarray:
    """2-D t-SNE (perplexity 30, PCA init, random_state 42). Perplexity is capped below the sample count
    (sklearn requires perplexity < n); the value used is what the notebook prints."""
    from sklearn.manifold import TSNE  # noqa: PLC0415

    params = {**TSNE_PARAMS, **overrides}
    params["perplexity"] = effective_perplexity(len(features), params["perplexity"])
    return TSNE(n_components=2, **params).fit_transform(np.asarray(features, dtype=np.float32))


def effective_perplexity(n: int, perplexity: float = TSNE_PARAMS["perplexity"]) -> float:
    """The perplexity :func:`tsne_2d` uses for ``n`` samples."""
    return float(min(perplexity, max(1.0, n - 1.0)))


def silhouettes(features: np.ndarray, categories: Sequence, labels: Sequence[int]) -> dict[str, float]:
    """Silhouette scores in the original feature space: by category and by defect label (NaN if undefined)."""
    out = {}
    for name, groups in (("by_category", categories), ("by_defect", labels)):
        groups = np.asarray(groups)
        k = len(np.unique(groups))
        out[name] = float(skm.silhouette_score(features, groups)) if 1 < k < len(groups) else math.nan
    return out


def plot_tsne(embeddings: dict[str, np.ndarray], categories: Sequence, labels: Sequence[int],
              scores: dict[str, dict[str, float]] | None = None):
    """One row per colouring (category, good/defective), one column per model."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import seaborn as sns  # noqa: PLC0415

    n = len(embeddings)
    fig, axes = plt.subplots(2, n, figsize=(5 * n, 9), squeeze=False)
    names = np.where(np.asarray(labels) == 1, "defective", "good")
    for j, (model, xy) in enumerate(embeddings.items()):
        for i, (hue, title) in enumerate(((np.asarray(categories), "by category"), (names, "good / defective"))):
            ax = axes[i, j]
            sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=hue, ax=ax, s=18, legend=(j == n - 1),
                            palette="tab20" if i == 0 else {"good": "#4c9a5b", "defective": "#c0504d"})
            sil = (scores or {}).get(model, {}).get("by_category" if i == 0 else "by_defect")
            ax.set(title=f"{model} — {title}" + (f"\nsilhouette {sil:.3f}" if sil is not None and np.isfinite(sil) else ""),
                   xticks=[], yticks=[])
            if j == n - 1:
                ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# Grad-CAM
# --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _gradients_on(model: nn.Module):
    """Temporarily let every parameter require grad (frozen layers give Grad-CAM no gradient otherwise)."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(True)
        yield
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def torch_gradcam(model: nn.Module, images: torch.Tensor, target_layer: nn.Module, target_class: int = 1,
                  batch_size: int = 16) -> np.ndarray:
    """Grad-CAM maps (N×H×W in [0, 1], the input's size) from the ``grad-cam`` package.

    ``images``: a normalised N×3×H×W tensor; the target is the ``target_class`` logit (1 = defective).
    """
    from pytorch_grad_cam import GradCAM  # noqa: PLC0415
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: PLC0415

    model.eval()
    device = next(model.parameters()).device
    maps = []
    with _gradients_on(model), GradCAM(model=model, target_layers=[target_layer]) as cam:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            maps.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(target_class)] * len(x)))
    out = np.concatenate(maps).astype(np.float32)
    return _unit_range(out)


def keras_gradcam(model, images: np.ndarray, conv_layer: str = "last_conv", head: str = "defect") -> np.ndarray:
    """Grad-CAM of a multi-output Keras model: gradient of the ``head`` output w.r.t. ``conv_layer``.

    ``images``: N×H×W×3 in [0, 1]. Channel weights are the spatially averaged gradients; the map is
    ReLU(Σ weights · activations), upsampled to the input size and scaled to [0, 1] per image.
    """
    load_torch_before_tensorflow()
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    grad_model = keras.Model(model.inputs, [model.get_layer(conv_layer).output, model.get_layer(head).output])
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        conv, out = grad_model(x, training=False)
        target = tf.reduce_sum(out[:, 0]) if out.shape[-1] == 1 else tf.reduce_sum(out[:, 1])
    grads = tape.gradient(target, conv)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))[..., None]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()
    return _unit_range(cam.astype(np.float32))


def _unit_range(maps: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] (a constant map becomes all zeros)."""
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of N×h×w maps to ``size`` (H, W) — CAMs to the mask's resolution."""
    import cv2  # noqa: PLC0415

    return np.stack([cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for m in maps])


# --------------------------------------------------------------------------------------------------
# Localisation
# --------------------------------------------------------------------------------------------------
def localisation_scores(heatmap: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Pixel AUROC of ``heatmap`` against a boolean ``mask`` and the pointing-game hit (max inside the mask).

    Both must have the same H×W (upsample the map first). AUROC is NaN for an empty or full mask; a
    constant map (e.g. a Grad-CAM whose ReLU removed everything) scores AUROC 0.5 and a pointing miss,
    and is flagged ``flat_map``.
    """
    heat, m = np.asarray(heatmap, float), np.asarray(mask, bool)
    if heat.shape != m.shape:
        raise ValueError(f"heatmap {heat.shape} and mask {m.shape} differ: resize the heatmap to the mask first")
    auroc = float(skm.roc_auc_score(m.ravel(), heat.ravel())) if 0 < m.sum() < m.size else math.nan
    flat = bool(heat.max() == heat.min())
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    # a flat map points nowhere: counted as a miss (and flagged), not as a hit at pixel (0, 0)
    hit = math.nan if not m.any() else (0.0 if flat else float(m[peak]))
    return {"pixel_auroc": auroc, "pointing_hit": hit, "flat_map": flat}


def localisation_table(model: str, frame: pd.DataFrame, maps: np.ndarray, masks: Iterable[np.ndarray]) -> pd.DataFrame:
    """Per-image localisation rows (model, path, category, pixel AUROC, pointing hit)."""
    rows = []
    for (_, r), heat, mask in zip(frame.iterrows(), maps, masks):
        heat = heat if heat.shape == mask.shape else resize_maps(heat[None], mask.shape)[0]
        rows.append({"model": model, "path": r["path"], "category": r["category"], **localisation_scores(heat, mask)})
    return pd.DataFrame(rows)


def summarise_localisation(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean pixel AUROC, pointing-game hit rate and flat-map count per model × category, plus ``(all)``."""
    agg = {"pixel_auroc": "mean", "pointing_hit": "mean", "path": "count", "flat_map": "sum"}
    names = {"path": "n", "flat_map": "flat_maps"}
    by_cat = per_image.groupby(["model", "category"]).agg(agg).rename(columns=names).reset_index()
    overall = per_image.groupby("model").agg(agg).rename(columns=names).reset_index().assign(category="(all)")
    cols = ["model", "category", "n", "pixel_auroc", "pointing_hit", "flat_maps"]
    return pd.concat([by_cat, overall], ignore_index=True)[cols]


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def plot_overlays(images: Sequence[np.ndarray], maps: dict[str, np.ndarray], masks: Sequence[np.ndarray | None],
                  titles: Sequence[str], max_images: int = 6):
    """Rows: images; columns: the image, then one heatmap overlay per model; mask contours in white."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    n = min(len(images), max_images)
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(2.4 * cols, 2.4 * n), squeeze=False)
    for i in range(n):
        img = images[i]
        axes[i, 0].imshow(img)
        axes[i, 0].set_ylabel(titles[i], fontsize=7)
        for j, (name, m) in enumerate(maps.items(), start=1):
            axes[i, j].imshow(img)
            axes[i, j].imshow(m[i], cmap="jet", alpha=0.45, vmin=0, vmax=1,
                              extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
        for j in range(cols):
            if masks[i] is not None and np.asarray(masks[i]).any():
                mk = masks[i] if masks[i].shape == img.shape[:2] else resize_maps(masks[i][None].astype(np.float32), img.shape[:2])[0] > 0.5
                axes[i, j].contour(mk, levels=[0.5], colors="white", linewidths=1.0)
            axes[i, j].set_xticks([]); axes[i, j].set_yticks([])
    axes[0, 0].set_title("image", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# The trained models of notebooks 01–04, as notebook 05 needs them
# --------------------------------------------------------------------------------------------------
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
        from .torch_data import eval_transform  # noqa: PLC0415

        tf = eval_transform(self.image_size)
        return torch.stack([tf(image=im)["image"] for im in raw]) if len(raw) else torch.zeros(0, 3, self.image_size, self.image_size)


def load_trained_models(runs_dir) -> tuple[list[TrainedModel], list[str]]:
    """Every model 01–04 saved under ``runs_dir``; for each missing one, a line naming the notebook to run."""
    from pathlib import Path  # noqa: PLC0415

    from .torch_models import load_model  # noqa: PLC0415

    runs = Path(runs_dir)
    found, missing = [], []
    sup = runs / "01_supervised_resnet50" / "model.pt"
    if sup.exists():
        m, meta = load_model(sup)
        found.append(TrainedModel("supervised ResNet-50", "torch", "01_supervised_resnet50", m, meta["image_size"],
                                  pooled_resnet(m), m.layer4[-1], meta.get("weights", "?")))
    else:
        missing.append(f"supervised ResNet-50: no {sup} — run notebook 01_supervised_resnet50.ipynb first.")
    sim = runs / "02_simclr_pretraining" / "simclr.pt"
    if sim.exists():
        m, meta = load_model(sim)
        found.append(TrainedModel("SimCLR encoder", "torch", "02_simclr_pretraining", m.encoder, meta["image_size"],
                                  m.encoder, None, meta.get("weights", "?")))
    else:
        missing.append(f"SimCLR encoder: no {sim} — run notebook 02_simclr_pretraining.ipynb first.")
    probe = runs / "03_linear_probe" / "model.pt"
    if probe.exists():
        m, meta = load_model(probe)
        found.append(TrainedModel("linear probe", "torch", "03_linear_probe", m, meta["image_size"], None,
                                  m.encoder.layer4[-1], str(meta.get("encoder", {}).get("weights", "?"))))
    else:
        missing.append(f"linear probe: no {probe} — run notebook 03_linear_probe.ipynb first.")
    keras_dir = runs / "04_keras_multitask_cnn"
    if (keras_dir / "model.keras").exists():
        from .keras_track import SHARED_DENSE, LAST_CONV, load_multitask  # noqa: PLC0415

        m, meta = load_multitask(keras_dir)
        found.append(TrainedModel("Keras multi-task", "keras", "04_keras_multitask_cnn", m, meta["image_size"],
                                  SHARED_DENSE, LAST_CONV, "trained from scratch"))
    else:
        missing.append(f"Keras multi-task: no {keras_dir / 'model.keras'} — run notebook 04_keras_multitask_cnn.ipynb first.")
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


def predictions(runs_dir, notebook: str) -> pd.DataFrame | None:
    """A notebook's test scores with its val-chosen threshold applied (``pred`` column), or None."""
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    folder = Path(runs_dir) / notebook
    if not (folder / "scores.csv").exists() or not (folder / "metrics.json").exists():
        return None
    scores = pd.read_csv(folder / "scores.csv")
    thr = json.loads((folder / "metrics.json").read_text())["threshold"]["value"]
    test = scores[scores["split"] == "test"].copy()
    test["pred"] = (test["score"] >= thr).astype(int)
    return test


def load_masks(prepared, frame: pd.DataFrame) -> list[np.ndarray]:
    """Ground-truth masks (bool, at their own resolution) of ``frame``'s rows; an all-False mask where none."""
    from .data import load_mask  # noqa: PLC0415

    out = []
    for _, r in frame.iterrows():
        shape = (int(r["height"]), int(r["width"]))
        out.append(load_mask(prepared.root / r["mask_path"] if r["mask_path"] else None, shape).astype(bool))
    return out


def cam_explorer(frame: pd.DataFrame, images: np.ndarray, cams: dict[str, np.ndarray], masks: Sequence[np.ndarray],
                 per_page: int = 6):
    """Dropdowns (category, good/defective) over :func:`plot_overlays`; static grid when headless."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from .viz import widgets_wanted  # noqa: PLC0415

    frame = frame.reset_index(drop=True)

    def draw(category: str, which: str) -> None:
        sel = frame.index[(frame["category"] == category) & (frame["label"] == (1 if which == "defective" else 0))]
        if len(sel) == 0:
            print(f"no {which} test images of {category}")
            return
        sel = sel[:per_page]
        plot_overlays(images[sel], {k: v[sel] for k, v in cams.items()}, [masks[i] for i in sel],
                      [f"{frame.at[i, 'category']}/{frame.at[i, 'defect_type']}" for i in sel])
        plt.show()

    cats = sorted(frame["category"].unique())
    if not widgets_wanted():
        first = frame.sort_values("label", ascending=False).groupby("category").head(1).index[:per_page]
        plot_overlays(images[first], {k: v[first] for k, v in cams.items()}, [masks[i] for i in first],
                      [f"{frame.at[i, 'category']}/{frame.at[i, 'defect_type']}" for i in first])
        plt.show()
        return None
    import ipywidgets as widgets  # noqa: PLC0415

    return widgets.interact(draw, category=widgets.Dropdown(options=cats),
                            which=widgets.ToggleButtons(options=["defective", "good"]))


def write_outputs(cfg, prepared, silhouette: dict[str, dict[str, float]], summary: pd.DataFrame,
                  per_image: pd.DataFrame, started: float, notes: dict[str, Any] | None = None):
    """``RUNS_DIR/05_tsne_gradcam/``: metrics.json (silhouettes + localisation), localisation*.csv."""
    from . import metrics as M  # noqa: PLC0415

    out = cfg.notebook_dir("05_tsne_gradcam")
    summary.to_csv(out / "localisation.csv", index=False)
    per_image.to_csv(out / "localisation_per_image.csv", index=False)
    flat: dict[str, float] = {}
    for model, s in silhouette.items():
        flat[f"{model} | silhouette by category"] = s["by_category"]
        flat[f"{model} | silhouette by defect"] = s["by_defect"]
    for _, r in summary[summary["category"] == "(all)"].iterrows():
        flat[f"{r['model']} | pixel AUROC"] = r["pixel_auroc"]
        flat[f"{r['model']} | pointing game"] = r["pointing_hit"]
    record = M.metrics_record("05_tsne_gradcam", "Explainability: t-SNE silhouettes, Grad-CAM localisation",
                              "shared-split", cfg.profile.name, prepared.split["split"].value_counts().to_dict(),
                              None, "fixed", flat or {"note": "no trained model found"},
                              summary, started=started,
                              extra={"silhouette": silhouette, "tsne": TSNE_PARAMS, **(notes or {})})
    return M.write_metrics(record, cfg.runs_dir)
