"""Notebook 08 as functions: which notebooks leave a model folder, and which of them are there to deploy."""
from __future__ import annotations

import os
from pathlib import Path

from ..core import layout
from ..models import kinds

__all__ = ["model_folders"]


def model_folders(runs_dir: str | os.PathLike) -> tuple[dict[str, Path], list[str]]:
    """The model folders under ``RUNS_DIR`` that hold a card (``{stem: folder}``; the notebooks of the registry's
    deployable kinds, :func:`helpers.models.kinds.deployable`), and what is missing and why."""
    found, missing = {}, []
    for stem in (k.notebook for k in kinds.deployable()):
        folder = layout.notebook_dir(runs_dir, stem, create=False)
        if (folder / layout.CARD).exists():
            found[stem] = folder
        else:
            missing.append(f"{stem}: no {layout.CARD} — run notebook {stem}.ipynb to the end")
    return found, missing
