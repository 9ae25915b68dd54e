"""Notebook 06's protocols for one-class models: PatchCore fitted per category on good images only.

- ``mvtec-standard``: fit on MVTec ``train/good``, score every MVTec ``test`` image (comparable with the
  published numbers in :mod:`helpers.studies`).
- ``shared-split``: fit on the good images of the project's ``train`` split, score ``val`` (for the
  threshold) and ``test`` — the row that enters the comparison report, written by :func:`write_shared`.

The model itself is :class:`helpers.patchcore.PatchCore`; this module only runs it under a protocol.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from ..artefacts import runs
from ..core import files
from ..core.env import torch_device
from ..evaluation.localisation import LOCALISATION_COLUMNS, MEAN_ROW, score_maps
from ..evaluation.studies import PUBLISHED_WRN50
from ..models.patchcore import PatchCore, TwoLevelFeatures, load_backbone, preprocess_masks
from ..training.recipes import PatchCoreRecipe, scaled

__all__ = ["localisation_table", "APPROACH", "MODEL_FILE", "save_banks", "load_banks", "OneClassResult",
           "run_protocol", "compare_with_published", "write_shared", "plot_examples", "plot_score_histograms"]

APPROACH = "PatchCore (one-class, good images only)"


def _images(prepared, frame: pd.DataFrame, recipe: PatchCoreRecipe) -> torch.Tensor:
    """Cached images of ``frame``'s rows, centre-cropped: N×3×crop×crop in [0, 1]."""
    cache = prepared.cache(recipe.resize, progress=False)
    off = (recipe.resize - recipe.crop) // 2
    arr = np.stack([cache.images[i][off:off + recipe.crop, off:off + recipe.crop] for i in cache.indices(frame["path"])])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0


def _masks(prepared, frame: pd.DataFrame, recipe: PatchCoreRecipe) -> list[np.ndarray | None]:
    """Masks aligned with the anomaly maps; zeros for good images, None for defective images without one."""
    from ..data.images import load_mask

    out = []
    for _, r in frame.iterrows():
        if r["label"] == 0:
            out.append(np.zeros((recipe.crop, recipe.crop), bool))
        elif r["mask_path"]:
            out.append(preprocess_masks([load_mask(prepared.root / r["mask_path"])], recipe.resize, recipe.crop)[0])
        else:
            out.append(None)
    return out


@dataclass
class OneClassResult:
    """Scores of every scored image, per-category table, and a few maps per category for figures."""

    protocol: str
    backbone: str
    scores: pd.DataFrame
    per_category: pd.DataFrame
    examples: dict[str, dict[str, Any]]
    recipe: PatchCoreRecipe
    #: each category's memory bank (on the CPU): what :func:`write_shared` saves for deployment
    banks: dict[str, torch.Tensor] = field(default_factory=dict)


def _protocol_frame(prepared, protocol: str) -> tuple[pd.DataFrame, str, tuple[str, ...]]:
    """The rows a protocol uses, the split fitted on and the splits scored (the last one is evaluated)."""
    from ..data.split import standard_protocol

    if protocol == "mvtec-standard":
        frame = standard_protocol(prepared.manifest).merge(prepared.manifest[["path", "mask_path"]], on="path")
        return frame, "train", ("test",)
    if protocol == "shared-split":
        return prepared.frame(), "train", ("val", "test")
    raise ValueError(f"unknown protocol {protocol!r}: 'mvtec-standard' or 'shared-split'")


def _localisation(masks: list[np.ndarray | None], maps: np.ndarray, rows: np.ndarray, category: str) -> dict[str, float]:
    """:func:`helpers.localisation.score_maps` on ``rows`` (the one localisation metric of the series): pixel
    AUROC (good images all-normal), AU-PRO to FPR 0.3, pointing game. Defective images without a mask are left out."""
    ok = [i for i in rows if masks[i] is not None]
    row = score_maps("PatchCore", [maps[i] for i in ok], [masks[i] for i in ok], [category] * len(ok)).iloc[0]
    return {k: float(row[k]) for k in ("pixel_auroc", "au_pro", "pointing_game")} if ok else \
        dict.fromkeys(("pixel_auroc", "au_pro", "pointing_game"), math.nan)


def _run_category(prepared, good: pd.DataFrame, scored: pd.DataFrame, eval_split: str, recipe: PatchCoreRecipe,
                  backbone: TwoLevelFeatures, keep_examples: int) -> tuple[pd.DataFrame, dict, dict, torch.Tensor]:
    """Fit on ``good``, score ``scored`` and evaluate its ``eval_split`` rows: scores, table row, example maps and
    the memory bank."""
    device = torch_device()
    model = PatchCore(backbone, recipe.coreset_fraction, recipe.num_neighbors, recipe.blur_sigma)
    model.fit(_images(prepared, good, recipe).to(device), progress=False)
    t0 = time.time()
    s, maps = model.score(_images(prepared, scored, recipe).to(device))
    score_s = time.time() - t0
    masks = _masks(prepared, scored, recipe)
    last = (scored["split"] == eval_split).to_numpy()
    y = scored.loc[last, "label"].to_numpy()
    category = scored["category"].iloc[0]
    row = {"category": category, "n_fit": len(good), "n_scored": int(last.sum()), "n_defective": int(y.sum()),
           "image_auroc": float(roc_auc_score(y, s[last])) if 0 < y.sum() < len(y) else math.nan,
           **_localisation(masks, maps, np.flatnonzero(last), category), "bank": model.info["bank"],
           "patches": model.info["patches"], "fit_s": model.info["fit_s"], "score_s": round(score_s, 2), "note": ""}
    pick = np.flatnonzero(last)
    pick = np.concatenate([pick[y == 1][:keep_examples // 2 or 1], pick[y == 0][:keep_examples // 2 or 1]])
    example = {"images": _images(prepared, scored.iloc[pick], recipe).permute(0, 2, 3, 1).numpy(),
               "maps": maps[pick], "masks": [masks[i] for i in pick],
               "labels": scored["label"].to_numpy()[pick], "scores": s[pick]}
    return scored[["path", "category", "label", "split"]].assign(score=s), row, example, model.bank.cpu()


def run_protocol(prepared, protocol: str = "shared-split", recipe: PatchCoreRecipe | None = None,
                 categories: Sequence[str] | None = None, backbone: TwoLevelFeatures | None = None,
                 keep_examples: int = 4, progress: bool = True) -> OneClassResult:
    """Fit PatchCore per category on good training images and score that category's evaluation images.

    - ``mvtec-standard``: fit on MVTec ``train/good``, score every MVTec ``test`` image.
    - ``shared-split``: fit on the good images of the project's ``train`` split, score ``val`` (for the
      threshold) and ``test``.
    Per category: image AUROC, the localisation of :func:`helpers.localisation.score_maps` (pixel AUROC with
    good images all-normal, AU-PRO to FPR 0.3, pointing game), bank size and timings.
    """
    recipe = recipe or scaled(PatchCoreRecipe(), prepared.cfg.profile)
    backbone = (backbone or load_backbone(recipe.backbone)).to(torch_device()).eval()
    frame, fit_split, score_splits = _protocol_frame(prepared, protocol)
    cats = sorted(frame["category"].unique()) if categories is None else list(categories)
    unknown = sorted(set(cats) - set(frame["category"]))
    if unknown:
        raise ValueError(f"categories not in the data: {unknown}; available: {sorted(frame['category'].unique())}")
    rows, table, examples, banks = [], [], {}, {}
    for cat in tqdm(cats, desc=f"PatchCore ({protocol})", disable=not progress):
        f = frame[frame["category"] == cat]
        good = f[(f["split"] == fit_split) & (f["label"] == 0)]
        scored = f[f["split"].isin(score_splits)].reset_index(drop=True)
        if len(good) == 0 or len(scored) == 0:
            table.append({"category": cat, "n_fit": len(good), "n_scored": len(scored),
                          "note": "skipped: no good training image" if len(good) == 0 else "skipped: nothing to score"})
            continue
        scores, row, examples[cat], banks[cat] = _run_category(prepared, good, scored, score_splits[-1], recipe, backbone,
                                                   keep_examples)
        rows.append(scores)
        table.append(row)
    scores = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["path", "category", "label", "split", "score"])
    return OneClassResult(protocol, backbone.name, scores, pd.DataFrame(table), examples, recipe, banks)


def compare_with_published(per_category: pd.DataFrame) -> pd.DataFrame:
    """Our per-category image/pixel AUROC next to anomalib's WideResNet-50 reproduction."""
    t = per_category.set_index("category")[["n_scored", "image_auroc", "pixel_auroc"]].copy()
    t["published image AUROC (WRN-50)"] = [PUBLISHED_WRN50["image_auroc"].get(c, math.nan) for c in t.index]
    t["published pixel AUROC (WRN-50)"] = [PUBLISHED_WRN50["pixel_auroc"].get(c, math.nan) for c in t.index]
    return t


def localisation_table(result: OneClassResult) -> pd.DataFrame:
    """The run's localisation in the series' one format (:data:`helpers.localisation.LOCALISATION_COLUMNS`):
    one row per category and the mean over categories."""
    per = result.per_category
    if "pixel_auroc" not in per:
        return pd.DataFrame(columns=LOCALISATION_COLUMNS)
    per = per[per["pixel_auroc"].notna() | per["pointing_game"].notna()]
    table = pd.DataFrame({"maps": "PatchCore", "category": per["category"], "n_images": per["n_scored"],
                          "n_defective": per["n_defective"], "pixel_auroc": per["pixel_auroc"],
                          "au_pro": per["au_pro"], "pointing_game": per["pointing_game"]})
    mean = {"maps": "PatchCore", "category": MEAN_ROW, "n_images": int(table["n_images"].sum()),
            "n_defective": int(table["n_defective"].sum()),
            **{c: _mean_of(table, c) for c in ("pixel_auroc", "au_pro", "pointing_game")}}
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)[LOCALISATION_COLUMNS]


def _mean_of(table: pd.DataFrame, col: str) -> float:
    vals = table[col].to_numpy(float) if col in table else np.array([])
    return float(np.mean(vals[np.isfinite(vals)])) if np.isfinite(vals).any() else math.nan


def write_shared(prepared, shared: OneClassResult, standard: OneClassResult | None, started: float,
                 threshold_method: str = "f1") -> runs.ScoredRun:
    """Notebook 06's outputs: the shared-split run through :func:`helpers.runs.write_scored` (metrics.json,
    scores.csv) plus ``per_category_*.csv``; the MVTec-standard results go into metrics.json's ``extra``.

    The shared-split banks are saved as ``model.pt`` with a model card (:func:`save_banks`,
    :func:`helpers.deploy.write_model_card`), so that ``python -m helpers export|predict`` deploy PatchCore too."""
    out = runs.notebook_dir(prepared.cfg.runs_dir, runs.PATCHCORE)
    files.write_csv(shared.per_category, out / "per_category_shared_split.csv")
    if standard is not None:
        files.write_csv(standard.per_category, out / "per_category_mvtec_standard.csv")
    loc_cols = [c for c in ("category", "pixel_auroc", "au_pro", "pointing_game") if c in shared.per_category]
    files.write_csv(localisation_table(shared), out / "localisation.csv")
    extra = {"backbone": shared.backbone, "pointing_game_mean": _mean_of(shared.per_category, "pointing_game"),
             "au_pro_mean": _mean_of(shared.per_category, "au_pro"),
             "recipe": asdict(shared.recipe), "pixel_auroc_mean": _mean_of(shared.per_category, "pixel_auroc"),
             "threshold_note": "a threshold per category on its val images; scores normalised per category"}
    if standard is not None:
        extra["mvtec_standard"] = {"per_category": standard.per_category,
                                   "labels_used": {"defect_labels_for_training": 0, "labels_to_select_good": 0,
                                                   "val_labels": 0, "val_labels_for": "not used (AUROC only)"},
                                   "image_auroc_mean": _mean_of(standard.per_category, "image_auroc"),
                                   "pixel_auroc_mean": _mean_of(standard.per_category, "pixel_auroc")}
    run = runs.write_scored(prepared, runs.PATCHCORE, APPROACH, shared.scores, started=started,
                            labels=runs.labels_used(prepared, 0, True, "per-category thresholds"),
                            threshold_method=threshold_method, per_category_threshold=True, extra=extra,
                            per_category_extra=shared.per_category[loc_cols] if len(loc_cols) > 1 else None,
                            info={"shared": shared, "standard": standard})
    if shared.banks:
        from ..deploy.models import write_model_card

        save_banks(out / MODEL_FILE, shared)
        write_model_card(run, MODEL_FILE, "patchcore", shared.recipe.crop, categories=sorted(shared.banks),
                         resize=shared.recipe.resize, per_category=run.record["threshold"]["per_category"],
                         bank_rows={c: len(b) for c, b in shared.banks.items()})
    return run


#: The saved PatchCore model of notebook 06 (:func:`save_banks`).
MODEL_FILE = runs.MODEL_FILES[runs.PATCHCORE]


def save_banks(path, result: OneClassResult) -> None:
    """A fitted per-category PatchCore as one file: the backbone's key (rebuilt exactly, never a fallback), the
    recipe and every category's memory bank."""
    from ..models.patchcore import backbone_key

    with files.atomic_path(path) as tmp:
        torch.save({"arch": "patchcore", "backbone": backbone_key(result.backbone), "backbone_name": result.backbone,
                    "recipe": asdict(result.recipe), "banks": {c: b.float().contiguous() for c, b in result.banks.items()}},
                   tmp)


def load_banks(path) -> dict[str, Any]:
    """What :func:`save_banks` wrote (tensors and plain values only: loaded with ``weights_only``)."""
    from ..training.loop import safe_load

    return safe_load(path, "PatchCore model file", "Load only models you trust; re-create it with notebook 06.")


def plot_examples(result: OneClassResult, categories: Sequence[str] | None = None, per_category: int = 4):
    """Anomaly maps over their images with the mask contours (white); one row per category.

    Maps share one colour scale per category (so a good image's map looks calm next to a defect's).
    """
    import matplotlib.pyplot as plt

    cats = [c for c in (categories or list(result.examples)) if c in result.examples]
    if not cats:
        print("no examples to show")
        return None
    fig, axes = plt.subplots(len(cats), per_category, figsize=(2.3 * per_category, 2.4 * len(cats)), squeeze=False)
    for r, cat in enumerate(cats):
        ex = result.examples[cat]
        vmax = float(np.max(ex["maps"])) if len(ex["maps"]) else 1.0
        for c in range(per_category):
            ax = axes[r, c]
            ax.set_xticks([]); ax.set_yticks([])
            if c >= len(ex["images"]):
                ax.axis("off")
                continue
            ax.imshow(ex["images"][c])
            ax.imshow(ex["maps"][c], cmap="jet", alpha=0.45, vmin=0, vmax=vmax)
            if ex["masks"][c] is not None and ex["masks"][c].any():
                ax.contour(ex["masks"][c], levels=[0.5], colors="white", linewidths=1.0)
            ax.set_title(f"{'defective' if ex['labels'][c] else 'good'} · {ex['scores'][c]:.2f}", fontsize=8)
        axes[r, 0].set_ylabel(cat, fontsize=9)
    fig.tight_layout()
    return fig


def plot_score_histograms(scores: pd.DataFrame, split: str = "test", col_wrap: int = 5):
    """Image scores of good vs defective images, one panel per category."""
    import seaborn as sns

    data = scores[scores["split"] == split].assign(kind=lambda d: np.where(d["label"] == 1, "defective", "good"))
    grid = sns.displot(data, x="score", hue="kind", col="category", col_wrap=col_wrap, kind="hist", bins=15,
                       height=2.2, aspect=1.2, facet_kws={"sharex": False, "sharey": False},
                       palette={"good": "#4c9a5b", "defective": "#c0504d"}, element="step")
    grid.set_titles("{col_name}")
    return grid
