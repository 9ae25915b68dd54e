"""A scored run of a model notebook, and how it is written and read back.

A model notebook ends with :func:`write_scored`, which applies the protocol (the threshold chosen on the ``val``
rows of its scores, metrics on the ``test`` rows), writes ``scores.csv`` and ``metrics.json`` (the one schema of
:mod:`helpers.artefacts.record`) and returns a :class:`ScoredRun` — the one result type of a scored run, whether the
model is PyTorch, Keras or one-class (each workflow returns a subclass with its own typed fields). The report (07)
and the explainability notebook (05) read through :func:`read_record`, :func:`read_scores` and
:func:`test_predictions`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from ..core import files
from ..core.layout import METRICS, SCORES, artefact, notebook_dir
from ..evaluation import intervals as I
from ..evaluation import metrics as M
from . import record as R

__all__ = ["SCORE_COLUMNS", "ScoredRun", "labels_used", "write_scored", "read_record", "read_scores", "test_predictions"]

#: The columns of every ``scores.csv`` (val and test rows), read by the report.
SCORE_COLUMNS = ["path", "category", "label", "split", "score"]

@dataclass
class ScoredRun:
    """One scored run of a model notebook (PyTorch, Keras or one-class alike).

    ``scores`` holds one row per scored image (``path, category, label, split, score`` and any model
    columns such as ``pred_category``), ``val`` rows for the threshold and ``test`` rows for the metrics.
    What a notebook shows besides (its training history, model-specific results) lives in the typed fields of
    the workflow's subclass (e.g. :class:`helpers.workflows.supervised.SupervisedRun`).
    """

    stem: str
    approach: str
    scores: pd.DataFrame
    threshold: float
    threshold_method: str
    test_metrics: dict[str, float]
    per_category: pd.DataFrame
    record: R.MetricsRecord
    out_dir: Path
    model: Any = None
    history: pd.DataFrame | None = None
    #: each test metric's bootstrap 95% interval (:func:`helpers.evaluation.intervals.image_intervals`)
    intervals: dict[str, I.Interval] = field(default_factory=dict)

    def split_scores(self, split: str) -> pd.DataFrame:
        """The rows of one split (``val`` or ``test``), re-indexed from 0."""
        return self.scores[self.scores["split"] == split].reset_index(drop=True)


def labels_used(prepared: Any, defect_labels: int, select_good: bool, val_for: str | None) -> dict[str, Any]:
    """What an approach learnt from labels, counted (``metrics.json``'s ``labels_used``).

    Args:
        defect_labels: good/defective labels of ``train`` images the model was trained on.
        select_good: whether ``train``'s good images were picked by their labels (SimCLR pretraining, a kNN or
            PatchCore bank: ``train`` also holds defective images, which only every label can exclude).
        val_for: what the ``val`` labels chose (early stopping, checkpoint, threshold); None: not used.
    """
    n_train = int((prepared.split["split"] == "train").sum())
    n_val = int((prepared.split["split"] == "val").sum())
    return {"defect_labels_for_training": int(defect_labels), "labels_to_select_good": n_train if select_good else 0,
            "val_labels": n_val if val_for else 0, "val_labels_for": val_for or "not used"}


Run = TypeVar("Run", bound=ScoredRun)


def write_scored(prepared: Any, stem: str, approach: str, scores: pd.DataFrame, *, started: float,
                 labels: dict[str, Any], threshold_method: str = "f1", per_category_threshold: bool = False,
                 extra: dict[str, Any] | None = None,
                 extra_metrics: dict[str, float] | None = None, per_category_extra: pd.DataFrame | None = None,
                 write: bool = True, out_dir: str | os.PathLike | None = None, run_type: type[Run] = ScoredRun,  # type: ignore[assignment]
                 **run_fields: Any) -> Run:
    """The protocol and the outputs of every model notebook, in one place.

    The threshold is chosen on the ``val`` rows of ``scores`` (``threshold_method``), metrics and the
    per-category table come from the ``test`` rows. With ``write`` (False for negative controls) the
    standard columns of ``scores`` go to ``<out_dir>/scores.csv`` and the record to ``metrics.json``.

    Args:
        started: ``time.time()`` at the start of the work (for ``time_taken_s``).
        labels: :func:`labels_used` of the approach.
        per_category_threshold: for per-category models (PatchCore, kNN): a threshold per category on its val
            rows, and scores normalised per category (:func:`helpers.evaluation.metrics.normalise_per_category`) so that
            the pooled metrics compare like with like; ``scores.csv`` then holds the normalised scores and
            ``metrics.json`` each category's threshold and range.
        extra: kept in the record's ``extra`` (recipe, weights, ...).
        extra_metrics: added to the record's ``metrics`` beside the binary ones (e.g. the category task).
        per_category_extra: columns merged into the per-category table on ``category``.
        out_dir: where to write (default ``RUNS_DIR/<stem>/``).
        run_type, run_fields: the class of the returned run (a workflow's subclass of :class:`ScoredRun`) and the
            values of its fields beyond the protocol's (``model``, ``history`` and the subclass's own).
    """
    cfg = prepared.cfg
    detail = None
    if per_category_threshold:
        scores, params = M.normalise_per_category(scores, threshold_method)
        detail = {"per_category": params, "normalised": "(s - t_c) / (max_c - min_c) + 0.5 on each category's val"}
    threshold, test_metrics, per_cat = M.score_on_test(
        scores, threshold_method, threshold=M.NORMALISED_THRESHOLD if per_category_threshold else None)
    test = scores[scores["split"] == "test"]
    spans = I.image_intervals(test, threshold)
    per_cat = per_cat.merge(I.category_intervals(test)[["category", "auroc_low", "auroc_high"]], on="category",
                            how="left")
    if per_category_extra is not None:
        per_cat = per_cat.merge(per_category_extra, on="category", how="left")
    record = R.metrics_record(stem, approach, "shared-split", cfg.profile.name,
                              prepared.split["split"].value_counts().to_dict(), threshold, threshold_method,
                              {**test_metrics, **(extra_metrics or {})}, per_cat, started=started,
                              extra={"builtin_data": prepared.source.builtin, **(extra or {})},
                              data=prepared.provenance(), labels_used=labels, threshold_detail=detail,
                              intervals={k: v.as_list() for k, v in spans.items()})
    out = Path(out_dir) if out_dir is not None else notebook_dir(cfg.runs_dir, stem, create=False)
    if write:
        out.mkdir(parents=True, exist_ok=True)
        files.write_csv(scores[SCORE_COLUMNS], out / SCORES)
        R.write_metrics(record, cfg.runs_dir, path=out / METRICS)
    return run_type(stem, approach, scores, threshold, threshold_method, test_metrics, per_cat, record, out,
                    intervals=spans, **run_fields)


def read_record(runs_dir: str | os.PathLike, stem: str) -> R.MetricsRecord | None:
    """A notebook's validated ``metrics.json`` (None when it has not been written)."""
    path = artefact(runs_dir, stem, METRICS)
    return R.read_metrics(path) if path.exists() else None


def read_scores(runs_dir: str | os.PathLike, stem: str, name: str = SCORES) -> pd.DataFrame | None:
    """A notebook's scores file (None when it has not been written)."""
    path = artefact(runs_dir, stem, name)
    return pd.read_csv(path) if path.exists() else None


def test_predictions(runs_dir: str | os.PathLike, stem: str) -> pd.DataFrame | None:
    """A notebook's test scores with its val-chosen threshold applied (``pred`` column), or None."""
    scores, record = read_scores(runs_dir, stem), read_record(runs_dir, stem)
    if scores is None or record is None:
        return None
    test = scores[scores["split"] == "test"].copy()
    test["pred"] = (test["score"] >= record.threshold.value).astype(int)
    return test
