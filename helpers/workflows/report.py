"""Notebook 07 as functions: every approach on the same held-out ``test`` images, in one table.

Reads what notebooks 01–06 wrote under ``RUNS_DIR``: each approach's ``scores.csv`` (val and test rows)
and its ``metrics.json`` (threshold chosen on val). Label-free kNN scores (notebook 03) get their
threshold chosen on val here, by the same rule. Nothing is refitted; ``test`` is only scored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..artefacts import scored as runs
from ..core import files, layout
from ..evaluation import metrics as M
from ..evaluation.studies import study_rows

__all__ = ["APPROACHES", "PER_CATEGORY", "LABEL_COLUMNS", "TABLE_COLUMNS", "standard_protocol_row", "Approach",
           "load_approaches", "check_same_data", "check_same_test_images",
           "comparison_table", "category_auroc", "localisation", "to_markdown", "export"]

#: (notebook, scores file, approach label, how it was trained). The labels each used are counted in its
#: metrics.json (``labels_used``) and shown beside it.
APPROACHES: tuple[tuple[str, str, str, str], ...] = (
    (layout.SUPERVISED, layout.SCORES, "Supervised classifier", "supervised on every train label"),
    (layout.PROBE, layout.SCORES, "SimCLR + linear probe",
     "SimCLR on train's good images (picked by label), probe on 10% of train labels"),
    (layout.PROBE, layout.knn_scores(1), "SimCLR kNN (k=1)", "SimCLR; bank of train's good images (picked by label)"),
    (layout.PROBE, layout.knn_scores(5), "SimCLR kNN (k=5)", "SimCLR; bank of train's good images (picked by label)"),
    (layout.KERAS, layout.SCORES, "Keras multi-task CNN", "supervised on every train label (defect and category)"),
    (layout.PATCHCORE, layout.SCORES, "PatchCore", "one-class; bank of train's good images (picked by label)"),
)
#: Approaches whose scores are distances on a scale of their own per category: thresholds per category.
PER_CATEGORY = frozenset({"SimCLR kNN (k=1)", "SimCLR kNN (k=5)", "PatchCore"})
LABEL_COLUMNS = ["defect labels (train)", "labels to pick good images", "val labels"]

TABLE_COLUMNS = ["approach", "trained with", *LABEL_COLUMNS, "n_test", "accuracy", "precision", "recall", "f1",
                 "roc_auc", "category AUROC (mean)", "pr_auc", "fpr", "specificity", "threshold", "threshold chosen"]


@dataclass
class Approach:
    """One approach's val/test scores and its val-chosen threshold."""

    name: str
    trained_with: str
    scores: pd.DataFrame
    threshold: float
    threshold_how: str
    source: Path
    labels: dict[str, Any] | None = None

    @property
    def test(self) -> pd.DataFrame:
        return self.scores[self.scores["split"] == "test"].sort_values("path").reset_index(drop=True)


def load_approaches(runs_dir: str | Path) -> tuple[list[Approach], list[str]]:
    """Every approach whose outputs exist; a line for each missing one naming the notebook to run."""
    found, missing = [], []
    for stem, file, name, how in APPROACHES:
        path = layout.artefact(runs_dir, stem, file)
        scores = runs.read_scores(runs_dir, stem, file)
        if scores is None:
            missing.append(layout.missing_message(name, path, stem))
            continue
        val = scores[scores["split"] == "val"]
        record = runs.read_record(runs_dir, stem)
        labels = (record or {}).get("labels_used") if file == layout.SCORES else \
            (record or {}).get("extra", {}).get("knn_labels_used")
        if file == layout.SCORES and record is not None:
            thr = record["threshold"]
            per_cat = " per category, scores normalised per category" if thr.get("per_category") else ""
            threshold, how_thr = float(thr["value"]), f"{thr['method']} on val{per_cat} (notebook {stem[:2]})"
        elif len(val) and name in PER_CATEGORY:
            scores, _ = M.normalise_per_category(scores, "f1")
            threshold, how_thr = M.NORMALISED_THRESHOLD, "f1 on val per category, scores normalised per category (here)"
        elif len(val):
            threshold, how_thr = M.choose_threshold(val["label"], val["score"], "f1"), "f1 on val (here)"
        else:
            missing.append(f"{name}: {path} has no val rows to choose a threshold on — re-run notebook {stem}.ipynb.")
            continue
        found.append(Approach(name, how, scores, threshold, how_thr, path, labels))
    return found, missing


def check_same_data(runs_dir: str | Path, expected: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The data every scored notebook's metrics.json says it was measured on, checked to be one.

    Raises ``ValueError`` naming each notebook's data and split when two differ (or differ from
    ``expected``, e.g. :meth:`helpers.data.prepare.Prepared.provenance` of this run): runs from different data
    or splits never share a table.
    """
    seen = {stem: rec["data"] for stem in dict.fromkeys(s for s, *_ in APPROACHES)
            if (rec := runs.read_record(runs_dir, stem)) is not None}
    if expected is not None:
        seen = {"this run (notebook 07)": expected, **seen}
    if len({(d["manifest_hash"], d["split_hash"]) for d in seen.values()}) > 1:
        lines = "\n".join(f"  {k}: {d['name']} at {d['root']} (manifest {d['manifest_hash']}, split {d['split_hash']})"
                          for k, d in seen.items())
        raise ValueError("These runs were measured on different data or splits, so they cannot share one table:\n"
                         f"{lines}\nRe-run the notebooks that differ on the same data and split (one RUNS_DIR).")
    return next(iter(seen.values()), None)


def check_same_test_images(approaches: list[Approach]) -> int:
    """Raise if two approaches were scored on different test images; return the number of test images."""
    if not approaches:
        return 0
    ref = set(approaches[0].test["path"])
    for a in approaches[1:]:
        got = set(a.test["path"])
        if got != ref:
            raise ValueError(f"{a.name} was scored on different test images than {approaches[0].name} "
                             f"({len(got ^ ref)} differ): re-run the notebooks on the same split.")
    return len(ref)


def comparison_table(approaches: list[Approach]) -> pd.DataFrame:
    """One row per approach: threshold metrics at its val-chosen threshold, ranking metrics, the threshold."""
    rows = []
    for a in approaches:
        t = a.test
        m = M.binary_metrics(t["label"], t["score"], a.threshold)
        lab = a.labels or {}
        counts = dict(zip(LABEL_COLUMNS, (lab.get("defect_labels_for_training"), lab.get("labels_to_select_good"),
                                          f"{lab['val_labels']} ({lab['val_labels_for']})" if lab else None)))
        rows.append({"approach": a.name, "trained with": a.trained_with, **counts, "n_test": m["n"],
                     **{k: m[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "fpr", "specificity")},
                     "category AUROC (mean)": M.mean_category_auroc(M.per_category_table(t)),
                     "threshold": a.threshold, "threshold chosen": a.threshold_how})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def standard_protocol_row(runs_dir: str | Path) -> pd.DataFrame:
    """PatchCore under the MVTec standard protocol (notebook 06), with the labels it needs — none: fitted on
    ``train/good`` as MVTec's folders give it, judged by AUROC (no threshold). Scored on MVTec's ``test``
    folders, not on the shared test split, so it is shown apart from the main table (empty when not run)."""
    rec = runs.read_record(runs_dir, layout.PATCHCORE)
    std = (rec or {}).get("extra", {}).get("mvtec_standard")
    if not std:
        return pd.DataFrame(columns=["approach", *LABEL_COLUMNS, "category AUROC (mean)", "scored on"])
    lab = std.get("labels_used", {})
    return pd.DataFrame([{"approach": "PatchCore, MVTec standard protocol",
                          **dict(zip(LABEL_COLUMNS, (lab.get("defect_labels_for_training", 0),
                                                     lab.get("labels_to_select_good", 0),
                                                     f"{lab.get('val_labels', 0)} ({lab.get('val_labels_for', 'not used')})"))),
                          "category AUROC (mean)": std.get("image_auroc_mean"),
                          "scored on": "MVTec's test folders (not the shared test split)"}])


def category_auroc(approaches: list[Approach]) -> pd.DataFrame:
    """Approach × category test AUROC (NaN where a category has one class only)."""
    return pd.DataFrame({a.name: M.per_category_table(a.test).set_index("category")["auroc"] for a in approaches}).T


def localisation(runs_dir: str | Path) -> pd.DataFrame:
    """One localisation table for every map: Grad-CAM of each model (notebook 05) and PatchCore's anomaly maps
    (notebook 06), each scored by :func:`helpers.evaluation.localisation.score_maps` — the mean over categories of pixel
    AUROC, AU-PRO (FPR ≤ 0.3) and the pointing game, with the images it was measured on."""
    from ..evaluation.localisation import LOCALISATION_COLUMNS, MEAN_ROW

    parts = []
    for stem in (layout.EXPLAIN, layout.PATCHCORE):
        path = layout.artefact(runs_dir, stem, layout.LOCALISATION)
        if path.exists():
            t = pd.read_csv(path)
            missing = set(LOCALISATION_COLUMNS) - set(t.columns)
            if missing:
                raise ValueError(f"{path} was written by an older version (no {sorted(missing)}): re-run notebook "
                                 f"{stem}.ipynb.")
            parts.append(t[t["category"] == MEAN_ROW].drop(columns="category"))
    cols = [c for c in LOCALISATION_COLUMNS if c != "category"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def to_markdown(table: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub Markdown table (via ``tabulate``, which pandas uses for ``to_markdown``)."""
    return table.to_markdown(index=False, floatfmt=floatfmt)


def export(runs_dir: str | Path, table: pd.DataFrame, heatmap: pd.DataFrame, loc: pd.DataFrame,
           notes: dict[str, Any], standard: pd.DataFrame | None = None) -> Path:
    """``RUNS_DIR/report/``: comparison.csv/.md, category_auroc.csv, localisation.csv, report.json."""
    out = Path(runs_dir) / layout.REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    files.write_csv(table, out / layout.COMPARISON_CSV)
    files.write_csv(heatmap, out / layout.CATEGORY_AUROC, index=True)
    files.write_csv(loc, out / layout.LOCALISATION)
    md = ["# Every approach on the same held-out test images", "",
          f"Test images: {notes.get('n_test')}. Data: {notes.get('data')}. Profile: {notes.get('profile')}.", "",
          to_markdown(table.drop(columns=["trained with"])), "",
          "Thresholds were chosen on `val` only; `test` was never used for training, early stopping or thresholds. "
          "The label columns count what each approach learnt from labels; `category AUROC (mean)` is the mean of "
          "the per-category AUROCs beside the pooled `roc_auc`; PatchCore and kNN use a threshold per category.", ""]
    if standard is not None and len(standard):
        md += ["## The MVTec standard protocol (no labels; MVTec's test folders, not these test images)", "",
               to_markdown(standard), ""]
    if len(loc):
        md += ["## Localisation against the ground-truth masks", "", to_markdown(loc), ""]
    studies = study_rows()
    md += ["## The studies' own figures (not on these test images)", "",
           to_markdown(studies.astype(object).where(studies.notna(), "")), ""]
    files.write_text(out / layout.COMPARISON_MD, "\n".join(md))
    files.write_json(out / layout.REPORT_JSON, notes, default=str)
    return out / layout.COMPARISON_MD


