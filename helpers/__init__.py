"""Helpers for the MVTec AD defect-detection notebooks.

The notebooks narrate; this package computes. Modules are imported lazily so that a notebook
that only needs pandas does not pay for importing torch or TensorFlow:

- :mod:`helpers.config`    profiles, data and output locations
- :mod:`helpers.env`       Colab detection, versions, seeds, framework threads/memory
- :mod:`helpers.download`  MVTec AD download, checksum, safe extraction
- :mod:`helpers.data`      scan + validate an MVTec-layout tree into a manifest and a quarantine
- :mod:`helpers.split`     the shared leakage-free split and the MVTec standard protocol
- :mod:`helpers.synthetic` the built-in MVTec-layout sample dataset
- :mod:`helpers.cache`     decoded, resized, memory-mapped image cache
- :mod:`helpers.torch_data` / :mod:`helpers.tf_data`  loaders and augmentation
- :mod:`helpers.metrics`   metrics on scikit-learn, plots, the metrics.json schema
- :mod:`helpers.viz`       sample grids, mask overlays, the dataset explorer
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "cache", "config", "data", "download", "env", "metrics", "prepare", "split", "synthetic",
    "tf_data", "torch_data", "torch_models", "train", "viz",
}


def __getattr__(name: str) -> Any:  # PEP 562: lazy submodules
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
