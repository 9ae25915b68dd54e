"""``metrics.json``: the one record every notebook writes (what was measured, on which data, by which code, on
which device, with which labels), validated on every write and every read."""
from __future__ import annotations

import json
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import files
from ..core.layout import METRICS
from ..evaluation.metrics import THRESHOLD_METHODS

__all__ = ["SCHEMA_VERSION", "METRICS_KEYS", "LABELS_USED_KEYS", "DATA_KEYS", "metrics_record", "validate_record",
           "write_metrics", "read_metrics"]

SCHEMA_VERSION = 4
METRICS_KEYS = ("schema_version", "notebook", "approach", "protocol", "profile", "split_sizes", "threshold",
                "labels_used", "metrics", "intervals", "per_category", "data", "code", "device", "versions", "time_taken_s",
                "created")

#: What ``labels_used`` says of a trained approach (see :func:`helpers.artefacts.scored.labels_used`).
LABELS_USED_KEYS = ("defect_labels_for_training", "labels_to_select_good", "val_labels", "val_labels_for")

#: What ``data`` must say (see :meth:`helpers.data.prepare.Prepared.provenance`).
DATA_KEYS = ("builtin", "name", "root", "manifest_hash", "split_hash")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN → None, numpy scalars → Python, DataFrames → records."""
    if isinstance(value, pd.DataFrame):
        return [_clean(r) for r in value.to_dict(orient="records")]
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_record(notebook: str, approach: str, protocol: str, profile: str, split_sizes: dict[str, int],
                   threshold: float | None, threshold_method: str, metrics: dict[str, Any],
                   per_category: pd.DataFrame | list | None = None, started: float | None = None,
                   extra: dict[str, Any] | None = None, *, data: dict[str, Any],
                   labels_used: dict[str, Any] | None = None, threshold_detail: dict[str, Any] | None = None,
                   intervals: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build a record in the one schema every notebook writes (see :data:`METRICS_KEYS`).

    Args:
        protocol: ``shared-split`` (the project's split, scored on ``test``) or ``mvtec-standard``.
        threshold_method: ``f1`` / ``youden`` (chosen on val) or ``fixed``.
        started: ``time.time()`` at the start of the work, for ``time_taken_s``.
        data: which data and split (:meth:`helpers.data.prepare.Prepared.provenance`); the code (package version,
            git commit) and the device are added here.
        labels_used: how many labels the approach used, and for what (:data:`LABELS_USED_KEYS`); ``{}`` for a
            notebook that trains nothing.
        threshold_detail: added to ``threshold`` (e.g. the per-category thresholds and normalisation).
        intervals: each metric's bootstrap 95% interval, ``{name: (low, high)}``
            (:mod:`helpers.evaluation.intervals`); stored with how they were made. Per-category intervals live in
            ``per_category`` (``<metric>_low`` / ``<metric>_high``).
    """
    from ..core.env import code_version, device_info, versions
    from ..evaluation.intervals import describe_method

    if threshold_method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold_method must be one of {THRESHOLD_METHODS}")
    record = {
        "schema_version": SCHEMA_VERSION, "notebook": notebook, "approach": approach, "protocol": protocol,
        "profile": profile, "split_sizes": dict(split_sizes),
        "threshold": {"value": threshold, "method": threshold_method,
                      "chosen_on": "val" if threshold_method != "fixed" else None, **(threshold_detail or {})},
        "labels_used": dict(labels_used or {}),
        "metrics": metrics,
        "intervals": {**describe_method(), "values": {k: list(v) for k, v in (intervals or {}).items()}},
        "per_category": per_category if per_category is not None else [],
        "data": dict(data), "code": code_version(), "device": device_info(), "versions": versions(),
        "time_taken_s": round(time.time() - started, 1) if started else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        record["extra"] = extra
    return _clean(record)


def validate_record(record: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming what is missing or malformed in a metrics record."""
    missing = [k for k in METRICS_KEYS if k not in record]
    if missing:
        raise ValueError(f"metrics record lacks {missing} (schema {record.get('schema_version')}, now "
                         f"{SCHEMA_VERSION}): written by an older version — re-run notebook {record.get('notebook')}")
    if record["labels_used"] and (gap := [k for k in LABELS_USED_KEYS if k not in record["labels_used"]]):
        raise ValueError(f"metrics record's labels_used lacks {gap}")
    lacking = [k for k in DATA_KEYS if k not in (record["data"] or {})]
    if lacking:
        raise ValueError(f"metrics record's data lacks {lacking}: nothing could tell which data it was measured on")
    if record["protocol"] not in ("shared-split", "mvtec-standard"):
        raise ValueError(f"unknown protocol {record['protocol']!r}")
    if not isinstance(record["metrics"], dict) or not record["metrics"]:
        raise ValueError("metrics must be a non-empty dict")
    values = (record["intervals"] or {}).get("values")
    if not isinstance(values, dict) or any(not isinstance(v, list) or len(v) != 2 for v in values.values()):
        raise ValueError("intervals must hold values: {metric: [low, high]}")
    if not {"value", "method", "chosen_on"} <= set(record["threshold"]):
        raise ValueError("threshold must have value, method and chosen_on")


def write_metrics(record: dict[str, Any], runs_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Validate and write ``RUNS_DIR/<notebook>/metrics.json`` (or ``path``); return its path."""
    validate_record(record)
    path = Path(path) if path is not None else Path(runs_dir) / record["notebook"] / METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(path, record, allow_nan=False)
    return path


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a metrics.json."""
    record = json.loads(Path(path).read_text())
    validate_record(record)
    return record
