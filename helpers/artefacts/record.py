"""``metrics.json``: the one record every notebook writes (what was measured, on which data, by which code, on
which device, with which labels) — a typed, versioned record (:class:`MetricsRecord`), validated on every write and
every read, as the model card is. Readers use its fields (``record.threshold.value``, ``record.extra.backbone``);
a renamed field fails the type checker, and a file that does not fit is refused naming the field."""
from __future__ import annotations

import json
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..core import files
from ..core.layout import METRICS
from ..evaluation.metrics import THRESHOLD_METHODS

__all__ = ["SCHEMA_VERSION", "READABLE_VERSIONS", "LabelsUsed", "CategoryNormalisation", "ThresholdRecord",
           "IntervalsRecord", "DataRecord", "StandardProtocol", "Extra", "MetricsRecord", "metrics_record",
           "write_metrics", "read_metrics"]

#: 5: the typed record (the JSON is schema 4's, with ``labels_used`` null instead of ``{}`` where nothing trained).
SCHEMA_VERSION = 5
#: Versions the reader accepts (4 has the same fields).
READABLE_VERSIONS = (4, 5)


class _Record(BaseModel):
    """Frozen, and no field that is not declared: a misspelt or unknown key is refused by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelsUsed(_Record):
    """What an approach learnt from labels, counted (:func:`helpers.artefacts.scored.labels_used`)."""

    defect_labels_for_training: int | None
    labels_to_select_good: int | None
    val_labels: int | None
    val_labels_for: str


class CategoryNormalisation(_Record):
    """One category's threshold and val score range (:func:`helpers.evaluation.metrics.normalise_per_category`);
    only ``note`` when the category had no val image."""

    threshold: float | None = None
    min: float | None = None
    max: float | None = None
    note: str = ""


class ThresholdRecord(_Record):
    """The decision threshold, how it was chosen and on what (per category, with each category's normalisation)."""

    value: float | None
    method: str
    chosen_on: str | None
    per_category: dict[str, CategoryNormalisation] | None = None
    normalised: str | None = None

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in THRESHOLD_METHODS:        # the one list: helpers.evaluation.metrics
            raise ValueError(f"must be one of {THRESHOLD_METHODS}")
        return v


class IntervalsRecord(_Record):
    """How the bootstrap intervals were made, and each metric's ``[low, high]``."""

    method: str
    resamples: int
    level: float
    seed: int
    stratified_by: list[str]
    resampled: str
    values: dict[str, tuple[float | None, float | None]]


class DataRecord(_Record):
    """Which data and split (:meth:`helpers.data.prepare.Prepared.provenance`): two runs compare only when both
    hashes are equal."""

    builtin: bool
    name: str
    root: str
    manifest_hash: str
    split_hash: str
    how_found: str | None = None


class StandardProtocol(_Record):
    """PatchCore under MVTec's standard protocol (notebook 06): per category, the labels it used (none), the means."""

    per_category: list[dict[str, Any]]
    labels_used: LabelsUsed
    image_auroc_mean: float | None
    pixel_auroc_mean: float | None


class Extra(_Record):
    """What a notebook records beyond the shared fields, each field named (None where it does not apply)."""

    builtin_data: bool | None = None
    # the network: its registry key, its weights, how it was chosen (helpers.models.backbones.Choice)
    backbone: str | None = None
    weights: str | None = None
    requested: str | None = None
    study: str | None = None
    note: str | None = None
    backbone_name: str | None = None
    backbone_choice: dict[str, str] | None = None
    encoder: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None
    # training (01, 04)
    best_epoch: int | None = None
    stopped_early: bool | None = None
    epochs_run: int | None = None
    scored_model: str | None = None
    categories: list[str] | None = None
    category_per_class_recall: dict[str, float] | None = None
    category_note: str | None = None
    # the probe and its kNN scores (03)
    n_labelled: int | None = None
    labelled_counts: dict[str, int] | None = None
    knn_auroc: dict[str, float | None] | None = None
    knn_auroc_interval: dict[str, tuple[float | None, float | None]] | None = None
    knn_labels_used: LabelsUsed | None = None
    knn_per_category: dict[str, list[dict[str, Any]]] | None = None
    # PatchCore (06)
    pointing_game_mean: float | None = None
    au_pro_mean: float | None = None
    pixel_auroc_mean: float | None = None
    threshold_note: str | None = None
    not_scored: dict[str, str] | None = None
    mvtec_standard: StandardProtocol | None = None
    # explainability (05)
    silhouette: dict[str, Any] | None = None
    tsne: dict[str, Any] | None = None
    missing_models: list[str] | None = None
    display_px: int | None = None
    # label efficiency (09)
    references: list[dict[str, Any]] | None = None
    summary: list[dict[str, Any]] | None = None
    intervals_note: str | None = None


class MetricsRecord(_Record):
    """One notebook's ``metrics.json`` (:data:`SCHEMA_VERSION`)."""

    schema_version: int
    notebook: str
    approach: str
    protocol: Literal["shared-split", "mvtec-standard"]
    profile: str
    split_sizes: dict[str, int]
    threshold: ThresholdRecord
    labels_used: LabelsUsed | None
    metrics: dict[str, Any]
    intervals: IntervalsRecord
    per_category: list[dict[str, Any]]
    data: DataRecord
    code: dict[str, Any]
    device: dict[str, Any]
    versions: dict[str, Any]
    time_taken_s: float | None
    created: str
    extra: Extra = Extra()

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v not in READABLE_VERSIONS:
            raise ValueError(f"schema {v}, this version reads {READABLE_VERSIONS}: re-run the notebook that wrote it")
        return v

    @field_validator("labels_used", mode="before")
    @classmethod
    def _nothing_trained(cls, v: Any) -> Any:
        return None if v == {} else v        # schema 4 wrote {} for a notebook that trains nothing

    @field_validator("metrics")
    @classmethod
    def _some_metrics(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("metrics must be a non-empty dict")
        return v

    def to_json(self) -> dict[str, Any]:
        """The record as written (JSON types; NaN never appears: it is null)."""
        return self.model_dump(mode="json", exclude_defaults=False)

    def threshold_per_category(self) -> dict[str, CategoryNormalisation]:
        """Each category's threshold and val range (empty for a single-threshold run)."""
        return dict(self.threshold.per_category or {})


def _clean(value: Any) -> Any:
    """JSON-safe: NaN → None, numpy scalars → Python, DataFrames → records."""
    if isinstance(value, pd.DataFrame):
        return [_clean(r) for r in value.to_dict(orient="records")]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _validated(raw: dict[str, Any], where: str) -> MetricsRecord:
    """A :class:`MetricsRecord` from JSON-like data, or a ``ValueError`` naming each field that does not fit."""
    try:
        return MetricsRecord.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(record)'}: {err['msg']}" for err in e.errors()[:5])
        missing = [str(err["loc"][0]) for err in e.errors() if err["type"] == "missing" and len(err["loc"]) == 1]
        hint = (f" (schema {raw.get('schema_version')}, now {SCHEMA_VERSION}): written by an older version — re-run "
                f"notebook {raw.get('notebook')}") if missing else ""
        raise ValueError(f"{where}: not a valid metrics record{hint}. {problems}") from None


def metrics_record(notebook: str, approach: str, protocol: str, profile: str, split_sizes: dict[str, int],
                   threshold: float | None, threshold_method: str, metrics: dict[str, Any],
                   per_category: pd.DataFrame | list | None = None, started: float | None = None,
                   extra: dict[str, Any] | None = None, *, data: dict[str, Any],
                   labels_used: dict[str, Any] | None = None, threshold_detail: dict[str, Any] | None = None,
                   intervals: dict[str, Any] | None = None) -> MetricsRecord:
    """Build a record (:class:`MetricsRecord`) in the one schema every notebook writes; it is validated here.

    Args:
        protocol: ``shared-split`` (the project's split, scored on ``test``) or ``mvtec-standard``.
        threshold_method: ``f1`` / ``youden`` (chosen on val) or ``fixed``.
        started: ``time.time()`` at the start of the work, for ``time_taken_s``.
        extra: :class:`Extra`'s fields (an unknown name is refused).
        data: which data and split (:meth:`helpers.data.prepare.Prepared.provenance`); the code (package version,
            git commit) and the device are added here.
        labels_used: how many labels the approach used, and for what (:class:`LabelsUsed`); None or ``{}`` for a
            notebook that trains nothing.
        threshold_detail: added to ``threshold`` (the per-category thresholds and normalisation).
        intervals: each metric's bootstrap 95% interval, ``{name: (low, high)}``
            (:mod:`helpers.evaluation.intervals`); stored with how they were made. Per-category intervals live in
            ``per_category`` (``<metric>_low`` / ``<metric>_high``).
    """
    from ..core.env import code_version, device_info, versions
    from ..evaluation.intervals import describe_method

    raw = {
        "schema_version": SCHEMA_VERSION, "notebook": notebook, "approach": approach, "protocol": protocol,
        "profile": profile, "split_sizes": dict(split_sizes),
        "threshold": {"value": threshold, "method": threshold_method,
                      "chosen_on": "val" if threshold_method != "fixed" else None, **(threshold_detail or {})},
        "labels_used": dict(labels_used) if labels_used else None,
        "metrics": metrics,
        "intervals": {**describe_method(), "values": {k: list(v) for k, v in (intervals or {}).items()}},
        "per_category": per_category if per_category is not None else [],
        "data": dict(data), "code": code_version(), "device": device_info(), "versions": versions(),
        "time_taken_s": round(time.time() - started, 1) if started else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": extra or {},
    }
    return _validated(_clean(raw), f"metrics record of {notebook}")


def write_metrics(record: MetricsRecord, runs_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Write ``RUNS_DIR/<notebook>/metrics.json`` (or ``path``) from a record :func:`metrics_record` validated (it is
    frozen: nothing changed it since); return its path."""
    data = record.to_json()
    path = Path(path) if path is not None else Path(runs_dir) / data["notebook"] / METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(path, data, allow_nan=False)
    return path


def read_metrics(path: str | os.PathLike) -> MetricsRecord:
    """Read and validate a metrics.json (a ``ValueError`` names the file and each field that does not fit)."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not readable as JSON ({e}); re-run the notebook that writes it") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a metrics record is a JSON object, found {type(raw).__name__}")
    return _validated(raw, str(path))
