"""``python -m helpers train KIND``: each model notebook's training as a command, named by the kind it trains.

A kind (:mod:`helpers.models.kinds`) names its workflow module (``workflow``); that module's ``command(prepared,
progress, mirrored, backbone) -> str`` (or the function ``module:function`` names) trains it and returns a summary
line. Nothing here lists kinds.
"""
from __future__ import annotations

import importlib
from typing import Any

from ..models import kinds

__all__ = ["trainable", "train", "summary_line"]


def trainable() -> tuple[str, ...]:
    """The kinds a command can train (those naming a workflow), in notebook order."""
    return tuple(k.name for k in sorted(kinds.KINDS.values(), key=lambda k: k.notebook) if k.workflow)


def train(kind: str, prepared: Any, progress: bool, mirrored: bool = False, backbone: str = "auto") -> str:
    """Run the notebook's training of ``kind``; a summary line. ``mirrored``: MirroredStrategy (Keras); ``backbone``:
    the torch track's ``BACKBONE`` (:func:`helpers.models.backbones.resolve`)."""
    chosen = kinds.get(kind)
    if not chosen.workflow:
        raise ValueError(f"{chosen.title} is not trained by a command: trainable kinds are {', '.join(trainable())}")
    module, _, function = chosen.workflow.partition(":")
    command = getattr(importlib.import_module(f"{__package__}.{module}"), function or "command")
    return str(command(prepared, progress, mirrored, backbone))


def summary_line(run: Any) -> str:
    """One line on a scored run: its test AUROC and F1, and where it was written."""
    return (f"{run.approach}: test AUROC {run.test_metrics['roc_auc']:.3f}, F1 {run.test_metrics['f1']:.3f} "
            f"-> {run.out_dir}")
