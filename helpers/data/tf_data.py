"""``tf.data`` pipelines for the Keras track, from the image cache or from raw PNGs.

Recipe: resize to 224, scale to [0, 1]; in training a random left-right flip, brightness ±0.2 and
contrast 0.8–1.2; ``map`` with AUTOTUNE, ``shuffle(1000)``, ``batch``, ``prefetch``. Elements are
``(image, {"category": int, "defect": float})`` for the multi-task model.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.env import load_torch_before_tensorflow
from .cache import ImageCache

load_torch_before_tensorflow()
import tensorflow as tf  # noqa: E402

__all__ = ["AUTOTUNE", "augment", "make_dataset"]

AUTOTUNE = tf.data.AUTOTUNE


def augment(image: tf.Tensor, seed: int | None = None) -> tf.Tensor:
    """The recipe's training augmentation on a [0, 1] float image."""
    image = tf.image.random_flip_left_right(image, seed=seed)
    image = tf.image.random_brightness(image, max_delta=0.2, seed=seed)
    image = tf.image.random_contrast(image, lower=0.8, upper=1.2, seed=seed)
    return tf.clip_by_value(image, 0.0, 1.0)


def _decode_png(path: tf.Tensor, size: int) -> tf.Tensor:
    raw = tf.io.read_file(path)
    image = tf.io.decode_image(raw, channels=3, dtype=tf.uint8, expand_animations=False)
    return tf.image.resize(image, (size, size), antialias=True) / 255.0


def make_dataset(frame: pd.DataFrame, categories: list[str], size: int = 224, batch_size: int = 32,
                 training: bool = False, cache: ImageCache | None = None, root: str | os.PathLike | None = None,
                 seed: int = 42, shuffle_buffer: int = 1000, parallel: bool = True) -> tf.data.Dataset:
    """A batched, prefetched ``tf.data.Dataset`` of ``frame``'s rows.

    Args:
        categories: the label encoding (sorted names, shared with the torch track).
        cache: read images from the memory-mapped cache (fast); else decode PNGs under ``root``.
        training: shuffle and augment.
        parallel: map with AUTOTUNE threads (in order). False under TensorFlow's op determinism (notebook 04), which
            turns parallel maps into sequential ones anyway — and its rewrite logs an error line
            (``node_def_util ... use_unbounded_threadpool``) on every run: sequential maps give the same pipeline
            without it.
    """
    lookup = {c: i for i, c in enumerate(categories)}
    cats = frame["category"].map(lookup).to_numpy(np.int32)
    defects = frame["label"].to_numpy(np.float32)
    if cache is not None:
        rows = cache.indices(frame["path"]).astype(np.int64)
        images = cache.images

        def load(i):
            return images[i]

        ds = tf.data.Dataset.from_tensor_slices((rows, cats, defects))
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

        def read(i, c, d):
            img = tf.numpy_function(load, [i], tf.uint8)
            img.set_shape((cache.size, cache.size, 3))
            img = tf.image.resize(tf.cast(img, tf.float32), (size, size)) / 255.0 if cache.size != size \
                else tf.cast(img, tf.float32) / 255.0
            return img, c, d
    else:
        if root is None:
            raise ValueError("make_dataset needs a cache or a dataset root")
        paths = [str(Path(root) / p) for p in frame["path"]]
        ds = tf.data.Dataset.from_tensor_slices((paths, cats, defects))
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

        def read(p, c, d):
            return _decode_png(p, size), c, d

    order = {"num_parallel_calls": AUTOTUNE, "deterministic": True} if parallel else {}
    ds = ds.map(read, **order)
    if training:
        ds = ds.map(lambda x, c, d: (augment(x), c, d), **order)
    ds = ds.map(lambda x, c, d: (x, {"category": c, "defect": d}))
    return ds.batch(batch_size).prefetch(AUTOTUNE)
