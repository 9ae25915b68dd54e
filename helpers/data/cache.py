"""A decoded, resized, memory-mapped copy of the dataset: decode each PNG once, read it many times.

Full-size MVTec PNGs (700–1024 px) take tens of milliseconds each to decode; an epoch at 224 px
spends most of its time there. The cache holds every manifest image as ``size×size×3`` uint8 (and
its mask as ``size×size`` uint8) in ``.npy`` files opened with ``mmap_mode="r"``, so DataLoader
workers share the pages instead of copying them. The key is (manifest hash, size): a changed file,
a new image or another size gives a new cache; an interrupted build never leaves a partial one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from ..core import layout
from ..core.env import io_workers
from .images import load_mask, load_rgb

__all__ = ["CACHE_VERSION", "manifest_hash", "load_resized", "ImageCache", "build_cache", "open_cache"]

CACHE_VERSION = 1


def manifest_hash(manifest: pd.DataFrame) -> str:
    """A short hash of the manifest's paths, contents and masks (order-independent)."""
    rows = sorted(f"{p}\t{h}\t{m}" for p, h, m in
                  zip(manifest["path"], manifest["content_hash"], manifest["mask_path"]))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


@dataclass
class ImageCache:
    """Images and masks of a manifest at one size, memory-mapped. Row ``i`` ↔ ``paths[i]``."""

    images: np.ndarray    # (N, S, S, 3) uint8
    masks: np.ndarray     # (N, S, S) uint8, 0/1; all zero where there is no mask
    paths: list[str]
    size: int
    key: str
    directory: Path

    def __post_init__(self) -> None:
        self._index = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    def indices(self, paths) -> np.ndarray:
        """Row numbers of ``paths`` (KeyError names the first path not in the cache)."""
        try:
            return np.fromiter((self._index[p] for p in paths), dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"{err.args[0]!r} is not in the cache {self.directory}; "
                           "rebuild it from the current manifest") from None


def _resize(arr: np.ndarray, size: int, resample: Image.Resampling = Image.Resampling.BILINEAR) -> np.ndarray:
    img = Image.fromarray(arr)
    if img.size != (size, size):
        img = img.resize((size, size), resample, reducing_gap=3.0 if resample != Image.Resampling.NEAREST else None)
    return np.asarray(img)


def load_resized(image: str | os.PathLike | np.ndarray, size: int) -> np.ndarray:
    """An image file (any mode) or an ``H×W×3`` uint8 array as ``size×size×3`` uint8, resized exactly as the
    cache resizes it (PIL, bilinear, antialiased). Training, evaluation and ``predict`` all see this."""
    arr = load_rgb(image) if isinstance(image, (str, os.PathLike)) else np.asarray(image, dtype=np.uint8)
    return _resize(arr, size, Image.Resampling.BILINEAR)


def build_cache(manifest: pd.DataFrame, data_root: str | os.PathLike, size: int,
                cache_root: str | os.PathLike, workers: int | None = None,
                progress: bool = True) -> ImageCache:
    """Return the cache for ``(manifest, size)``, building it first when it does not exist yet."""
    key = f"{manifest_hash(manifest)}_{size}"
    directory = Path(cache_root) / key
    meta_path = directory / layout.CACHE_META
    if meta_path.exists():
        return open_cache(directory)
    data_root = Path(data_root)
    n = len(manifest)
    directory.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own: two builds at once (two notebooks, two prepare runs) never share a folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=directory.parent))
    images = np.lib.format.open_memmap(tmp / layout.CACHE_IMAGES, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    masks = np.lib.format.open_memmap(tmp / layout.CACHE_MASKS, mode="w+", dtype=np.uint8, shape=(n, size, size))
    paths = manifest["path"].tolist()
    mask_paths = manifest["mask_path"].tolist()

    def fill(i: int) -> None:
        images[i] = load_resized(data_root / paths[i], size)  # noqa: F821 - closed below, after the pool
        if mask_paths[i]:
            masks[i] = _resize(load_mask(  # noqa: F821
                data_root / mask_paths[i]) * 255, size, Image.Resampling.BILINEAR) > 127
        else:
            masks[i] = 0  # noqa: F821

    with ThreadPoolExecutor(max_workers=workers or io_workers()) as pool:
        list(tqdm(pool.map(fill, range(n)), total=n, desc=f"caching images at {size}px",
                  disable=not progress))
    images.flush()
    masks.flush()
    del images, masks
    (tmp / layout.CACHE_META).write_text(json.dumps({"version": CACHE_VERSION, "size": size, "key": key,
                                               "paths": paths}))
    try:
        tmp.replace(directory)
    except OSError:          # a concurrent build renamed its (identical) cache into place first
        if not meta_path.exists():
            raise
        shutil.rmtree(tmp)
    return open_cache(directory)


def open_cache(directory: str | os.PathLike) -> ImageCache:
    """Open an existing cache folder read-only (memory-mapped)."""
    directory = Path(directory)
    meta = json.loads((directory / layout.CACHE_META).read_text())
    return ImageCache(images=np.load(directory / layout.CACHE_IMAGES, mmap_mode="r"),
                      masks=np.load(directory / layout.CACHE_MASKS, mmap_mode="r"),
                      paths=meta["paths"], size=meta["size"], key=meta["key"], directory=directory)
