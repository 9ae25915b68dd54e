"""Learning-rate schedules (stepped every batch by :func:`helpers.training.loop.fit`), and the plan of one for plots."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["onecycle", "warmup_cosine", "planned_lrs"]


def onecycle(optimizer: torch.optim.Optimizer, max_lr: float, epochs: int, steps_per_epoch: int
             ) -> torch.optim.lr_scheduler.OneCycleLR:
    """torch's OneCycleLR with PyTorch's defaults (warm-up 30%, cosine, div_factor 25)."""
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to 0 (stepped per batch)."""
    warm = max(1, round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def planned_lrs(make_scheduler: Callable[[torch.optim.Optimizer], Any], lr: float, steps: int) -> np.ndarray:
    """The learning rate of every batch that ``make_scheduler(optimizer)`` would give over ``steps`` batches."""
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.asarray(lrs)
