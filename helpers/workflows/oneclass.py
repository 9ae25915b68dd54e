"""Notebook 06 as functions: PatchCore fitted per category on good images only, under two protocols.

- ``mvtec-standard``: fit on MVTec ``train/good``, score every MVTec ``test`` image (comparable with the
  published numbers in :mod:`helpers.evaluation.studies`).
- ``shared-split``: fit on the good images of the project's ``train`` split, score ``val`` (for the
  threshold) and ``test`` — the row that enters the comparison report, written by :func:`write_shared`.

The model itself is :class:`helpers.models.patchcore.PatchCore` (one module, which notebook 06 scores with and which
is exported); this module only runs it under a protocol.
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

from ..artefacts.card import card_for, write_card
from ..artefacts.scored import ScoredRun, labels_used, write_scored
from ..core import files, layout
from ..core.env import torch_device
from ..data import preprocessing
from ..data.preprocessing import InputSpec
from ..evaluation import intervals as I
from ..evaluation import metrics as M
from ..evaluation.localisation import INTERVAL_COLUMNS, LOCALISATION_COLUMNS, MEAN_ROW, score_maps
from ..evaluation.studies import PUBLISHED_WRN50
from ..models import kinds
from ..models.patchcore import PatchCore, PatchFeatures, load_features
from ..training.recipes import PatchCoreRecipe, scaled

__all__ = ["Walkthrough", "walkthrough", "APPROACH", "OneClassResult", "OneClassRun", "run_protocol", "run_standard",
           "compare_with_published", "localisation_table", "write_shared"]

APPROACH = "PatchCore (one-class, good images only)"


@dataclass
class OneClassResult:
    """A protocol's run: scores of every scored image, the per-category table, a few maps per category for figures,
    and the fitted model (one bank per category that had good images)."""

    protocol: str
    backbone: str
    scores: pd.DataFrame
    per_category: pd.DataFrame
    examples: dict[str, dict[str, Any]]
    recipe: PatchCoreRecipe
    model: PatchCore
    #: per category, the bootstrap draws of its localisation metrics (:func:`helpers.evaluation.intervals.map_draws`)
    map_draws: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


@dataclass(kw_only=True)
class OneClassRun(ScoredRun):
    """Notebook 06's scored run (the shared split), with both protocols' results."""

    shared: OneClassResult
    standard: OneClassResult | None


def _spec(recipe: PatchCoreRecipe) -> InputSpec:
    return kinds.PATCHCORE.input_spec(recipe.crop, resize=recipe.resize)


def _crops(prepared: Any, frame: pd.DataFrame, spec: InputSpec) -> np.ndarray:
    """Cached images of ``frame``'s rows as the model sees them (resized, centre-cropped), uint8 N×S×S×3."""
    cache = prepared.cache(spec.resize, progress=False)
    off = (spec.resize - spec.image_size) // 2
    return np.stack([cache.images[i][off:off + spec.image_size, off:off + spec.image_size]
                     for i in cache.indices(frame["path"])])


def _inputs(prepared: Any, frame: pd.DataFrame, spec: InputSpec) -> torch.Tensor:
    """The model's input (:mod:`helpers.data.preprocessing`) for ``frame``'s rows, from the cache."""
    return torch.from_numpy(preprocessing.from_cache(spec, prepared, frame["path"]))


def _masks(prepared: Any, frame: pd.DataFrame, spec: InputSpec) -> list[np.ndarray | None]:
    """Masks aligned with the anomaly maps; zeros for good images, None for defective images without one."""
    from ..data.images import load_mask

    out: list[np.ndarray | None] = []
    for _, r in frame.iterrows():
        if r["label"] == 0:
            out.append(np.zeros((spec.image_size, spec.image_size), bool))
        elif r["mask_path"]:
            out.append(preprocessing.crop_masks(spec, [load_mask(prepared.root / r["mask_path"])])[0])
        else:
            out.append(None)
    return out


def _protocol_frame(prepared: Any, protocol: str) -> tuple[pd.DataFrame, str, tuple[str, ...]]:
    """The rows a protocol uses, the split fitted on and the splits scored (the last one is evaluated)."""
    from ..data.split import standard_protocol

    if protocol == "mvtec-standard":
        frame = standard_protocol(prepared.manifest).merge(prepared.manifest[["path", "mask_path"]], on="path")
        return frame, "train", ("test",)
    if protocol == "shared-split":
        return prepared.frame(), "train", ("val", "test")
    raise ValueError(f"unknown protocol {protocol!r}: 'mvtec-standard' or 'shared-split'")


def _localisation(masks: list[np.ndarray | None], maps: np.ndarray, rows: np.ndarray, category: str
                  ) -> tuple[dict[str, float], dict[str, dict[str, np.ndarray]]]:
    """:func:`helpers.evaluation.localisation.score_maps` on ``rows`` (the one localisation metric of the series):
    pixel AUROC (good images all-normal), AU-PRO to FPR 0.3, pointing game, each with its bootstrap interval; and
    the bootstrap draws (for the interval of the mean over categories). Defective images without a mask are
    left out."""
    ok = [i for i in rows if masks[i] is not None]
    if not ok:
        return dict.fromkeys(("pixel_auroc", "au_pro", "pointing_game", *INTERVAL_COLUMNS), math.nan), {}
    args = ([maps[i] for i in ok], [masks[i] for i in ok], [category] * len(ok))
    row = score_maps("PatchCore", *args, intervals=False).iloc[0]
    draws = I.map_draws(*args)
    spans = I.summarise_map_draws(draws).iloc[0]
    return ({**{k: float(row[k]) for k in ("pixel_auroc", "au_pro", "pointing_game")},
             **{k: float(spans[k]) for k in INTERVAL_COLUMNS}}, draws)


def _run_category(prepared: Any, model: PatchCore, spec: InputSpec, good: pd.DataFrame, scored: pd.DataFrame,
                  eval_split: str, keep_examples: int) -> tuple[pd.DataFrame, dict, dict, dict]:
    """Fit ``model``'s bank of this category on ``good``, score ``scored`` and evaluate its ``eval_split`` rows:
    scores, table row, example maps and the localisation's bootstrap draws."""
    category = scored["category"].iloc[0]
    info = model.fit(category, _inputs(prepared, good, spec))
    t0 = time.time()
    s, maps = model.raw_scores(_inputs(prepared, scored, spec), category)
    score_s = time.time() - t0
    masks = _masks(prepared, scored, spec)
    last = (scored["split"] == eval_split).to_numpy()
    y = scored.loc[last, "label"].to_numpy()
    loc, draws = _localisation(masks, maps, np.flatnonzero(last), category)
    row = {"category": category, "n_fit": len(good), "n_scored": int(last.sum()), "n_defective": int(y.sum()),
           "image_auroc": float(roc_auc_score(y, s[last])) if 0 < y.sum() < len(y) else math.nan,
           **loc, "bank": info["bank"],
           "patches": info["patches"], "fit_s": info["fit_s"], "score_s": round(score_s, 2), "note": ""}
    pick = np.flatnonzero(last)
    pick = np.concatenate([pick[y == 1][:keep_examples // 2 or 1], pick[y == 0][:keep_examples // 2 or 1]])
    example = {"images": _crops(prepared, scored.iloc[pick], spec), "maps": maps[pick],
               "masks": [masks[i] for i in pick], "labels": scored["label"].to_numpy()[pick], "scores": s[pick]}
    return scored[["path", "category", "label", "split"]].assign(score=s), row, example, draws


def run_protocol(prepared: Any, protocol: str = "shared-split", recipe: PatchCoreRecipe | None = None,
                 categories: Sequence[str] | None = None, features: PatchFeatures | None = None,
                 keep_examples: int = 4, progress: bool = True) -> OneClassResult:
    """Fit PatchCore per category on good training images and score that category's evaluation images.

    - ``mvtec-standard``: fit on MVTec ``train/good``, score every MVTec ``test`` image.
    - ``shared-split``: fit on the good images of the project's ``train`` split, score ``val`` (for the
      threshold) and ``test``.
    Per category: image AUROC, the localisation of :func:`helpers.evaluation.localisation.score_maps` (pixel AUROC
    with good images all-normal, AU-PRO to FPR 0.3, pointing game), bank size and timings. A category without a good
    training image gets no bank (its row says so).
    """
    recipe = recipe or scaled(PatchCoreRecipe(), prepared.cfg.profile)
    features = features or load_features("auto", recipe.backbone)
    frame, fit_split, score_splits = _protocol_frame(prepared, protocol)
    cats = sorted(frame["category"].unique()) if categories is None else list(categories)
    unknown = sorted(set(cats) - set(frame["category"]))
    if unknown:
        raise ValueError(f"categories not in the data: {unknown}; available: {sorted(frame['category'].unique())}")
    parts = {c: (f[(f["split"] == fit_split) & (f["label"] == 0)], f[f["split"].isin(score_splits)].reset_index(drop=True))
             for c in cats for f in [frame[frame["category"] == c]]}
    fitted = [c for c in cats if len(parts[c][0]) and len(parts[c][1])]
    model = PatchCore(features, fitted, recipe.coreset_fraction, recipe.num_neighbors, recipe.blur_sigma)
    model.to(torch_device()).eval()
    rows, table, examples, draws = [], [], {}, {}
    for cat in tqdm(cats, desc=f"PatchCore ({protocol})", disable=not progress):
        good, scored = parts[cat]
        if cat not in fitted:
            table.append({"category": cat, "n_fit": len(good), "n_scored": len(scored),
                          "note": "skipped: no good training image" if len(good) == 0 else "skipped: nothing to score"})
            continue
        scores, row, examples[cat], draws_cat = _run_category(prepared, model, _spec(recipe), good, scored, score_splits[-1],
                                                   keep_examples)
        rows.append(scores)
        table.append(row)
        draws.update(draws_cat)
    scores = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["path", "category", "label", "split", "score"])
    return OneClassResult(protocol, features.name, scores, pd.DataFrame(table), examples, recipe, model.cpu(), draws)


@dataclass(frozen=True)
class Walkthrough:
    """PatchCore on one category, one step at a time (notebook 06): what :func:`run_protocol` does in its loop."""

    category: str
    #: patch features of the good training images: how many (images × grid), the grid and their width
    patches: int
    grid: tuple[int, int]
    width: int
    #: rows of the memory bank after the greedy coreset
    bank: int
    #: one defective test image as the model sees it (S×S×3 uint8), its mask (None without one)
    image: np.ndarray
    mask: np.ndarray | None
    #: each patch's distance to its nearest bank patch (the grid), and the map: upsampled and blurred (S×S)
    patch_distances: np.ndarray
    anomaly_map: np.ndarray
    #: the image score: the largest patch distance, reweighted by its neighbourhood in the bank (paper eq. 7)
    score: float


def walkthrough(prepared: Any, recipe: PatchCoreRecipe, features: PatchFeatures, category: str | None = None
                ) -> Walkthrough:
    """Fit one category's bank on its good ``train`` images (the shared split) and take one defective ``test`` image
    through the scoring, keeping every intermediate: the numbers :func:`run_protocol` computes for that category
    (same features, same coreset seed). ``category``: default the first with good training and defective test
    images."""
    from ..models.sampling import nearest

    frame, spec = prepared.frame(), _spec(recipe)
    usable = [c for c, g in frame.groupby("category")
              if ((g["split"] == "train") & (g["label"] == 0)).any() and ((g["split"] == "test") & (g["label"] == 1)).any()]
    if category is None:
        if not usable:
            raise ValueError("no category has both good training images and a defective test image to walk through")
        category = usable[0]
    elif category not in usable:
        raise ValueError(f"category {category!r} lacks good training images or a defective test image; usable: {usable}")
    rows = frame[frame["category"] == category]
    good = rows[(rows["split"] == "train") & (rows["label"] == 0)]
    test = rows[(rows["split"] == "test") & (rows["label"] == 1)].iloc[:1]
    model = PatchCore(features, [category], recipe.coreset_fraction, recipe.num_neighbors, recipe.blur_sigma)
    info = model.fit(category, _inputs(prepared, good, spec))             # 1–2. good patches, the coreset bank
    x = _inputs(prepared, test, spec)
    with torch.no_grad():
        f, (h, w) = features(x)                                            # 3. the test image's patches
        d, _ = nearest(f, model.bank(category), k=1, query_chunk=None,     # 4. distance to the nearest good patch
                       bank_chunk=model.bank_chunk)
    score, maps = model.raw_scores(x, category)                            # 5. image score and blurred map
    return Walkthrough(category, int(info["patches"]), (int(h), int(w)), int(f.shape[1]), int(info["bank"]),
                       _crops(prepared, test, spec)[0], _masks(prepared, test, spec)[0],
                       d[:, 0].view(h, w).numpy(), maps[0], float(score[0]))


def run_standard(prepared: Any, recipe: PatchCoreRecipe | None = None, features: PatchFeatures | None = None,
                 progress: bool = True) -> OneClassResult | None:
    """The MVTec standard protocol (:func:`run_protocol`), or None — printed with the reason — for data without
    MVTec's own ``train/good`` and ``test/`` folders (a product in the plain layout: the series' split only)."""
    from ..data.split import standard_protocol

    if standard_protocol(prepared.manifest).empty:
        print("MVTec standard protocol: not run — it fits on MVTec's own train/good and scores its test/ folders, "
              "and this data has none (sorted photos: the series' own split below is the protocol here).")
        return None
    return run_protocol(prepared, "mvtec-standard", recipe, features=features, progress=progress)


def compare_with_published(per_category: pd.DataFrame) -> pd.DataFrame:
    """Our per-category image/pixel AUROC next to anomalib's WideResNet-50 reproduction."""
    t = per_category.set_index("category")[["n_scored", "image_auroc", "pixel_auroc"]].copy()
    t["published image AUROC (WRN-50)"] = [PUBLISHED_WRN50["image_auroc"].get(c, math.nan) for c in t.index]
    t["published pixel AUROC (WRN-50)"] = [PUBLISHED_WRN50["pixel_auroc"].get(c, math.nan) for c in t.index]
    return t


def localisation_table(result: OneClassResult) -> pd.DataFrame:
    """The run's localisation in the series' one format (:data:`helpers.evaluation.localisation.LOCALISATION_COLUMNS`):
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
    table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)[LOCALISATION_COLUMNS]
    if not result.map_draws:
        return table
    return table.merge(I.summarise_map_draws({c: d for c, d in result.map_draws.items() if c in set(per["category"])}),
                       on="category", how="left")


def _mean_of(table: pd.DataFrame, col: str) -> float:
    vals = table[col].to_numpy(float) if col in table else np.array([])
    return float(np.mean(vals[np.isfinite(vals)])) if np.isfinite(vals).any() else math.nan


def write_shared(prepared: Any, shared: OneClassResult, standard: OneClassResult | None, started: float,
                 threshold_method: str = "f1") -> OneClassRun:
    """Notebook 06's outputs: the shared-split run through :func:`helpers.artefacts.scored.write_scored`
    (metrics.json, scores.csv) plus ``per_category_*.csv``; the MVTec-standard results go into metrics.json's
    ``extra``.

    The shared-split model (its banks and each category's normalisation) is saved as ``model.pt`` with a model card,
    so that ``python -m helpers export|predict|serve`` deploy PatchCore too."""
    out = layout.notebook_dir(prepared.cfg.runs_dir, layout.PATCHCORE)
    files.write_csv(shared.per_category, out / layout.PER_CATEGORY_SHARED)
    if standard is not None:
        files.write_csv(standard.per_category, out / layout.PER_CATEGORY_STANDARD)
    loc_cols = [c for c in ("category", "pixel_auroc", "au_pro", "pointing_game", *INTERVAL_COLUMNS)
                if c in shared.per_category]
    files.write_csv(localisation_table(shared), out / layout.LOCALISATION)
    extra = {"backbone": shared.model.features.key, "weights": shared.model.features.weights,
             "backbone_name": shared.backbone, "backbone_choice": shared.model.features.choice.as_dict(),
             "pointing_game_mean": _mean_of(shared.per_category, "pointing_game"),
             "au_pro_mean": _mean_of(shared.per_category, "au_pro"),
             "recipe": asdict(shared.recipe), "pixel_auroc_mean": _mean_of(shared.per_category, "pixel_auroc"),
             "threshold_note": "a threshold per category on its val images; scores normalised per category",
             "not_scored": {str(r["category"]): str(r["note"]).removeprefix("skipped: ")
                            for _, r in shared.per_category.iterrows() if str(r.get("note", "")).startswith("skipped")}}
    if standard is not None:
        extra["mvtec_standard"] = {"per_category": standard.per_category,
                                   "labels_used": {"defect_labels_for_training": 0, "labels_to_select_good": 0,
                                                   "val_labels": 0, "val_labels_for": "not used (AUROC only)"},
                                   "image_auroc_mean": _mean_of(standard.per_category, "image_auroc"),
                                   "pixel_auroc_mean": _mean_of(standard.per_category, "pixel_auroc")}
    run = write_scored(prepared, layout.PATCHCORE, APPROACH, shared.scores, started=started,
                       labels=labels_used(prepared, 0, True, "per-category thresholds"),
                       threshold_method=threshold_method, per_category_threshold=True, extra=extra,
                       per_category_extra=shared.per_category[loc_cols] if len(loc_cols) > 1 else None,
                       run_type=OneClassRun, model=shared.model, shared=shared, standard=standard)
    _normalise_model(run)        # the run's model scores as the report did, saved or not
    if shared.model.categories:
        _save(run, shared)
    return run


def _normalise_model(run: OneClassRun) -> None:
    """Give the run's model the per-category normalisation its scores were made with (its ``forward``, the exported
    graph, then gives exactly the normalised scores of ``scores.csv``)."""
    model, per = run.model, run.record.threshold_per_category()
    model.set_normalisation({c: (p.threshold, M.category_span(p.min, p.max))
                             for c, p in per.items() if c in model.categories
                             and p.threshold is not None and p.min is not None and p.max is not None},
                            centre=M.NORMALISED_THRESHOLD)


def _save(run: OneClassRun, shared: OneClassResult) -> None:
    """The model (banks + each category's normalisation, as notebook 06 chose it on val) and its card."""
    model, recipe = shared.model, shared.recipe
    per = run.record.threshold_per_category()
    name = kinds.PATCHCORE.model_file
    kinds.PATCHCORE.save(model, run.out_dir / name, recipe=asdict(recipe), backbone_name=shared.backbone)
    spec = kinds.PATCHCORE.input_spec(recipe.crop, resize=recipe.resize)
    # a category the run could not threshold (no val image) is left off the card: predict refuses it by name
    usable = tuple(c for c in model.categories if c in per and per[c].threshold is not None)
    rows = {c: int(model.bank_rows[model.index(c)]) for c in usable}
    write_card(run.out_dir, card_for(run, kinds.PATCHCORE.name, name, spec, categories=usable,
                                     bank_rows=rows, backbone=model.features.key, weights=shared.backbone))
