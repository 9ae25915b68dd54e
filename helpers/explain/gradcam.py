"""Class-activation maps (Grad-CAM and HiResCAM) for both frameworks, computed apart from drawing them
(:mod:`helpers.viz.maps` draws).

:func:`torch_gradcam` uses the ``grad-cam`` package (``GradCAM`` / ``HiResCAM``) on target layers, target = the
log-odds of "defective" (:class:`LogOdds`), averaged over an image's mirror views (:class:`CamSetting`);
:func:`keras_gradcam` is the tf.GradientTape recipe on the defect head w.r.t. a convolution. Both return maps of the
input's size in [0, 1].
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.env import load_torch_before_tensorflow

__all__ = ["METHODS", "DEFAULT_METHOD", "VIEWS", "DEFAULT_VIEWS", "TARGETS", "DEFAULT_TARGET", "CamSetting", "LogOdds",
           "torch_gradcam", "keras_gradcam", "resize_maps"]


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


#: The class-activation methods: ``gradcam`` (Selvaraju et al. 2017: each channel weighted by its spatially averaged
#: gradient — the studies') and ``hirescam`` (Draelos & Carin 2020: activations times gradients element by element,
#: then summed over channels — the maps of a model that ends in pooling + a linear layer, without the averaging that
#: blurs them). The series' default is HiResCAM (our choice: docs/benchmarks.md measures both on the masks).
METHODS = ("gradcam", "hirescam")
DEFAULT_METHOD = "hirescam"


#: The views of an image whose maps :func:`torch_gradcam` can average: the image itself and its horizontal and vertical
#: mirror images (each map mirrored back). Averaging them is test-time augmentation, as the ``grad-cam`` package's
#: ``aug_smooth`` does with flips and scalings: the noise of one view averages out, the defect — in the same place in
#: every view once mirrored back — stays. The series' default is all three (our choice: on the built-in data's
#: defective train and val images it raised the pointing game of both torch classifiers; docs/benchmarks.md).
VIEWS = ("identity", "hflip", "vflip")
DEFAULT_VIEWS = VIEWS
#: What a torch map explains: ``log_odds`` (:class:`LogOdds`, the series' default: the score's own ranking) or
#: ``logit`` (the defective logit alone, as the ``grad-cam`` package's ``ClassifierOutputTarget`` — the studies').
TARGETS = ("log_odds", "logit")
DEFAULT_TARGET = "log_odds"


@dataclass(frozen=True)
class CamSetting:
    """How class-activation maps are taken: ``method`` (:data:`METHODS`), ``stages`` (backbone stages; None: the
    backbone's registry entry's ``gradcam_stages``), ``target`` (:data:`TARGETS`) and ``views`` (:data:`VIEWS`,
    averaged). The default is the series' setting; a Keras model's maps use ``method`` and ``views`` (its network's own
    layers)."""

    method: str = DEFAULT_METHOD
    stages: tuple[str, ...] | None = None
    target: str = DEFAULT_TARGET
    views: tuple[str, ...] = DEFAULT_VIEWS


class LogOdds:
    """A class-activation target: the log-odds of class ``category`` under the model's softmax, ``logit[c] −
    logsumexp(other logits)`` (two classes: ``logit[1] − logit[0]``). The series scores images by that softmax, so
    this is what its score ranks by; a single logit alone also carries what both classes share. A one-output model
    (a sigmoid head) gives its logit."""

    def __init__(self, category: int = 1):
        self.category = int(category)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        c = self.category
        if output.shape[-1] == 1:
            return output[..., 0]
        others = torch.cat([output[..., :c], output[..., c + 1:]], dim=-1)
        return output[..., c] - torch.logsumexp(others, dim=-1)


def _check_views(views: Sequence[str]) -> None:
    """Refuse an empty or unknown list of views, naming the known ones."""
    if not views or set(views) - set(VIEWS):
        raise ValueError(f"views {list(views)!r}: expected one or more of {VIEWS}")


def _view(x: torch.Tensor, view: str) -> torch.Tensor:
    """``x`` (…×H×W) as seen in ``view`` (a mirror is its own inverse: the same call maps a map back)."""
    if view == "identity":
        return x
    return torch.flip(x, dims=[-1] if view == "hflip" else [-2])


def torch_gradcam(model: nn.Module, images: torch.Tensor, target_layers: nn.Module | Sequence[nn.Module],
                  target_class: int = 1, batch_size: int = 16, method: str = DEFAULT_METHOD,
                  views: Sequence[str] = DEFAULT_VIEWS, target: str = DEFAULT_TARGET) -> np.ndarray:
    """Class-activation maps (N×H×W in [0, 1], the input's size) from the ``grad-cam`` package: ``method`` (one of
    :data:`METHODS`) toward ``target_class`` (1 = defective) — its log-odds (:class:`LogOdds`) or, with ``target=
    "logit"``, its logit alone — at each target layer, averaged over the layers (each scaled to [0, 1] first) and
    over ``views`` (:data:`VIEWS`, each mapped back).

    ``images``: a normalised N×3×H×W tensor.
    """
    from pytorch_grad_cam import GradCAM, HiResCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if method not in METHODS:
        raise ValueError(f"method {method!r}: expected one of {METHODS}")
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: expected one of {TARGETS}")
    aim = ClassifierOutputTarget(target_class) if target == "logit" else LogOdds(target_class)
    _check_views(views)
    layers = [target_layers] if isinstance(target_layers, nn.Module) else list(target_layers)
    cls = GradCAM if method == "gradcam" else HiResCAM
    model.eval()
    device = next(model.parameters()).device
    maps = []
    with _gradients_on(model), cls(model=model, target_layers=layers) as cam:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            seen = [_view(torch.from_numpy(cam(input_tensor=_view(x, v), targets=[aim] * len(x))), v)
                    for v in views]
            maps.append(torch.stack(seen).mean(0).numpy())
    out = np.concatenate(maps).astype(np.float32)
    return _unit_range(out)


def keras_gradcam(model: Any, images: np.ndarray, conv_layer: str | Sequence[str] = "last_conv", head: str = "defect",
                  method: str = DEFAULT_METHOD, views: Sequence[str] = DEFAULT_VIEWS, batch_size: int = 16
                  ) -> np.ndarray:
    """Class-activation maps of a multi-output Keras model: gradient of the ``head`` output w.r.t. ``conv_layer``.

    ``images``: N×H×W×3 in [0, 1]. ``gradcam``: channel weights are the spatially averaged gradients, the map
    ReLU(Σ weights · activations); ``hirescam``: ReLU(Σ gradients ⊙ activations). Upsampled to the input size and
    scaled to [0, 1] per image. Several layers (a sequence of names): each layer's map scaled to [0, 1], then their
    mean, scaled again — as for a torch backbone's stages. ``views`` (:data:`VIEWS`): the maps of the image and its
    mirror images, each mapped back, averaged and scaled again — as :func:`torch_gradcam` does. Computed
    ``batch_size`` images at a time, in a compiled ``tf.function`` (about 2.5× faster than eager on a CPU).
    """
    load_torch_before_tensorflow()
    import keras
    import tensorflow as tf

    if method not in METHODS:
        raise ValueError(f"method {method!r}: expected one of {METHODS}")
    _check_views(views)
    names = [conv_layer] if isinstance(conv_layer, str) else list(conv_layer)
    grad_model = keras.Model(model.inputs, [[model.get_layer(n).output for n in names], model.get_layer(head).output])
    size = tuple(np.shape(images)[1:3])

    @tf.function(reduce_retracing=True)
    def layer_maps(x: Any) -> list:
        with tf.GradientTape() as tape:
            convs, out = grad_model(x, training=False)
            target = tf.reduce_sum(out[:, 0]) if out.shape[-1] == 1 else tf.reduce_sum(out[:, 1])
        maps = []
        for conv, grads in zip(convs, tape.gradient(target, convs)):
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True) if method == "gradcam" else grads
            cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))[..., None]
            maps.append(tf.image.resize(cam, size, method="bilinear")[..., 0])
        return maps

    def one_view(batch: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(batch), batch_size):
            maps = [_unit_range(m.numpy()) for m in layer_maps(tf.constant(batch[i:i + batch_size]))]
            out.append(maps[0] if len(maps) == 1 else _unit_range(np.mean(maps, axis=0)))
        return np.concatenate(out)

    images = np.asarray(images, np.float32)
    mirror = {"identity": lambda a: a, "hflip": lambda a: a[:, :, ::-1], "vflip": lambda a: a[:, ::-1]}
    seen = [mirror[v](one_view(np.ascontiguousarray(mirror[v](images)))) for v in views]
    return seen[0] if len(seen) == 1 else _unit_range(np.mean(seen, axis=0))


def _unit_range(maps: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] (a constant map becomes all zeros)."""
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of N×h×w maps to ``size`` (H, W) — CAMs to the mask's resolution."""
    import cv2

    return np.stack([cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for m in maps])


