"""Figures: training curves and the explorer's headless fallback."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from helpers.data.scan import scan_mvtec
from helpers.viz import data as viz
from helpers.viz import training, widgets


def test_plot_history_draws_each_panel_and_schedule():
    h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.6, 0.5], "val_loss": [1.1, 0.7, 0.8]})
    fig = training.plot_history(h, {"loss": ["train_loss", "val_loss", "missing_col"]}, lrs=np.linspace(1, 0.1, 30),
                           steps_per_epoch=10, best_epoch=2)
    assert len(fig.axes) == 2
    labels = [line.get_label() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert labels == ["train_loss", "val_loss"]
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_xdata()[[0, -1]], [0.1, 3.0])


def test_explorer_is_static_when_headless(synthetic_root, monkeypatch, capsys):
    monkeypatch.setenv(widgets.HEADLESS_ENV, "1")
    assert widgets.widgets_wanted() is False
    assert viz.explorer(scan_mvtec(synthetic_root, progress=False).manifest, synthetic_root) is None
    assert "static figures" in capsys.readouterr().out
    monkeypatch.setenv(widgets.HEADLESS_ENV, "0")
    assert widgets.widgets_wanted() is True
