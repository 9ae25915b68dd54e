"""Helpers for the MVTec AD defect-detection notebooks.

The notebooks narrate; this package computes. It is built in layers, each a subpackage with one concern; a
module imports only from its own layer and the layers below it (``tests/test_layers.py`` checks every import,
those inside functions too):

==============  =========================================================================================
``core``        settings and the runtime: profiles, locations, Colab, atomic files, torchrun
``data``        the images: find, fetch, validate, split, generate, cache, and the one preprocessing
``explain``     explanations as arrays: Grad-CAM maps and learned features (of any model it is given)
``models``      what a model is: the registry of model kinds and backbones, each model's network
``training``    how models learn: the PyTorch loop, checkpoints, schedules, the published recipes
``evaluation``  how results are measured: metrics, intervals, localisation against masks, published figures
``viz``         every figure
``artefacts``   what a run leaves on disk: the ``RUNS_DIR`` layout and file names, metrics.json, the model card
``deploy``      models outside the notebooks: ONNX export, one inferencer per backend, predict, checks, serve
``workflows``   one module per notebook: the only code that knows the notebook order
==============  =========================================================================================

Subpackages (and their modules) are imported lazily, so a notebook that only needs pandas does not pay for
importing torch or TensorFlow. ``errors`` holds every error written for a user; ``cli`` is ``python -m helpers``.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.3.0"

#: The layers, lowest first (a module may import from its own layer and those before it).
LAYERS = ("core", "data", "explain", "models", "training", "evaluation", "viz", "artefacts", "deploy", "workflows")
#: Everything importable as ``helpers.<name>`` on first use.
SUBPACKAGES = (*LAYERS, "errors", "cli")

__all__ = ["LAYERS", "SUBPACKAGES", "__version__", *SUBPACKAGES]


def __getattr__(name: str) -> Any:  # PEP 562: lazy subpackages
    if name in SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
