"""The one PyTorch training loop of notebooks 01–03: fit, evaluate, early-stop, checkpoint, resume.

:func:`fit` runs epochs of ``train_step`` over a loader, evaluates with ``evaluate`` after each, keeps
the best weights by a monitored value, stops after ``patience`` epochs without improvement, and writes a
checkpoint every epoch (model, optimiser, scheduler, early-stopping state, RNG states, epoch, history).
When that checkpoint exists it resumes from the next epoch — Colab sessions disconnect.

Determinism: at the start of epoch ``e`` every random source (Python, NumPy, torch, the loader's
shuffling generator and the Albumentations pipeline) is re-seeded from ``seed + e``. An epoch's data
order, augmentation and dropout therefore depend only on (seed, epoch), so a resumed run repeats the
uninterrupted one exactly on CPU.
"""
from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core import distributed, files
from ..core.files import safe_load
from ..errors import NonFiniteLossError, OutOfMemoryError
from ..models.classifiers import defect_probability

__all__ = ["FitResult", "Stepping", "Stopping", "Resuming", "reseed", "save_checkpoint", "fit", "fingerprint",
           "state_hash", "predict_scores", "embed"]

StepFn = Callable[[nn.Module, dict], torch.Tensor]
EvalFn = Callable[[nn.Module], dict[str, float]]


@dataclass(frozen=True)
class Stepping:
    """How each optimiser step runs: the learning-rate ``scheduler`` and when it steps (``"batch"``, e.g. OneCycleLR,
    or ``"epoch"``), the largest global gradient norm (``clip_grad``; None: no clipping), a cap on batches per epoch
    (``max_batches``: the profiles), and ``mixed_precision``: the forward pass under float16 autocast with a dynamic
    loss scale (``torch.amp.GradScaler``; gradients unscaled before clipping) — the workflows ask for it on a CUDA GPU
    only (:func:`mixed_precision_on`)."""

    scheduler: Any = None
    scheduler_step: str = "batch"
    clip_grad: float | None = 1.0
    max_batches: int | None = None
    mixed_precision: bool = False

    def __post_init__(self) -> None:
        if self.scheduler_step not in ("batch", "epoch"):
            raise ValueError("scheduler_step must be 'batch' or 'epoch'")


@dataclass(frozen=True)
class Stopping:
    """Which epoch's weights are kept and when training stops: the value ``monitor`` picks the best epoch (``mode``
    ``"min"`` or ``"max"``); stop after ``patience`` epochs without improvement (None: never); ``restore_best``: end
    with the best epoch's weights (False: the last epoch's)."""

    monitor: str = "val_loss"
    mode: str = "min"
    patience: int | None = None
    restore_best: bool = True


@dataclass(frozen=True)
class Resuming:
    """Where the run is checkpointed every epoch and resumed from when present (None: nowhere), and a hash of the
    recipe and split stored with it: a checkpoint made with another is not resumed (training starts afresh)."""

    checkpoint: str | os.PathLike | None = None
    fingerprint: str | None = None


def mixed_precision_on(device: torch.device, wanted: bool) -> bool:
    """Whether a recipe that wants mixed precision gets it on ``device``: on a CUDA GPU only (float16 tensor cores;
    a CPU runs float16 slowly, so it trains in float32 as before)."""
    return bool(wanted) and device.type == "cuda"


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch history, the epoch whose weights were kept, how it ended."""

    history: pd.DataFrame
    best_epoch: int
    best_value: float
    stopped_early: bool
    resumed_from: int | None


def reseed(seed: int, loader: torch.utils.data.DataLoader | None = None, epoch: int | None = None) -> None:
    """Seed Python, NumPy, torch, the loader's shuffling and its dataset's Albumentations pipeline (and, under
    ``torchrun``, tell the loader's DistributedSampler which ``epoch`` it is)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if loader is None:
        return
    sampler: Any = getattr(loader, "sampler", None)
    if epoch is not None and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    if getattr(loader, "generator", None) is not None:
        loader.generator.manual_seed(seed)
    transform: Any = getattr(loader.dataset, "transform", None)
    transform = getattr(transform, "transform", transform)  # TwoViews wraps a Compose
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def _rng_state() -> dict[str, Any]:
    """The RNG states, kept in the checkpoint for inspection (resuming reseeds from seed + epoch instead).

    Plain tuples and tensors only, so that the checkpoint loads with ``weights_only=True``.
    """
    numpy_state: Any = np.random.get_state()
    return {"python": random.getstate(), "numpy": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "torch": torch.get_rng_state()}


def save_checkpoint(path: Path, **state: Any) -> None:
    """Write a checkpoint atomically (a kill during the write leaves the previous one intact). Under ``torchrun``
    rank 0 writes and every process waits for it, so all resume from the same file."""
    if distributed.is_main():
        with files.atomic_path(path) as tmp:
            torch.save(state, tmp)
    distributed.barrier()


def _non_finite_advice(ckpt: Path | None, st: _LoopState) -> str:
    if st.resumed_from is not None:
        return (f"The run resumed from checkpoint {ckpt} (epoch {st.resumed_from + 1}), which may be damaged: move it "
                "aside and run again to start afresh. If it happens again, lower the learning rate.")
    return ("Lower the learning rate (or check the inputs for NaN); the last good state is "
            + (f"in checkpoint {ckpt}." if ckpt is not None and ckpt.exists() else "not saved (no checkpoint yet)."))


@dataclass
class _LoopState:
    """Where a training run stands: what a checkpoint holds besides the model, optimiser and scheduler."""

    history: list[dict]
    start: int
    best_value: float
    best_epoch: int
    best_state: dict | None
    bad: int
    resumed_from: int | None = None
    fingerprint: str | None = None


def _resume(ckpt: Path | None, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, mode: str,
            progress: bool, fingerprint: str | None = None) -> _LoopState:
    """A fresh state, or the one stored in ``ckpt`` (model, optimiser and scheduler restored in place).

    A checkpoint whose ``fingerprint`` (a hash of recipe and split) differs from this run's is not resumed:
    training starts afresh, says so, and replaces it after the first epoch."""
    fresh = _LoopState([], 0, math.inf if mode == "min" else -math.inf, -1, None, 0)
    if ckpt is None or not ckpt.exists():
        return fresh
    remedy = "Move it aside (or delete it) and run again: training starts afresh."
    state = safe_load(ckpt, "checkpoint", remedy)
    if fingerprint is not None and state.get("fingerprint") != fingerprint:
        print(f"Checkpoint {ckpt} was made with another recipe or split (fingerprint {state.get('fingerprint')}, "
              f"this run {fingerprint}): training starts afresh and replaces it after the first epoch.")
        return fresh
    bad = [name for name, t in state["model"].items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"Checkpoint {ckpt} is damaged: {len(bad)} weight tensors hold NaN or infinite values "
                         f"(e.g. {', '.join(bad[:3])}). {remedy}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if progress:
        print(f"Resuming from checkpoint {ckpt} after epoch {state['epoch'] + 1}.")
    return _LoopState(state["history"], state["epoch"] + 1, state["best_value"], state["best_epoch"],
                      state["best_state"], state["bad_epochs"], resumed_from=state["epoch"])


def _finished_before(st: _LoopState, ckpt: Path | None, epochs: int, patience: int | None, progress: bool) -> bool:
    """Whether the resumed run had stopped early (said, with the reuse of a finished run)."""
    stopped = bool(st.history) and patience is not None and st.bad >= patience
    if progress and st.history and (stopped or st.start >= epochs):
        print(f"Training had already finished ({len(st.history)} epochs in {ckpt}): reusing it. Move the checkpoint "
              "aside to train again.")
    return stopped


def _record(st: _LoopState, row: dict, model: nn.Module, epoch: int, value: float, improved: bool) -> None:
    """Add an epoch to the history; keep the model's weights when the monitored ``value`` improved."""
    st.history.append(row)
    if improved:
        st.best_value, st.best_epoch, st.bad = value, epoch, 0
        st.best_state = copy.deepcopy(model.state_dict())
    else:
        st.bad += 1


def _checkpoint(ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, epoch: int,
                st: _LoopState) -> None:
    """Everything :func:`_resume` needs to continue after ``epoch``."""
    save_checkpoint(ckpt, model=model.state_dict(), optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict() if scheduler is not None else None,
                    epoch=epoch, history=st.history, best_value=st.best_value, best_epoch=st.best_epoch,
                    best_state=st.best_state, bad_epochs=st.bad, rng=_rng_state(), fingerprint=st.fingerprint)


def _step_and_backward(model: nn.Module, batch: dict, train_step: StepFn, b: int, desc: str,
                       scaler: torch.amp.GradScaler, device: torch.device) -> torch.Tensor:
    with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
        loss = train_step(model, batch)
    if not torch.isfinite(loss.detach()).all():
        raise NonFiniteLossError(f"The training loss is {float(loss.detach())} at batch {b + 1} of {desc}: training "
                                 "stopped instead of going on with weights that can only get worse.")
    scaler.scale(loss).backward()
    return loss


def _oom_message(batch: dict, b: int, desc: str, device: torch.device) -> str:
    """What to change when a batch does not fit on the GPU (the recipe's batch is never shrunk silently)."""
    images = next((v for v in batch.values() if torch.is_tensor(v) and v.dim() == 4), None)
    shape = "×".join(map(str, images.shape)) if images is not None else "?"
    peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if device.type == "cuda" else "?"
    return (f"Out of GPU memory at batch {b + 1} of {desc} (a batch of {shape} per process; peak {peak} allocated). "
            "The recipe's batch is not shrunk silently. What to change: a GPU with more memory (Colab: Runtime > "
            "Change runtime type), PROFILE = 'quick' (smaller images), several GPUs with torchrun (each takes a share "
            "of the batch: `torchrun --nproc_per_node N -m helpers train ...`), or close what else holds GPU memory "
            "(another notebook: Runtime > Disconnect and delete runtime).")


#: Epochs with fewer batches than this show no batch progress bar (the epoch lines still show progress).
MIN_BATCHES_FOR_BAR = 10


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader, train_step: StepFn, stepping: Stepping,
                 scaler: torch.amp.GradScaler, n_batches: int, desc: str, progress: bool) -> list[float]:
    """One pass of ``train_step`` over at most ``n_batches`` batches; the batch losses."""
    model.train()
    device = next(model.parameters()).device
    losses: list[float] = []
    # an epoch of a few batches (the probe's head: hundreds of one-batch epochs) gets no bar of its own: in a notebook
    # each bar is a widget, and hundreds of them overflow the kernel's output channel (nbval then waits in vain)
    quiet = not progress or n_batches < MIN_BATCHES_FOR_BAR or not distributed.is_main()
    bar = tqdm(loader, total=n_batches, desc=desc, disable=quiet, leave=False)
    for b, batch in enumerate(bar):
        if b >= n_batches:
            break
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        optimizer.zero_grad(set_to_none=True)
        try:
            loss = _step_and_backward(model, batch, train_step, b, desc, scaler, device)
        except torch.cuda.OutOfMemoryError as err:
            raise OutOfMemoryError(_oom_message(batch, b, desc, device)) from err
        if stepping.clip_grad is not None:
            scaler.unscale_(optimizer)                  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), stepping.clip_grad)
        scaler.step(optimizer)                          # skipped when a scaled gradient overflowed (mixed precision)
        scaler.update()
        if stepping.scheduler is not None and stepping.scheduler_step == "batch":
            stepping.scheduler.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return [distributed.mean_over_ranks(v) for v in losses]   # under torchrun: the global batch's losses


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, train_loader, train_step: StepFn,
        evaluate: EvalFn, epochs: int, *, stepping: Stepping = Stepping(), stopping: Stopping = Stopping(),
        resuming: Resuming = Resuming(), seed: int = 42, progress: bool = True, stop_after: int | None = None
        ) -> FitResult:
    """Train ``model`` and return its history; the model ends with the best weights seen.

    Args:
        train_step: ``(model, batch) -> loss`` for one batch (the model is in train mode).
        evaluate: ``model -> {"val_loss": ..., ...}`` after each epoch (the model is in eval mode).
        stepping, stopping, resuming: how each step runs (:class:`Stepping`), which epoch is kept and when training
            stops (:class:`Stopping`), where it is checkpointed and resumed from (:class:`Resuming`). A NaN or
            infinite loss raises :class:`NonFiniteLossError`.
        seed, stop_after: epoch ``e`` re-seeds every random source from ``seed + e``; end the call after this many
            epochs (tests).
    """
    scheduler, scheduler_step = stepping.scheduler, stepping.scheduler_step
    monitor, mode, patience = stopping.monitor, stopping.mode, stopping.patience
    checkpoint, fingerprint = resuming.checkpoint, resuming.fingerprint
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    ckpt = Path(checkpoint) if checkpoint else None
    progress = progress and distributed.is_main()
    st = _resume(ckpt, model, optimizer, scheduler, mode, progress, fingerprint)
    st.fingerprint = fingerprint
    stopped = _finished_before(st, ckpt, epochs, patience, progress)
    net = distributed.wrap(model)        # DDP under torchrun; the model itself otherwise
    n_batches = len(train_loader) if stepping.max_batches is None else min(stepping.max_batches, len(train_loader))
    scaler = torch.amp.GradScaler(next(model.parameters()).device.type, enabled=stepping.mixed_precision)
    for epochs_run, epoch in enumerate(range(st.start, epochs)):
        if stopped or (stop_after is not None and epochs_run >= stop_after):
            break
        reseed(seed + epoch, train_loader, epoch)
        t0 = time.time()
        try:
            losses = _train_epoch(net, optimizer, train_loader, train_step, stepping, scaler, n_batches,
                                  f"epoch {epoch + 1}/{epochs}", progress)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(f"{err} {_non_finite_advice(ckpt, st)}") from None
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step()
        net.eval()
        with torch.no_grad():
            scores = evaluate(net)
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else math.nan, "lr": lr,
               **{k: float(v) for k, v in scores.items()}, "seconds": round(time.time() - t0, 2)}
        _record(st, row, model, epoch, row[monitor], better(row[monitor], st.best_value))
        stopped = patience is not None and st.bad >= patience
        if progress and (epoch + 1) % max(1, epochs // 30) == 0 or progress and (stopped or epoch + 1 == epochs):
            shown = ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds", "lr"))
            print(f"epoch {epoch + 1}/{epochs}: {shown} ({row['seconds']:.0f}s)" + (" — early stop" if stopped else ""))
        if ckpt is not None:
            _checkpoint(ckpt, model, optimizer, scheduler, epoch, st)
    if stopping.restore_best and st.best_state is not None:
        model.load_state_dict(st.best_state)
    return FitResult(history=pd.DataFrame(st.history), best_epoch=st.best_epoch + 1, best_value=st.best_value,
                     stopped_early=stopped, resumed_from=st.resumed_from)


def state_hash(model: nn.Module) -> str:
    """A short sha256 of a model's weights and buffers (e.g. to tie a probe's checkpoint to its encoder)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def predict_scores(model: nn.Module, loader, forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Defect probabilities (softmax of class 1) and labels for every item of ``loader``, in order."""
    model.eval()
    device = next(model.parameters()).device
    probs, labels = [], []
    for batch in loader:
        x = batch["image"].to(device)
        logits = forward(model, x) if forward else model(x)
        probs.append(defect_probability(logits).cpu().numpy())
        labels.append(batch["label"].numpy())
    return np.concatenate(probs), np.concatenate(labels)


@torch.no_grad()
def embed(encoder: nn.Module, loader) -> tuple[np.ndarray, np.ndarray]:
    """Encoder outputs (e.g. pooled 2048-d ResNet features) and labels for every item of ``loader``."""
    encoder.eval()
    device = next(encoder.parameters()).device
    feats, labels = [], []
    for batch in loader:
        feats.append(encoder(batch["image"].to(device)).float().cpu().numpy())
        labels.append(batch["label"].numpy())
    return np.concatenate(feats), np.concatenate(labels)


def fingerprint(prepared: Any, **what: Any) -> str:
    """A short hash of what a training run depends on: the data and split (manifest and split hashes) and ``what``
    (the recipe, the starting weights, ...). A checkpoint made with another fingerprint is not resumed."""
    import hashlib
    import json

    prov = prepared.provenance()
    payload = {"manifest": prov["manifest_hash"], "split": prov["split_hash"], **what}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
