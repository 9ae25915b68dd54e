"""Notebook 09 as functions: how many labels each approach needs.

The supervised classifier (notebook 01's recipe) and the linear probe (notebook 03's recipe, on notebook 02's
frozen SimCLR encoder) are trained on nested, stratified subsets of ``train``'s labels
(:func:`helpers.data.budgets.nested_budgets`), several seeds per budget, and scored on the same ``test`` images as
every other notebook. The approaches that need no defect label — kNN on the SimCLR features and PatchCore — are the
reference lines. Thresholds play no part: the figure is test AUROC, each with its bootstrap 95% interval.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ..artefacts import record as R
from ..artefacts import scored as runs
from ..core import files, layout
from ..data.budgets import nested_budgets
from ..evaluation import intervals as I
from ..models import backbones
from ..training.recipes import LabelBudgetRecipe, ProbeRecipe, SupervisedRecipe, for_backbone, scaled

__all__ = ["RUN_COLUMNS", "LabelRun", "plan", "estimate_seconds", "references", "run", "summarise", "write_outputs"]

SUPERVISED, PROBE = "Supervised classifier", "SimCLR + linear probe"
RUN_COLUMNS = ["approach", "fraction", "seed", "labelled", "labelled_defective", "test_auroc", "auroc_low",
               "auroc_high", "seconds", "note"]


@dataclass
class LabelRun:
    """Every (approach, budget, seed) fit with its test AUROC, the references, and the summary in words."""

    runs: pd.DataFrame
    references: pd.DataFrame
    summary: pd.DataFrame
    recipe: LabelBudgetRecipe
    backbone: str


def _subsets(train: pd.DataFrame, fractions: tuple[float, ...], n_seeds: int, base_seed: int
             ) -> list[tuple[int, float, pd.DataFrame]]:
    """Every (seed, budget, subset) of one approach: the nested budgets drawn once per seed."""
    return [(base_seed + s, f, sub) for s in range(n_seeds)
            for f, sub in nested_budgets(train, fractions, base_seed + s).items()]


def plan(prepared: Any, recipe: LabelBudgetRecipe) -> pd.DataFrame:
    """Every fit notebook 09 will make: approach, budget, seed, and the subset's size (before anything trains)."""
    rows = []
    train = prepared.frame("train")
    for approach, fractions, n_seeds in ((SUPERVISED, recipe.supervised_fractions, recipe.supervised_seeds),
                                         (PROBE, recipe.probe_fractions, recipe.probe_seeds)):
        for seed, f, subset in _subsets(train, fractions, n_seeds, prepared.cfg.seed):
            rows.append({"approach": approach, "fraction": f, "seed": seed, "labelled": len(subset),
                         "labelled_defective": int(subset["label"].sum())})
    return pd.DataFrame(rows)


def estimate_seconds(prepared: Any, todo: pd.DataFrame) -> tuple[float, str]:
    """The supervised fits' time, estimated from notebook 01's measured seconds per epoch on all of ``train``
    (scaled by each subset's size; the probe's fits cost seconds): ``(seconds, where it was measured)``."""
    history = runs.read_scores(prepared.cfg.runs_dir, layout.SUPERVISED, layout.HISTORY)
    record = runs.read_record(prepared.cfg.runs_dir, layout.SUPERVISED)
    if history is None or "seconds" not in history or record is None:
        return math.nan, "no measurement: run notebook 01 first (its per-epoch times give the estimate)"
    per_epoch = float(history["seconds"].median())
    n_train = max(1, int((prepared.split["split"] == "train").sum()))
    epochs = int((record.extra.recipe or {}).get("epochs", len(history)))
    sup = todo[todo["approach"] == SUPERVISED]
    sup = sup[~((sup["fraction"] == 1.0) & (sup["seed"] == prepared.cfg.seed))]   # notebook 01's own run, read back
    # an epoch = training on the subset + scoring val (about a fifth of an epoch on all of train, measured in 01)
    seconds = float(sum(epochs * per_epoch * (0.8 * n / n_train + 0.2) for n in sup["labelled"]))
    device = record.device
    machine = device.get("gpu") or f"{device.get('cpu_cores', '?')}-core {device.get('cpu', '?')} CPU"
    where = f"{per_epoch:.1f} s per epoch in notebook 01 on {machine}"
    return seconds, where


def references(prepared: Any) -> pd.DataFrame:
    """The approaches that use no defect label, from what notebooks 03 and 06 wrote: test AUROC and its interval
    (per-category scores normalised as in the report)."""
    from .report import approaches, load_approaches

    one_class = {row.label for _, row in approaches() if row.one_class}
    found, _ = load_approaches(prepared.cfg.runs_dir)
    rows = []
    for a in found:
        if a.name in one_class:
            auc = I.image_intervals(a.test)["roc_auc"]
            rows.append({"approach": a.name, "test_auroc": auc.value, "auroc_low": auc.low, "auroc_high": auc.high,
                         "defect labels": 0, "n_test": len(a.test)})
    return pd.DataFrame(rows, columns=["approach", "test_auroc", "auroc_low", "auroc_high", "defect labels", "n_test"])


def _row(approach: str, fraction: float, seed: int, subset: pd.DataFrame, test: pd.DataFrame, started: float,
         note: str = "") -> dict[str, Any]:
    auc = I.image_intervals(test)["roc_auc"]
    return {"approach": approach, "fraction": fraction, "seed": seed, "labelled": len(subset),
            "labelled_defective": int(subset["label"].sum()), "test_auroc": auc.value, "auroc_low": auc.low,
            "auroc_high": auc.high, "seconds": round(time.time() - started, 1), "note": note}


def _skipped(approach: str, fraction: float, seed: int, subset: pd.DataFrame) -> dict[str, Any]:
    return {"approach": approach, "fraction": fraction, "seed": seed, "labelled": len(subset),
            "labelled_defective": int(subset["label"].sum()), "test_auroc": math.nan, "auroc_low": math.nan,
            "auroc_high": math.nan, "seconds": 0.0, "note": "one class only in this budget: nothing to train"}


def _probe_runs(prepared: Any, recipe: LabelBudgetRecipe, progress: bool) -> list[dict[str, Any]]:
    """The probe on every budget and seed: the frozen encoder's features computed once, a head fitted per subset."""
    import torch

    from ..core.env import torch_device
    from ..models.classifiers import LinearProbe, defect_probability
    from ..training.loop import reseed
    from . import probe as P
    from .common import score_frame
    from .simclr import load_encoder

    cfg = prepared.cfg
    encoder, _ = load_encoder(cfg.runs_dir)
    device = torch_device()
    encoder = encoder.to(device).eval()
    entry = backbones.get(P.encoder_key(encoder))
    probe_recipe = scaled(ProbeRecipe(), cfg.profile)
    train = prepared.frame("train").reset_index(drop=True)
    feats, frames = P.frozen_features(prepared, encoder, probe_recipe, train, (entry.mean, entry.std))
    position = {p: i for i, p in enumerate(frames["labelled"].frame["path"])}
    rows = []
    todo = _subsets(train, recipe.probe_fractions, recipe.probe_seeds, cfg.seed)
    for seed, f, subset in tqdm(todo, desc="probe: budgets × seeds", disable=not progress):
        t0 = time.time()
        if subset["label"].nunique() < 2:
            rows.append(_skipped(PROBE, f, seed, subset))
            continue
        idx = [position[p] for p in subset["path"]]
        reseed(seed)
        head_model = LinearProbe(encoder).to(device)
        y = subset["label"].to_numpy()
        P.train_head(prepared, head_model, {"labelled": feats["labelled"][idx], "val": feats["val"]}, y,
                     frames["val"].labels, probe_recipe, seed=seed, val_metrics=False)
        with torch.no_grad():
            logits = head_model.head(torch.from_numpy(feats["test"]).float().to(device))
            prob = defect_probability(logits).cpu().numpy()
        rows.append(_row(PROBE, f, seed, subset, score_frame(frames["test"].frame, prob, "test"), t0))
    return rows


def _supervised_runs(prepared: Any, recipe: LabelBudgetRecipe, choice: backbones.Choice, progress: bool
                     ) -> list[dict[str, Any]]:
    """The supervised classifier (notebook 01's recipe) on every budget and seed. All of ``train`` at the config's
    seed is notebook 01's own run (same recipe, data and seed): its test scores are read, not trained again."""
    from . import supervised

    cfg = prepared.cfg
    train = prepared.frame("train").reset_index(drop=True)
    sup_recipe = for_backbone(scaled(SupervisedRecipe(), cfg.profile), choice.key)
    own = runs.read_scores(cfg.runs_dir, layout.SUPERVISED)
    own_record = runs.read_record(cfg.runs_dir, layout.SUPERVISED)
    same = (own is not None and own_record is not None and own_record.extra.recipe == asdict(sup_recipe)
            and own_record.extra.backbone == choice.key)
    rows = []
    todo = _subsets(train, recipe.supervised_fractions, recipe.supervised_seeds, cfg.seed)
    for seed, f, subset in tqdm(todo, desc="supervised: budgets × seeds", disable=not progress):
        t0 = time.time()
        if subset["label"].nunique() < 2:
            rows.append(_skipped(SUPERVISED, f, seed, subset))
            continue
        if f == 1.0 and seed == cfg.seed and same and own is not None:
            rows.append(_row(SUPERVISED, f, seed, subset, own[own["split"] == "test"], t0, "notebook 01's run"))
            continue
        fitted = supervised.run(prepared, sup_recipe, backbone=choice, write=False, progress=False,
                                train_rows=subset, seed=seed)
        rows.append(_row(SUPERVISED, f, seed, subset, fitted.split_scores("test"), t0))
    return rows


def run(prepared: Any, recipe: LabelBudgetRecipe | None = None, *, backbone: str | backbones.Choice = "auto",
        progress: bool = True) -> LabelRun:
    """Train both approaches on every budget and seed of ``recipe`` (default: the profile's) and summarise."""
    recipe = recipe or scaled(LabelBudgetRecipe(), prepared.cfg.profile)
    choice = backbone if isinstance(backbone, backbones.Choice) else backbones.resolve(backbone, "resnet50")[0]
    rows = _probe_runs(prepared, recipe, progress) + _supervised_runs(prepared, recipe, choice, progress)
    table = pd.DataFrame(rows, columns=RUN_COLUMNS)
    refs = references(prepared)
    return LabelRun(table, refs, summarise(table, refs), recipe, f"{choice.key} ({choice.weights})")


def summarise(table: pd.DataFrame, refs: pd.DataFrame) -> pd.DataFrame:
    """Per trained approach and reference: the smallest number of labelled defective images from which its mean
    test AUROC over seeds stays above the reference's, in words ("does not" when it never does)."""
    rows = []
    curves = table.groupby(["approach", "fraction"]).agg(defective=("labelled_defective", "mean"),
                                                         auroc=("test_auroc", "mean"), seeds=("seed", "nunique"))
    for approach in table["approach"].unique():
        curve = curves.loc[approach].sort_index()
        for _, ref in refs.iterrows():
            above = (curve["auroc"] > ref["test_auroc"]).to_numpy()
            # the first budget from which it stays above (every larger budget too)
            first = next((i for i in range(len(above)) if above[i:].all()), None)
            if first is None:
                words = (f"{approach} does not overtake {ref['approach']} (test AUROC {ref['test_auroc']:.2f}) at any "
                         f"budget up to {curve['defective'].iloc[-1]:.0f} labelled defective images")
                at = math.nan
            else:
                at = float(curve["defective"].iloc[first])
                n_seeds = int(curve["seeds"].iloc[first])
                over = f"mean over {n_seeds} seeds" if n_seeds > 1 else "one seed"
                words = (f"{approach} overtakes {ref['approach']} (test AUROC {ref['test_auroc']:.2f}) from about "
                         f"{at:.0f} labelled defective images ({over}: {curve['auroc'].iloc[first]:.2f})")
            rows.append({"approach": approach, "reference": ref["approach"], "overtakes_at_defective": at,
                         "in words": words})
    return pd.DataFrame(rows, columns=["approach", "reference", "overtakes_at_defective", "in words"])


def write_outputs(prepared: Any, result: LabelRun, started: float) -> R.MetricsRecord:
    """Notebook 09's folder (``layout.LABELS``): every fit (label_efficiency.csv), the summary the report links, and
    metrics.json (each approach's mean test AUROC per budget, with the seeds' range as its interval)."""
    out = layout.notebook_dir(prepared.cfg.runs_dir, layout.LABELS)
    files.write_csv(result.runs, out / layout.LABEL_RUNS)
    files.write_csv(result.summary, out / layout.LABEL_SUMMARY)
    means = result.runs.groupby(["approach", "fraction"]).agg(auroc=("test_auroc", "mean"), low=("test_auroc", "min"),
                                                              high=("test_auroc", "max"),
                                                              defective=("labelled_defective", "mean"))
    metrics = {f"{a} | {f:g} of train ({d:.0f} defective)": r for (a, f), r, d in
               zip(means.index, means["auroc"], means["defective"])}
    spans = {f"{a} | {f:g} of train ({d:.0f} defective)": [lo, hi] for (a, f), lo, hi, d in
             zip(means.index, means["low"], means["high"], means["defective"])}
    record = R.metrics_record(layout.LABELS, "Label efficiency: supervised and probe on nested label budgets",
                              "shared-split", prepared.cfg.profile.name,
                              prepared.split["split"].value_counts().to_dict(), None, "fixed",
                              metrics or {"note": "nothing trained"}, result.runs, started=started,
                              extra={"recipe": asdict(result.recipe), "backbone": result.backbone,
                                     "references": result.references, "summary": result.summary,
                                     "intervals_note": "here each interval is the range over seeds; each run's "
                                                       "bootstrap interval is in per_category rows"},
                              data=prepared.provenance(), intervals=spans)
    R.write_metrics(record, prepared.cfg.runs_dir, path=out / layout.METRICS)
    return record
