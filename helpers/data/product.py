"""A generated product that behaves like a practitioner's own photos, not like MVTec AD.

MVTec AD is square PNG, one size per category, defects away from the border. Photos of a product on a line are
not: :func:`generate_product` writes one product in the **plain layout** (:mod:`helpers.data.scan`)::

    <root>/<name>/good/NNNN.jpg
    <root>/<name>/<defect_type>/NNNN.jpg
    <root>/<name>/masks/<defect_type>/NNNN_mask.png

with every image **grayscale JPEG, wider than tall (2:1 to 3:1), of its own size**, and defects that may sit
**at the very ends** of the part (where a centre crop would cut them off and squashing would thin them). So the
tests and CI run the path a user's own folder takes without any real file. Deterministic in ``seed``; each image
has its own random stream, so any subset regenerates identically.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["ProductSpec", "PRODUCT_DEFECTS", "render_product", "generate_product"]

#: The generated product's defect types.
PRODUCT_DEFECTS = ("scratch", "dent", "stain")


@dataclass(frozen=True)
class ProductSpec:
    """Settings of a generated product (sizes in pixels)."""

    name: str = "metal_strip"
    n_good: int = 40
    n_per_defect: int = 4
    #: the widths drawn from (each image its own); heights follow from the aspect ratio
    width: tuple[int, int] = (240, 360)
    aspect: tuple[float, float] = (2.0, 3.0)
    #: share of defects drawn within the outer 12% of the part's length (the rest anywhere on it)
    at_the_ends: float = 0.5
    jpeg_quality: int = 90
    seed: int = 7


def _part(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """A brushed metal strip on a darker belt: float image in [0, 1], its region and its box (x0, y0, x1, y1)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.18 + 0.03 * rng.standard_normal((h, w)).astype(np.float32)
    x0, x1 = int(w * rng.uniform(0.04, 0.07)), int(w * rng.uniform(0.93, 0.96))
    y0, y1 = int(h * rng.uniform(0.18, 0.24)), int(h * rng.uniform(0.76, 0.82))
    region = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    brushed = 0.62 + 0.04 * np.sin(yy / h * rng.uniform(40, 60) + rng.uniform(0, 6)) + \
        0.02 * rng.standard_normal((h, w)).astype(np.float32)
    img[region] = brushed[region]
    for hx in (x0 + (x1 - x0) * 0.25, x0 + (x1 - x0) * 0.75):        # two mounting holes
        img[np.hypot(xx - hx, yy - (y0 + y1) / 2) < (y1 - y0) * 0.12] = 0.1
    return img, region, (x0, y0, x1, y1)


def render_product(rng: np.random.Generator, defect: str | None = None, spec: ProductSpec = ProductSpec()
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """One grayscale uint8 image (H×W, W > H) and, for a ``defect`` of :data:`PRODUCT_DEFECTS`, its mask."""
    w = int(rng.integers(spec.width[0], spec.width[1] + 1))
    h = max(32, int(round(w / rng.uniform(*spec.aspect))))
    img, region, (x0, y0, x1, y1) = _part(rng, w, h)
    if defect is None:
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), None
    if defect not in PRODUCT_DEFECTS:
        raise ValueError(f"unknown defect {defect!r}: expected one of {PRODUCT_DEFECTS}")
    length = x1 - x0
    if rng.uniform() < spec.at_the_ends:      # within the outer 12% of the strip, either end
        cx = x0 + length * rng.uniform(0.01, 0.12) if rng.uniform() < 0.5 else x1 - length * rng.uniform(0.01, 0.12)
    else:
        cx = x0 + length * rng.uniform(0.1, 0.9)
    cy = rng.uniform(y0 + 0.2 * (y1 - y0), y1 - 0.2 * (y1 - y0))
    r = (y1 - y0) * rng.uniform(0.12, 0.2)
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if defect == "scratch":
        a = rng.uniform(-0.6, 0.6)
        draw.line([(cx - 2 * r * np.cos(a), cy - 2 * r * np.sin(a)), (cx + 2 * r * np.cos(a), cy + 2 * r * np.sin(a))],
                  fill=255, width=max(2, h // 40))
        shade = np.asarray(canvas, np.float32) / 255 * 0.35
    elif defect == "dent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        shade = -np.asarray(canvas.filter(ImageFilter.GaussianBlur(r / 4)), np.float32) / 255 * 0.3
    else:
        draw.ellipse([cx - 1.3 * r, cy - 0.8 * r, cx + 1.3 * r, cy + 0.8 * r], fill=255)
        shade = -np.asarray(canvas.filter(ImageFilter.GaussianBlur(r / 3)), np.float32) / 255 * 0.4
    img = img + shade
    mask = (np.abs(shade) > 0.1) & region
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), mask


def generate_product(root: str | os.PathLike, spec: ProductSpec = ProductSpec()) -> Path:
    """Write ``spec``'s product under ``root`` in the plain layout; returns ``root`` (point ``MVTEC_DIR`` at it)."""
    root = Path(root)
    product = root / spec.name
    jobs: list[tuple[str | None, int]] = [(None, i) for i in range(spec.n_good)]
    jobs += [(d, i) for d in PRODUCT_DEFECTS for i in range(spec.n_per_defect)]
    for defect, i in jobs:
        rng = np.random.default_rng([spec.seed, PRODUCT_DEFECTS.index(defect) + 1 if defect else 0, i])
        img, mask = render_product(rng, defect, spec)
        folder = product / (defect or "good")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "L").save(folder / f"{i:04d}.jpg", quality=spec.jpeg_quality)
        if mask is not None and defect is not None:
            (product / "masks" / defect).mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255, "L").save(product / "masks" / defect / f"{i:04d}_mask.png")
    return root
