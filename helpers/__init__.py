"""Helpers for the MVTec AD defect-detection notebooks.

The notebooks narrate; this package computes. Modules are imported lazily so that a notebook
that only needs pandas does not pay for importing torch or TensorFlow:

- :mod:`helpers.config`      profiles, data and output locations, shared constants
- :mod:`helpers.colab`       Colab: the install that changes no Colab package, Drive as the shared disk
- :mod:`helpers.distributed` torchrun / DistributedDataParallel: ranks, samplers, rank-0 writes
- :mod:`helpers.files`       atomic writes, a usable RUNS_DIR, printable file names
- :mod:`helpers.env`         Colab detection, versions, seeds, devices, framework threads/memory
- :mod:`helpers.runs`        the one owner of run artefacts: notebook folders, ``write_scored``, readers
- :mod:`helpers.download`    MVTec AD download, checksum, safe extraction
- :mod:`helpers.data`        scan + validate an MVTec-layout tree into a manifest and a quarantine
- :mod:`helpers.split`       the shared leakage-free split and the MVTec standard protocol
- :mod:`helpers.synthetic`   the built-in MVTec-layout sample dataset
- :mod:`helpers.cache`       decoded, resized, memory-mapped image cache
- :mod:`helpers.prepare`     notebook 00 as functions; ``load_prepared`` for every later notebook
- :mod:`helpers.torch_data` / :mod:`helpers.tf_data`  loaders and augmentation
- :mod:`helpers.metrics`     metrics on scikit-learn, plots, the metrics.json schema
- :mod:`helpers.viz`         sample grids, mask overlays, explorers, training curves, test-result figures
- :mod:`helpers.recipes`     every published recipe and the one way profiles scale them
- :mod:`helpers.studies`     the studies' and PatchCore's published figures
- :mod:`helpers.train`       the PyTorch training loop and learning-rate schedules
- :mod:`helpers.torch_models` ResNet-50, SimCLR, linear probe, save/load/predict
- :mod:`helpers.pytorch_track` notebooks 01–03 as functions
- :mod:`helpers.keras_track` notebook 04 as functions
- :mod:`helpers.features` / :mod:`helpers.gradcam` / :mod:`helpers.localisation`  t-SNE, Grad-CAM, mask scores
- :mod:`helpers.explain`     notebook 05's artefacts (trained models, masks, outputs)
- :mod:`helpers.patchcore` / :mod:`helpers.sampling`  the PatchCore model, coreset and k-NN
- :mod:`helpers.oneclass`    notebook 06's protocols
- :mod:`helpers.report`      notebook 07: every approach in one table
- :mod:`helpers.deploy`      model cards, ONNX export and parity, ``predict`` on files and folders
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: Every submodule, importable as ``helpers.<name>`` on first use (a test keeps this list complete).
SUBMODULES = (
    "cache", "colab", "config", "data", "deploy", "distributed", "download", "env", "explain", "features", "files",
    "gradcam", "keras_track", "localisation", "metrics", "oneclass", "patchcore", "prepare", "pytorch_track",
    "recipes", "report", "runs", "sampling", "split", "studies", "synthetic", "tf_data", "torch_data",
    "torch_models", "train", "viz",
)

__all__ = ["SUBMODULES", "__version__", *SUBMODULES]


def __getattr__(name: str) -> Any:  # PEP 562: lazy submodules
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
