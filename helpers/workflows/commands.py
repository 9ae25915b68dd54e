"""``python -m helpers train KIND``: each model notebook's training as a command, named by the kind it trains."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..models import kinds

__all__ = ["TRAINABLE", "train"]


def _supervised(prepared: Any, progress: bool, mirrored: bool, backbone: str) -> str:
    from . import supervised

    return _summary(supervised.run(prepared, backbone=backbone, progress=progress))


def _simclr(prepared: Any, progress: bool, mirrored: bool, backbone: str) -> str:
    from . import simclr

    sim = simclr.run(prepared, backbone=backbone, progress=progress)
    return f"SimCLR: last val loss {sim.fit.history['val_loss'].iloc[-1]:.4f}; encoder -> {sim.out_dir}"


def _probe(prepared: Any, progress: bool, mirrored: bool, backbone: str) -> str:
    from . import probe, simclr

    encoder, meta = simclr.load_encoder(prepared.cfg.runs_dir)    # notebook 02's encoder
    return _summary(probe.run(prepared, encoder, progress=progress,
                              encoder_info={"weights": meta.get("weights"), "simclr_recipe": meta.get("recipe")}))


def _multitask(prepared: Any, progress: bool, mirrored: bool, backbone: str) -> str:
    from ..training.keras_fit import mirrored_strategy
    from . import multitask

    return _summary(multitask.run(prepared, verbose=2 if progress else 0,
                                  strategy=mirrored_strategy() if mirrored else None))


def _summary(run: Any) -> str:
    return (f"{run.approach}: test AUROC {run.test_metrics['roc_auc']:.3f}, F1 {run.test_metrics['f1']:.3f} "
            f"-> {run.out_dir}")


#: The kinds a model notebook trains, and how (the probe needs notebook 02's encoder).
_TRAINERS: dict[str, Callable[[Any, bool, bool, str], str]] = {
    kinds.SUPERVISED.name: _supervised, kinds.SIMCLR.name: _simclr, kinds.PROBE.name: _probe,
    kinds.MULTITASK.name: _multitask}
TRAINABLE = tuple(_TRAINERS)


def train(kind: str, prepared: Any, progress: bool, mirrored: bool = False, backbone: str = "auto") -> str:
    """Run the notebook's training of ``kind``; a summary line. ``mirrored``: MirroredStrategy (Keras); ``backbone``:
    the torch track's ``BACKBONE`` (:func:`helpers.models.backbones.resolve`)."""
    return _TRAINERS[kinds.get(kind).name](prepared, progress, mirrored, backbone)
