"""Notebook 07 as functions: every approach on the same held-out ``test`` images, in one table.

Reads what notebooks 01–06 wrote under ``RUNS_DIR``: each approach's ``scores.csv`` (val and test rows)
and its ``metrics.json`` (threshold chosen on val). Label-free kNN scores (notebook 03) get their
threshold chosen on val here, by the same rule. Nothing is refitted; ``test`` is only scored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..artefacts import record as R
from ..artefacts import scored as runs
from ..core import files, layout
from ..evaluation import intervals as I
from ..evaluation import metrics as M
from ..evaluation.studies import study_rows
from ..models import kinds

__all__ = ["approaches", "per_category_labels", "LABEL_COLUMNS", "TABLE_COLUMNS", "INTERVAL_METRICS", "standard_protocol_row",
           "Approach", "load_approaches", "check_same_data", "Coverage", "coverage", "on_common",
           "comparison_table", "readable_table", "mixed_backbones", "paired_comparisons",
           "category_auroc", "localisation", "label_efficiency", "label_efficiency_note", "FEW_DEFECTS", "few_defects_note",
           "to_markdown", "export"]


def approaches() -> tuple[tuple[str, kinds.ReportRow], ...]:
    """``(folder, row)`` of every approach the report compares (the folder: its notebook's, or its own inside it:
    :mod:`helpers.core.layout`), read from the registry of model kinds (each kind's ``report_rows``), in notebook
    order. The labels each used are counted in its metrics.json
    (``labels_used``) and shown beside it."""
    ordered = sorted(kinds.KINDS.values(), key=lambda k: k.folder)
    return tuple((k.folder, row) for k in ordered for row in k.report_rows)


def per_category_labels() -> frozenset[str]:
    """The approaches whose scores are distances on a scale of their own per category: thresholds per category."""
    return frozenset(row.label for _, row in approaches() if row.per_category)


LABEL_COLUMNS = ["defect labels (train)", "labels to pick good images", "val labels"]

TABLE_COLUMNS = ["approach", "backbone", "trained with", *LABEL_COLUMNS, "n_test", "accuracy", "precision", "recall", "f1",
                 "roc_auc", "category AUROC (mean)", "pr_auc", "fpr", "specificity", "threshold", "threshold chosen"]


@dataclass
class Approach:
    """One approach's val/test scores, its val-chosen threshold, the backbone it stands on, and what it could not
    score (``{category: reason}``)."""

    name: str
    trained_with: str
    scores: pd.DataFrame
    threshold: float
    threshold_how: str
    source: Path
    labels: dict[str, Any] | None = None
    backbone: str = "?"
    not_scored: dict[str, str] = field(default_factory=dict)

    @property
    def test(self) -> pd.DataFrame:
        return self.scores[self.scores["split"] == "test"].sort_values("path").reset_index(drop=True)


def _backbone(record: R.MetricsRecord | None) -> str:
    """``key (weights)`` from a notebook's metrics.json (every model notebook records both)."""
    key, weights = (record.extra.backbone, record.extra.weights) if record is not None else (None, None)
    if not key:
        return "?"
    return f"{key} ({weights})" if weights else str(key)


def _threshold(name: str, file: str, scores: pd.DataFrame, record: R.MetricsRecord | None, stem: str
               ) -> tuple[pd.DataFrame, float, str] | None:
    val = scores[scores["split"] == "val"]
    if file == layout.SCORES and record is not None and record.threshold.value is not None:
        thr = record.threshold
        per_cat = " per category, scores normalised per category" if thr.per_category else ""
        return scores, float(record.threshold.value), f"{thr.method} on val{per_cat} (notebook {stem[:2]})"
    if len(val) and name in per_category_labels():
        scores, _ = M.normalise_per_category(scores, "f1")   # a category without val rows drops out (coverage)
        return scores, M.NORMALISED_THRESHOLD, "f1 on val per category, scores normalised per category (here)"
    if len(val):
        return scores, M.choose_threshold(val["label"], val["score"], "f1"), "f1 on val (here)"
    return None


def load_approaches(runs_dir: str | Path) -> tuple[list[Approach], list[str]]:
    """Every approach whose outputs exist; a line for each missing one naming the notebook to run."""
    found, missing = [], []
    for stem, row in approaches():
        file, name, how = row.file, row.label, row.trained_with
        path = layout.artefact(runs_dir, stem, file)
        scores = runs.read_scores(runs_dir, stem, file)
        if scores is None:
            missing.append(layout.missing_message(name, path, stem))
            continue
        record = runs.read_record(runs_dir, stem)
        used = None if record is None else record.labels_used if file == layout.SCORES else record.extra.knn_labels_used
        labels = used.model_dump() if used is not None else None
        chosen = _threshold(name, file, scores, record, stem)
        if chosen is None:
            missing.append(f"{name}: {path} has no val rows to choose a threshold on — re-run notebook "
                           f"{layout.notebook_of(stem)}.ipynb.")
            continue
        scores, threshold, how_thr = chosen
        not_scored = dict(record.extra.not_scored or {}) if record is not None else {}
        if file == layout.SCORES and record is not None:
            not_scored.update({c: p.note for c, p in record.threshold_per_category().items() if p.note == M.NO_VAL_NOTE})
        found.append(Approach(name, how, scores, threshold, how_thr, path, labels, _backbone(record), not_scored))
    return found, missing


def check_same_data(runs_dir: str | Path, expected: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The data every scored notebook's metrics.json says it was measured on, checked to be one.

    Raises ``ValueError`` naming each notebook's data and split when two differ (or differ from
    ``expected``, e.g. :meth:`helpers.data.prepare.Prepared.provenance` of this run): runs from different data
    or splits never share a table.
    """
    seen = {stem: rec.data.model_dump(exclude_none=True) for stem in dict.fromkeys(s for s, _ in approaches())
            if (rec := runs.read_record(runs_dir, stem)) is not None}
    if expected is not None:
        seen = {"this run (notebook 07)": expected, **seen}
    if len({(d["manifest_hash"], d["split_hash"]) for d in seen.values()}) > 1:
        lines = "\n".join(f"  {k}: {d['name']} at {d['root']} (manifest {d['manifest_hash']}, split {d['split_hash']})"
                          for k, d in seen.items())
        raise ValueError("These runs were measured on different data or splits, so they cannot share one table:\n"
                         f"{lines}\nRe-run the notebooks that differ on the same data and split (one RUNS_DIR).")
    return next(iter(seen.values()), None)


@dataclass
class Coverage:
    """Which test images every approach scored (the report's tables use only those), each approach's coverage
    per category, and what each could not score and why."""

    common: frozenset[str]
    per_category: pd.DataFrame            # approach × category: "scored / test images"
    gaps: list[str]                       # one line per approach that left images out, with the reasons
    n_test: int                           # the test split's images (the union of what was scored when unknown)
    #: defective images per category among the common ones (what every interval of the report rests on)
    defective: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        head = f"{len(self.common)} of {self.n_test} test images were scored by every approach; the tables use those."
        return "\n".join([head, *self.gaps, *([few] if (few := few_defects_note(self.defective)) else [])])


#: Below this many defective test images (in all, or in a category) the report says what it means for the intervals.
FEW_DEFECTS = 10


def few_defects_note(defective: dict[str, int], few: int = FEW_DEFECTS) -> str:
    """A sentence on what few defective test images mean for the intervals ("" when every category has ``few`` or
    more): each defective image is a large share of recall, and the intervals are wide accordingly."""
    if not defective:
        return ""
    total, small = sum(defective.values()), {c: n for c, n in defective.items() if n < few}
    if not small and total >= few:
        return ""
    where = ", ".join(f"{c}: {n}" for c, n in sorted(small.items()))
    share = f"one image is {1 / max(min(small.values() or [total]), 1):.0%} of a category's recall"
    return (f"Few defective test images ({total} in all; fewer than {few} in {where or 'total'}): {share}, so every "
            "interval here is wide and only large differences can be resolved. More defective images (photographed, "
            "sorted into their folders) narrow them; nothing else does.")


def coverage(approaches: list[Approach], test_split: pd.DataFrame | None = None) -> Coverage:
    """The test images common to every approach and, per approach, what it left out (by category, with the reason
    its notebook recorded, else that the images are not in its scores). ``test_split`` (``path``, ``category``) is
    the split's test images; without it, the union of what the approaches scored."""
    frames = [a.test[["path", "category"]] for a in approaches]
    if test_split is not None:
        universe = test_split[["path", "category"]].drop_duplicates("path")
    else:
        universe = pd.concat(frames).drop_duplicates("path") if frames else pd.DataFrame(columns=["path", "category"])
    common = frozenset(universe["path"])
    for f in frames:
        common &= frozenset(f["path"])
    totals = universe.groupby("category")["path"].nunique()
    table, gaps = {}, []
    for a, f in zip(approaches, frames):
        got = f[f["path"].isin(set(universe["path"]))].groupby("category")["path"].nunique().reindex(totals.index).fillna(0)
        table[a.name] = {c: f"{int(got[c])}/{int(totals[c])}" for c in totals.index}
        short = [c for c in totals.index if got[c] < totals[c]]
        if short:
            reasons: dict[str, list[str]] = {}
            for c in short:
                reasons.setdefault(a.not_scored.get(c, "not in its scores"), []).append(c)
            gaps.append(f"{a.name}: " + "; ".join(f"{why} for {', '.join(cats)}" for why, cats in reasons.items()))
    rows = pd.concat([a.test for a in approaches]).drop_duplicates("path") if approaches else None
    defective = ({} if rows is None or "label" not in rows else
                 {str(c): int(n) for c, n in rows[rows["path"].isin(common)].groupby("category")["label"].sum().items()})
    return Coverage(common, pd.DataFrame(table).T, gaps, int(len(universe)), defective)


def on_common(approaches: list[Approach], cov: Coverage) -> list[pd.DataFrame]:
    """Each approach's test rows restricted to the common images (same order: by path)."""
    return [a.test[a.test["path"].isin(cov.common)].reset_index(drop=True) for a in approaches]


#: The metrics of the table shown with their intervals (``<metric>_low`` / ``<metric>_high`` columns).
INTERVAL_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "category AUROC (mean)", "pr_auc", "fpr",
                    "specificity")


def comparison_table(approaches: list[Approach], cov: Coverage | None = None) -> pd.DataFrame:
    """One row per approach on the common test images: threshold metrics at its val-chosen threshold, ranking
    metrics, each with its bootstrap 95% interval, the backbone, the labels used and the threshold."""
    cov = cov or coverage(approaches)
    rows: list[dict[str, Any]] = []
    for a, t in zip(approaches, on_common(approaches, cov) if cov.common else []):
        m = M.binary_metrics(t["label"], t["score"], a.threshold)
        spans = I.image_intervals(t, a.threshold) if len(t) else {}
        lab = a.labels or {}
        counts = dict(zip(LABEL_COLUMNS, (lab.get("defect_labels_for_training"), lab.get("labels_to_select_good"),
                                          f"{lab['val_labels']} ({lab['val_labels_for']})" if lab else None)))
        values = {**{k: m[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "fpr",
                                         "specificity")},
                  "category AUROC (mean)": M.mean_category_auroc(M.per_category_table(t))}
        ends = {f"{k}_{e}": getattr(spans[key], e) if key in spans else math.nan
                for k in INTERVAL_METRICS for key in [_SPAN_KEY.get(k, k)] for e in ("low", "high")}
        rows.append({"approach": a.name, "backbone": a.backbone, "trained with": a.trained_with, **counts,
                     "n_test": m["n"], **values, "threshold": a.threshold, "threshold chosen": a.threshold_how,
                     **ends})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS + [f"{k}_{e}" for k in INTERVAL_METRICS for e in ("low", "high")])


_SPAN_KEY = {"category AUROC (mean)": "category_auroc_mean"}


def mixed_backbones(approaches: list[Approach]) -> str:
    """A warning when the pretrained networks under the approaches differ (empty when they agree): their rows
    compare backbones as much as methods. Networks are compared by name (SimCLR's further training of the same
    network is the method, not another backbone)."""
    nets = {a.name: a.backbone for a in approaches if a.backbone not in ("?", "own CNN (from scratch)")}
    if len({v.split(" ")[0] for v in nets.values()}) <= 1:
        return ""
    return ("Rows on different backbones — the differences mix backbone and method: "
            + "; ".join(f"{k}: {v}" for k, v in nets.items()))


def paired_comparisons(approaches: list[Approach], cov: Coverage | None = None) -> pd.DataFrame:
    """Each pair of approaches' test AUROC difference on the common images, with its paired-bootstrap 95% interval
    (the same resamples for both; :func:`helpers.evaluation.intervals.paired_difference`), and in words whether
    this test set resolves it."""
    cov = cov or coverage(approaches)
    tests = on_common(approaches, cov)
    rows = []
    if not tests or tests[0]["label"].nunique() < 2:   # one class only: no AUROC to compare
        tests = []
    auroc = [I.image_intervals(t)["roc_auc"].value for t in tests]
    for i in range(len(tests)):
        for j in range(i + 1, len(tests)):
            a, b = (i, j) if auroc[i] >= auroc[j] else (j, i)
            d = I.paired_difference(tests[a], tests[b])
            verdict = ("resolved: the interval excludes 0" if d.resolved else
                       f"not resolved by these {len(tests[a])} test images: the interval includes 0")
            rows.append({"comparison": f"{approaches[a].name} − {approaches[b].name}", "AUROC difference": d.value,
                         "low": d.low, "high": d.high, "resolved": d.resolved,
                         "in words": f"{approaches[a].name} − {approaches[b].name}: "
                                     f"{d.format(against=0.0, signed=True)} — {verdict}"})
    return pd.DataFrame(rows, columns=["comparison", "AUROC difference", "low", "high", "resolved", "in words"])


def standard_protocol_row(runs_dir: str | Path) -> pd.DataFrame:
    """PatchCore under the MVTec standard protocol (notebook 06), with the labels it needs — none: fitted on
    ``train/good`` as MVTec's folders give it, judged by AUROC (no threshold). Scored on MVTec's ``test``
    folders, not on the shared test split, so it is shown apart from the main table (empty when not run)."""
    rec = runs.read_record(runs_dir, layout.PATCHCORE)
    std = rec.extra.mvtec_standard if rec is not None else None
    if std is None:
        return pd.DataFrame(columns=["approach", *LABEL_COLUMNS, "category AUROC (mean)", "scored on"])
    lab = std.labels_used
    return pd.DataFrame([{"approach": "PatchCore, MVTec standard protocol",
                          **dict(zip(LABEL_COLUMNS, (lab.defect_labels_for_training, lab.labels_to_select_good,
                                                     f"{lab.val_labels} ({lab.val_labels_for})"))),
                          "category AUROC (mean)": std.image_auroc_mean,
                          "scored on": "MVTec's test folders (not the shared test split)"}])


def category_auroc(approaches: list[Approach], cov: Coverage | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Approach × category test AUROC on the common images (NaN where a category has one class only), and the
    lower and upper ends of each cell's bootstrap 95% interval."""
    cov = cov or coverage(approaches)
    per = {a.name: I.category_intervals(t).set_index("category") for a, t in zip(approaches, on_common(approaches, cov))}
    frames = [pd.DataFrame({k: v[c] for k, v in per.items()}).T for c in ("auroc", "auroc_low", "auroc_high")]
    return frames[0], frames[1], frames[2]


def readable_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table for reading: each metric as ``value [low, high]``, the threshold's provenance kept."""
    from ..viz.results import interval_table

    return interval_table(table, INTERVAL_METRICS).drop(columns=["trained with"])


def label_efficiency(runs_dir: str | Path) -> pd.DataFrame | None:
    """Notebook 09's summary (labelled defective images at which each supervised approach overtakes the one-class
    references), or None when it has not run."""
    path = layout.artefact(runs_dir, layout.LABELS, layout.LABEL_SUMMARY)
    return pd.read_csv(path) if path.exists() else None


def label_efficiency_note(summary: pd.DataFrame | None) -> str:
    """The report's pointer to notebook 09, with its answer when it has run."""
    where = f"notebook {layout.LABELS}.ipynb (outputs in RUNS_DIR/{layout.LABELS}/)"
    if summary is None or not len(summary):
        return f"From how many labelled defective images supervision pays: {where} — not run yet."
    return f"From how many labelled defective images supervision pays ({where}):\n\n" + "\n".join(
        f"- {line}" for line in summary["in words"])


def localisation(runs_dir: str | Path) -> pd.DataFrame:
    """One localisation table for every map: Grad-CAM of each model (notebook 05) and PatchCore's anomaly maps
    (notebook 06), each scored by :func:`helpers.evaluation.localisation.score_maps` — the mean over categories of pixel
    AUROC, AU-PRO (FPR ≤ 0.3) and the pointing game, with the images it was measured on."""
    from ..evaluation.localisation import INTERVAL_COLUMNS, LOCALISATION_COLUMNS, MEAN_ROW

    parts = []
    for stem in (layout.EXPLAIN, layout.PATCHCORE):
        path = layout.artefact(runs_dir, stem, layout.LOCALISATION)
        if path.exists():
            t = pd.read_csv(path)
            missing = set(LOCALISATION_COLUMNS) - set(t.columns)
            if missing:
                raise ValueError(f"{path} was written by an older version (no {sorted(missing)}): re-run notebook "
                                 f"{stem}.ipynb.")
            parts.append(t[t["category"] == MEAN_ROW].drop(columns="category").reindex(
                columns=[c for c in LOCALISATION_COLUMNS + INTERVAL_COLUMNS if c != "category"]))
    cols = [c for c in LOCALISATION_COLUMNS + INTERVAL_COLUMNS if c != "category"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def to_markdown(table: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub Markdown table (via ``tabulate``, which pandas uses for ``to_markdown``)."""
    return table.to_markdown(index=False, floatfmt=floatfmt)


def export(runs_dir: str | Path, table: pd.DataFrame, heatmap: pd.DataFrame, loc: pd.DataFrame,
           notes: dict[str, Any], standard: pd.DataFrame | None = None, comparisons: pd.DataFrame | None = None,
           cov: Coverage | None = None) -> Path:
    """``RUNS_DIR/report/``: comparison.csv/.md (with the intervals), category_auroc.csv, localisation.csv,
    paired_comparisons.csv, coverage.csv, report.json."""
    from ..viz.results import interval_caption, interval_table

    out = Path(runs_dir) / layout.REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    files.write_csv(table, out / layout.COMPARISON_CSV)
    files.write_csv(heatmap, out / layout.CATEGORY_AUROC, index=True)
    files.write_csv(loc, out / layout.LOCALISATION)
    md = ["# Every approach on the same held-out test images", "",
          f"Test images: {notes.get('n_test')}. Data: {notes.get('data')}. Profile: {notes.get('profile')}.", ""]
    if cov is not None:
        files.write_csv(cov.per_category.rename_axis("approach"), out / layout.COVERAGE, index=True)
        md += [cov.describe(), ""]
    if warning := notes.get("mixed_backbones"):
        md += [f"**{warning}**", ""]
    md += [to_markdown(readable_table(table)), "", interval_caption(), "",
           "Thresholds were chosen on `val` only; `test` was never used for training, early stopping or thresholds. "
           "The label columns count what each approach learnt from labels; `category AUROC (mean)` is the mean of "
           "the per-category AUROCs beside the pooled `roc_auc`; PatchCore and kNN use a threshold per category.", ""]
    if comparisons is not None and len(comparisons):
        files.write_csv(comparisons, out / layout.PAIRS)
        md += ["## Which differences this test set can resolve", "",
               "Test AUROC differences, each with its paired-bootstrap 95% interval (both approaches' scores "
               "resampled together, stratified by category and label). A paired bootstrap rather than DeLong's test: "
               "it uses the same resamples as the intervals above and needs no normality assumption on a few "
               "dozen images.", "", *[f"- {line}" for line in comparisons["in words"]], ""]
    if notes.get("label_efficiency"):
        md += ["## How many labels?", "", str(notes["label_efficiency"]), ""]
    if standard is not None and len(standard):
        md += ["## The MVTec standard protocol (no labels; MVTec's test folders, not these test images)", "",
               to_markdown(standard), ""]
    if len(loc):
        md += ["## Localisation against the ground-truth masks", "",
               to_markdown(interval_table(loc, ["pixel_auroc", "au_pro", "pointing_game"])), ""]
        if loc[["pixel_auroc", "au_pro", "pointing_game"]].isna().all().all():
            md += ["The data has no ground-truth masks, so localisation is not measured (a product's masks go in "
                   "`<product>/masks/<defect type>/<stem>_mask.png`; see the README's \"Your own product\").", ""]
    studies = study_rows()
    md += ["## The studies' own figures (not on these test images)", "",
           to_markdown(studies.astype(object).where(studies.notna(), "")), ""]
    files.write_text(out / layout.COMPARISON_MD, "\n".join(md))
    files.write_json(out / layout.REPORT_JSON, notes, default=str)
    return out / layout.COMPARISON_MD
