"""The one preprocessing: how an image becomes a model's input, defined once per kind of input.

Every path to a model goes through here — the image cache (training and scoring), ``predict``, the parity and
INT8 checks, Grad-CAM, the inspector page — so a file scores the same wherever it is scored. An
:class:`InputSpec` (which each model kind declares, :mod:`helpers.models.kinds`, and each model card records)
says it all:

1. resize to ``resize`` × ``resize`` (:func:`helpers.data.cache.load_resized`: PIL bilinear, antialiased — what
   the cache stores);
2. centre-crop to ``image_size`` (PatchCore: 256 → 224; the others crop nothing);
3. scale: ``(pixel / 255 − mean) / std`` per channel when ``mean``/``std`` are given (ImageNet-initialised torch
   models), else ``pixel / 255`` (Keras, and PatchCore, whose backbone normalises inside the model);
4. lay out as ``NCHW`` (torch) or ``NHWC`` (Keras), float32.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["InputSpec", "load_image", "to_input", "batch", "from_cache", "crop_masks"]


@dataclass(frozen=True)
class InputSpec:
    """What a model takes: size, crop, scaling and layout (recorded in every model card)."""

    #: the edge of the square input
    image_size: int
    #: the edge images are resized to before the centre crop (= ``image_size``: no crop)
    resize: int
    #: ``NCHW`` (torch) or ``NHWC`` (Keras)
    layout: str = "NCHW"
    #: per-channel mean and std after ``pixel / 255`` (None: ``pixel / 255`` only)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout {self.layout!r}: expected 'NCHW' or 'NHWC'")
        if not 0 < self.image_size <= self.resize:
            raise ValueError(f"image_size {self.image_size} must be positive and at most resize {self.resize}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std go together")

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's input shape."""
        s = self.image_size
        return (3, s, s) if self.layout == "NCHW" else (s, s, 3)

    def describe(self) -> str:
        """The preprocessing in words (for the card and the notebooks)."""
        crop = f", centre {self.image_size}×{self.image_size} crop" if self.resize != self.image_size else ""
        scale = "(pixel / 255 − mean) / std per channel" if self.mean is not None else "pixel / 255"
        return (f"RGB, resized to {self.resize}×{self.resize} (PIL bilinear, antialiased){crop}; {scale}; "
                f"{self.layout} float32")

    def as_dict(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "resize": self.resize, "layout": self.layout,
                "mean": None if self.mean is None else list(self.mean),
                "std": None if self.std is None else list(self.std)}


def _crop(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    off = (spec.resize - spec.image_size) // 2
    return image[off:off + spec.image_size, off:off + spec.image_size] if off else image


def load_image(spec: InputSpec, image: str | os.PathLike | np.ndarray) -> np.ndarray:
    """A file or an H×W×3 uint8 array as the model sees it before scaling: ``image_size``² × 3 uint8."""
    from .cache import load_resized

    return _crop(load_resized(image, spec.resize), spec)


def to_input(spec: InputSpec, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Resized uint8 images (N × resize × resize × 3, e.g. rows of the cache) as the model's float32 batch."""
    cropped = [_crop(np.asarray(im), spec) for im in images]
    if not cropped:
        return np.zeros((0, *spec.shape), np.float32)
    if spec.mean is not None:
        # Albumentations' Normalize, as the training pipeline applies it (same arithmetic, same float32 values)
        import albumentations as A

        normalise = A.Normalize(mean=spec.mean, std=spec.std)
        out = np.stack([normalise(image=im)["image"] for im in cropped]).astype(np.float32)
    else:
        out = np.stack(cropped).astype(np.float32) / 255.0
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)) if spec.layout == "NCHW" else out


def batch(spec: InputSpec, images: Iterable[str | os.PathLike | np.ndarray]) -> np.ndarray:
    """Files or arrays straight to the model's float32 batch (:func:`load_image` then :func:`to_input`)."""
    from .cache import load_resized

    return to_input(spec, [load_resized(x, spec.resize) for x in images])


def from_cache(spec: InputSpec, prepared: Any, paths: Iterable[str]) -> np.ndarray:
    """The model's batch for dataset images (``paths`` relative to the data root) from the cache at ``spec.resize``."""
    cache = prepared.cache(spec.resize, progress=False)
    rows = cache.indices(list(paths))
    return to_input(spec, [cache.images[i] for i in rows])


def crop_masks(spec: InputSpec, masks: Sequence[np.ndarray]) -> np.ndarray:
    """Masks (any size, 0/1) brought to the input's geometry (resize by nearest neighbour, then the same crop), so that
    they align with maps computed on the input."""
    import cv2

    return np.stack([_crop(cv2.resize(np.asarray(m, np.uint8), (spec.resize, spec.resize),
                                      interpolation=cv2.INTER_NEAREST), spec) > 0 for m in masks]) \
        if len(masks) else np.zeros((0, spec.image_size, spec.image_size), bool)
