"""Notebook 08 as functions: which notebooks leave a model folder, and which of them are there to deploy."""
from __future__ import annotations

import os
from pathlib import Path

from ..core import layout

__all__ = ["MODEL_NOTEBOOKS", "model_folders"]

#: The notebooks whose folder is a model folder (a model and its card), in order.
MODEL_NOTEBOOKS = (layout.SUPERVISED, layout.PROBE, layout.KERAS, layout.PATCHCORE)


def model_folders(runs_dir: str | os.PathLike) -> tuple[dict[str, Path], list[str]]:
    """The model folders under ``RUNS_DIR`` that hold a card (``{stem: folder}``), and what is missing and why."""
    found, missing = {}, []
    for stem in MODEL_NOTEBOOKS:
        folder = layout.notebook_dir(runs_dir, stem, create=False)
        if (folder / layout.CARD).exists():
            found[stem] = folder
        else:
            missing.append(f"{stem}: no {layout.CARD} — run notebook {stem}.ipynb to the end")
    return found, missing
