"""Training curves: a run's history (losses, validation scores) beside its learning-rate schedule, and the Keras log."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["plot_history", "plot_log"]


def plot_history(history: pd.DataFrame, panels: dict[str, list[str]], lrs: np.ndarray | None = None,
                 steps_per_epoch: int = 1, best_epoch: int | None = None, title: str = ""):
    """Training curves, one panel per entry of ``panels`` (title → history columns), plus the LR schedule.

    ``lrs`` is the planned per-batch learning rate (``steps_per_epoch`` batches an epoch; a run that
    stopped early ran only its first part); ``best_epoch`` (1-based)
    is marked with a dotted line — the weights that were kept.
    """
    n = len(panels) + (lrs is not None)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    axes = axes[0]
    for ax, (name, cols) in zip(axes, panels.items()):
        for col in cols:
            if col in history:
                ax.plot(history["epoch"], history[col], marker="o", ms=3, label=col)
        if best_epoch:
            ax.axvline(best_epoch, ls=":", c="grey")
        values = history[[c for c in cols if c in history]].to_numpy(float)
        if "loss" in name and np.nanmin(values) > 0 and np.nanmax(values) / np.nanmin(values) > 30:
            ax.set_yscale("log")  # one exploding epoch would flatten the rest
        if "auc" in name.lower() or "accuracy" in name.lower():
            ax.set_ylim(0, 1.02)  # a fixed scale: noise around chance must not look like learning
        if "auc" in name.lower():
            ax.axhline(0.5, ls="--", c="grey", lw=0.8, label="chance")
        ax.set(title=name, xlabel="epoch")
        ax.legend(fontsize=8)
    if lrs is not None:
        ax = axes[-1]
        ax.plot(np.arange(1, len(lrs) + 1) / steps_per_epoch, lrs)
        ax.axvline(len(history), ls=":", c="grey")
        ax.set(title="learning rate (per batch)", xlabel="epoch", yscale="log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_log(log: pd.DataFrame, title: str = ""):
    """Curves from the CSV log: total and per-head losses, category/defect accuracy, defect AUC (on [0, 1], chance
    marked); ``title`` names the run (which network, which data)."""
    log = log.assign(epoch=log["epoch"] + 1)
    panels = {"loss": ["loss", "val_loss"], "per-head loss": ["category_loss", "val_category_loss",
                                                              "defect_loss", "val_defect_loss"],
              "accuracy": ["category_accuracy", "val_category_accuracy", "defect_accuracy", "val_defect_accuracy"],
              "defect AUC": ["defect_auc", "val_defect_auc"]}
    return plot_history(log, panels, title=title)
