"""Grad-CAM for both frameworks, and overlays of any heatmap on its images.

:func:`torch_gradcam` uses the ``grad-cam`` package (``pytorch_grad_cam.GradCAM``) on a target layer,
target = the defective class; :func:`keras_gradcam` is the tf.GradientTape recipe on the defect head
w.r.t. the last Conv2D. Both return maps of the input's size in [0, 1].
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.env import load_torch_before_tensorflow

__all__ = ["torch_gradcam", "keras_gradcam", "resize_maps", "plot_overlays", "cam_explorer"]


@contextlib.contextmanager
def _gradients_on(model: nn.Module):
    """Temporarily let every parameter require grad (frozen layers give Grad-CAM no gradient otherwise)."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(True)
        yield
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def torch_gradcam(model: nn.Module, images: torch.Tensor, target_layer: nn.Module, target_class: int = 1,
                  batch_size: int = 16) -> np.ndarray:
    """Grad-CAM maps (N×H×W in [0, 1], the input's size) from the ``grad-cam`` package.

    ``images``: a normalised N×3×H×W tensor; the target is the ``target_class`` logit (1 = defective).
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    device = next(model.parameters()).device
    maps = []
    with _gradients_on(model), GradCAM(model=model, target_layers=[target_layer]) as cam:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            maps.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(target_class)] * len(x)))
    out = np.concatenate(maps).astype(np.float32)
    return _unit_range(out)


def keras_gradcam(model, images: np.ndarray, conv_layer: str = "last_conv", head: str = "defect") -> np.ndarray:
    """Grad-CAM of a multi-output Keras model: gradient of the ``head`` output w.r.t. ``conv_layer``.

    ``images``: N×H×W×3 in [0, 1]. Channel weights are the spatially averaged gradients; the map is
    ReLU(Σ weights · activations), upsampled to the input size and scaled to [0, 1] per image.
    """
    load_torch_before_tensorflow()
    import keras
    import tensorflow as tf

    grad_model = keras.Model(model.inputs, [model.get_layer(conv_layer).output, model.get_layer(head).output])
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        conv, out = grad_model(x, training=False)
        target = tf.reduce_sum(out[:, 0]) if out.shape[-1] == 1 else tf.reduce_sum(out[:, 1])
    grads = tape.gradient(target, conv)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))[..., None]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()
    return _unit_range(cam.astype(np.float32))


def _unit_range(maps: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] (a constant map becomes all zeros)."""
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of N×h×w maps to ``size`` (H, W) — CAMs to the mask's resolution."""
    import cv2

    return np.stack([cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for m in maps])


def plot_overlays(images: Sequence[np.ndarray], maps: dict[str, np.ndarray], masks: Sequence[np.ndarray | None],
                  titles: Sequence[str], max_images: int = 6):
    """Rows: images; columns: the image, then one heatmap overlay per model; mask contours in white."""
    import matplotlib.pyplot as plt

    n = min(len(images), max_images)
    cols = 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(2.4 * cols, 2.4 * n), squeeze=False)
    for i in range(n):
        img = images[i]
        axes[i, 0].imshow(img)
        axes[i, 0].set_ylabel(titles[i], fontsize=7)
        for j, (name, m) in enumerate(maps.items(), start=1):
            axes[i, j].imshow(img)
            axes[i, j].imshow(m[i], cmap="jet", alpha=0.45, vmin=0, vmax=1,
                              extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
        for j in range(cols):
            if masks[i] is not None and np.asarray(masks[i]).any():
                mk = masks[i] if masks[i].shape == img.shape[:2] else \
                    resize_maps(masks[i][None].astype(np.float32), img.shape[:2])[0] > 0.5
                axes[i, j].contour(mk, levels=[0.5], colors="white", linewidths=1.0)
            axes[i, j].set_xticks([]); axes[i, j].set_yticks([])
    axes[0, 0].set_title("image", fontsize=9)
    fig.tight_layout()
    return fig


def cam_explorer(frame: pd.DataFrame, images: np.ndarray, cams: dict[str, np.ndarray], masks: Sequence[np.ndarray],
                 per_page: int = 6):
    """Dropdowns (category, good/defective) over :func:`plot_overlays`; static grid when headless."""
    import matplotlib.pyplot as plt

    from ..viz.data import widgets_wanted

    frame = frame.reset_index(drop=True)

    def draw(category: str, which: str) -> None:
        sel = frame.index[(frame["category"] == category) & (frame["label"] == (1 if which == "defective" else 0))]
        if len(sel) == 0:
            print(f"no {which} test images of {category}")
            return
        sel = sel[:per_page]
        plot_overlays(images[sel], {k: v[sel] for k, v in cams.items()}, [masks[i] for i in sel],
                      [f"{frame.at[i, 'category']}/{frame.at[i, 'defect_type']}" for i in sel])
        plt.show()

    cats = sorted(frame["category"].unique())
    if not widgets_wanted():
        first = frame.sort_values("label", ascending=False).groupby("category").head(1).index[:per_page]
        plot_overlays(images[first], {k: v[first] for k, v in cams.items()}, [masks[i] for i in first],
                      [f"{frame.at[i, 'category']}/{frame.at[i, 'defect_type']}" for i in first])
        plt.show()
        return None
    import ipywidgets as widgets

    return widgets.interact(draw, category=widgets.Dropdown(options=cats),
                            which=widgets.ToggleButtons(options=["defective", "good"]))
