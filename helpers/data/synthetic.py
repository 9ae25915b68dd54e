"""The built-in sample dataset: a procedural MVTec-layout tree that works offline.

Every one of the 15 MVTec AD category names gets its own look: a texture for carpet, grid, leather,
tile and wood, a centred object for the rest; grid, screw and zipper are grayscale (mode L) as in
MVTec. Each category has 2–3 defect types drawn from five primitives (scratch, hole, crack, stain,
missing part), named like MVTec's own, with pixel masks in ``ground_truth/``.

**What makes a defect easy or hard** is its size and its contrast with the surface around it. Each defect
type is drawn at one of three levels (:data:`LEVELS`, assigned in :data:`DIFFICULTY`), as on MVTec AD:

- ``obvious``: 4× the base size and 1.6× the contrast, about 2–15% of the image (like bottle ``broken_large``);
- ``moderate``: 2× the size and 1.25× the contrast, about 0.5–2.5%;
- ``subtle``: the base, about 0.1–1% and low contrast (like screw ``scratch_head``).

hazelnut and toothbrush have only obvious defects, screw only subtle ones; capsule, grid and zipper are
mostly subtle. So per-category results differ the way they do on MVTec: easy categories near perfect, hard
ones lower. ``SyntheticSpec(difficulty="uniform")`` draws every defect at the base level (generator version 1).

It is deterministic in ``seed`` and every size/count is configurable. It is *not* MVTec AD: it is for seeing
each method and tool work offline, never a benchmark of how a method does on real parts.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from ..core import layout
from .scan import GRAYSCALE_CATEGORIES, MVTEC_CATEGORIES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GENERATOR_VERSION", "DEFECTS", "Level", "LEVELS", "DIFFICULTY", "defect_level", "SyntheticSpec", "Render",
           "RENDERERS", "add_defect", "render_image", "check_version", "generate_dataset", "builtin_root",
           "difficulty_table"]

GENERATOR_VERSION = 2

#: category -> {MVTec-style defect name: (primitive, level)}: the one table of the built-in defects. The levels
#: spread like MVTec's: categories whose defects are mostly obvious (bottle, hazelnut, carpet, ...) and hard ones
#: whose defects are all or mostly subtle (screw, capsule, grid, zipper), the categories methods find hardest on
#: MVTec AD too.
_DEFECT_TABLE: dict[str, dict[str, tuple[str, str]]] = {
    "bottle": {"broken_large": ("missing", "obvious"), "broken_small": ("hole", "moderate"),
               "contamination": ("stain", "obvious")},
    "cable": {"cut_outer_insulation": ("scratch", "moderate"), "missing_cable": ("missing", "obvious"),
              "poke_insulation": ("hole", "moderate")},
    "capsule": {"crack": ("crack", "subtle"), "scratch": ("scratch", "subtle"), "poke": ("hole", "moderate")},
    "carpet": {"color": ("stain", "obvious"), "hole": ("hole", "obvious"), "cut": ("scratch", "moderate")},
    "grid": {"broken": ("missing", "moderate"), "glue": ("stain", "subtle"), "bent": ("crack", "subtle")},
    "hazelnut": {"crack": ("crack", "obvious"), "hole": ("hole", "obvious"), "print": ("stain", "obvious")},
    "leather": {"color": ("stain", "obvious"), "cut": ("scratch", "moderate"), "poke": ("hole", "obvious")},
    "metal_nut": {"scratch": ("scratch", "moderate"), "color": ("stain", "obvious"), "bent": ("missing", "obvious")},
    "pill": {"crack": ("crack", "moderate"), "contamination": ("stain", "obvious"), "scratch": ("scratch", "subtle")},
    "screw": {"scratch_head": ("scratch", "subtle"), "thread_side": ("missing", "subtle"),
              "manipulated_front": ("crack", "subtle")},
    "tile": {"crack": ("crack", "obvious"), "oil": ("stain", "obvious"), "gray_stroke": ("scratch", "moderate")},
    "toothbrush": {"defective": ("missing", "obvious"), "contamination": ("stain", "obvious")},
    "transistor": {"damaged_case": ("scratch", "moderate"), "cut_lead": ("missing", "obvious")},
    "wood": {"scratch": ("scratch", "moderate"), "hole": ("hole", "obvious"), "color": ("stain", "obvious")},
    "zipper": {"broken_teeth": ("missing", "moderate"), "rough": ("crack", "subtle"),
               "fabric_interior": ("stain", "subtle")},
}

#: category -> {MVTec-style defect name: primitive}
DEFECTS: dict[str, dict[str, str]] = {c: {d: prim for d, (prim, _) in v.items()} for c, v in _DEFECT_TABLE.items()}


@dataclass(frozen=True)
class Level:
    """How hard a defect is to see: its size and its contrast, each a multiplier on the primitive's base."""

    #: Multiplier on length, radius and line width (1.0: the base sizes, about 0.1–1% of the image).
    scale: float
    #: Multiplier on the change of intensity or colour a scratch, crack or stain makes.
    contrast: float


#: The three difficulty levels of the built-in data (see :data:`DIFFICULTY`).
LEVELS: dict[str, Level] = {
    "obvious": Level(scale=4.0, contrast=1.6),    # ~2–15% of the image, high contrast: like bottle broken_large
    "moderate": Level(scale=2.0, contrast=1.25),  # ~0.5–2.5%
    "subtle": Level(scale=1.0, contrast=1.0),     # ~0.1–1%, the base: like screw scratch_head
}

#: category -> {defect name: level} (see :data:`LEVELS`).
DIFFICULTY: dict[str, dict[str, str]] = {c: {d: level for d, (_, level) in v.items()} for c, v in _DEFECT_TABLE.items()}


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a built-in dataset; stored beside it as ``builtin_dataset.json``."""

    size: int = 128
    n_train_good: int = 16
    n_test_good: int = 5
    n_per_defect: int = 3
    seed: int = 42
    categories: tuple[str, ...] = MVTEC_CATEGORIES
    #: Multiplier on every defect's size, on top of its level. Learning tests use larger defects so that
    #: a model trained from scratch on a CPU can find them in seconds.
    defect_scale: float = 1.0
    #: ``"mixed"``: each defect type at its level in :data:`DIFFICULTY` (obvious, moderate or subtle);
    #: ``"uniform"``: every defect at the base level (subtle), the only behaviour of generator version 1.
    difficulty: str = "mixed"
    version: int = GENERATOR_VERSION


# --------------------------------------------------------------------------------------------------
# Drawing utilities (float images in [0, 1], H×W×3)
# --------------------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: ``cells``×``cells`` random values upsampled bicubically."""
    small = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    big = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 127.5 - 1.0


def _coords(size: int, rng: np.random.Generator, shift: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], shifted and rotated (per-image pose jitter)."""
    lin = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(lin, lin, indexing="ij")
    dx, dy = rng.uniform(-shift, shift, 2)
    xx, yy = xx - dx, yy - dy
    c, s = np.cos(angle), np.sin(angle)
    return c * xx + s * yy, -s * xx + c * yy


def _paint(img: np.ndarray, where: np.ndarray, color) -> None:
    img[where] = np.asarray(color, dtype=np.float32)


def _mask_draw(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    canvas = Image.new("L", (size, size), 0)
    return canvas, ImageDraw.Draw(canvas)


# --------------------------------------------------------------------------------------------------
# Category renderers: (rng, size) -> (image, region where a defect may be placed)
# --------------------------------------------------------------------------------------------------
Render = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def _texture(base, fine: float, low: float, cells: int) -> Render:
    def render(rng: np.random.Generator, s: int) -> tuple[np.ndarray, np.ndarray]:
        img = np.empty((s, s, 3), np.float32)
        img[:] = np.asarray(base, np.float32) * rng.uniform(0.95, 1.05)
        img += low * _smooth_noise(rng, s, cells)[..., None]
        img += fine * rng.standard_normal((s, s, 1)).astype(np.float32)
        return img, np.ones((s, s), bool)
    return render


def _carpet(rng, s):
    img, region = _texture((0.48, 0.45, 0.42), 0.05, 0.04, 8)(rng, s)
    x, y = _coords(s, rng, 1.0, 0.0)
    f = 14 * np.pi
    img += 0.07 * (np.sin(f * (x + y)) * np.sin(f * (x - y)))[..., None]
    return img, region


def _grid(rng, s):
    img, region = _texture((0.22, 0.22, 0.22), 0.03, 0.03, 6)(rng, s)
    x, y = _coords(s, rng, 0.2, rng.uniform(-0.05, 0.05))
    warp = 0.02 * _smooth_noise(rng, s, 4)
    period, width = 0.25, 0.05
    lines = ((x + warp) % period < width) | ((y - warp) % period < width)
    img[lines] += 0.45
    return img, region


def _leather(rng, s):
    img, region = _texture((0.55, 0.34, 0.2), 0.025, 0.05, 10)(rng, s)
    img += 0.05 * np.abs(_smooth_noise(rng, s, 24))[..., None]
    return img, region


def _tile(rng, s):
    img, region = _texture((0.76, 0.75, 0.72), 0.03, 0.06, 5)(rng, s)
    n = int(0.004 * s * s)
    ys, xs = rng.integers(0, s, n), rng.integers(0, s, n)
    img[ys, xs] = rng.uniform(0.25, 0.45, (n, 1))
    return img, region


def _wood(rng, s):
    img, region = _texture((0.62, 0.44, 0.27), 0.02, 0.03, 6)(rng, s)
    x, y = _coords(s, rng, 1.0, rng.uniform(-0.08, 0.08))
    grain = np.sin(2 * np.pi * (5 * x + 0.8 * _smooth_noise(rng, s, 3)))
    img += 0.06 * grain[..., None]
    return img, region


def _object(draw_fn: Callable, background, rotate: float = 0.15) -> Render:
    def render(rng: np.random.Generator, s: int) -> tuple[np.ndarray, np.ndarray]:
        img = np.empty((s, s, 3), np.float32)
        img[:] = np.asarray(background, np.float32)
        x, y = _coords(s, rng, 0.04, rng.uniform(-rotate, rotate))
        region = draw_fn(img, x, y, rng, s)
        img *= rng.uniform(0.96, 1.04)
        img += 0.015 * rng.standard_normal((s, s, 1)).astype(np.float32)
        return img, region
    return render


def _draw_bottle(img, x, y, rng, s):
    r = np.hypot(x, y)
    _paint(img, r < 0.8, (0.33, 0.32, 0.3))
    _paint(img, (r > 0.45) & (r < 0.6), (0.6, 0.58, 0.55))
    _paint(img, r < 0.3, (0.12, 0.11, 0.1))
    return r < 0.78


def _draw_cable(img, x, y, rng, s):
    r = np.hypot(x, y)
    _paint(img, r < 0.88, (0.55, 0.55, 0.52))
    for angle, color in ((90, (0.2, 0.6, 0.3)), (210, (0.2, 0.3, 0.75)), (330, (0.5, 0.4, 0.3))):
        cx, cy = 0.42 * np.cos(np.radians(angle)), -0.42 * np.sin(np.radians(angle))
        rr = np.hypot(x - cx, y - cy)
        _paint(img, rr < 0.3, color)
        _paint(img, rr < 0.13, (0.8, 0.5, 0.2))
    return r < 0.85


def _draw_capsule(img, x, y, rng, s):
    body = (np.abs(x) < 0.5) & (np.abs(y) < 0.27)
    caps = (np.hypot(x - 0.5, y) < 0.27) | (np.hypot(x + 0.5, y) < 0.27)
    shape = body | caps
    _paint(img, shape & (x < 0), (0.16, 0.12, 0.12))
    _paint(img, shape & (x >= 0), (0.86, 0.45, 0.12))
    return shape


def _draw_hazelnut(img, x, y, rng, s):
    shape = (x / 0.6) ** 2 + (y / 0.72) ** 2 < 1
    img[shape] = np.asarray((0.5, 0.32, 0.15), np.float32) + 0.05 * _smooth_noise(rng, s, 12)[shape][:, None]
    return shape


def _draw_metal_nut(img, x, y, rng, s):
    r, theta = np.hypot(x, y), np.arctan2(y, x)
    notch = (np.cos(4 * theta) > 0.85) & (r > 0.6)
    shape = (r < 0.78) & (r > 0.3) & ~notch
    _paint(img, shape, (0.55, 0.56, 0.6))
    _paint(img, shape & (r > 0.65), (0.68, 0.69, 0.72))
    return shape


def _draw_pill(img, x, y, rng, s):
    shape = (x / 0.78) ** 2 + (y / 0.42) ** 2 < 1
    _paint(img, shape, (0.9, 0.88, 0.84))
    n = max(6, int(0.0015 * s * s))
    ys, xs = rng.integers(0, s, n), rng.integers(0, s, n)
    keep = shape[ys, xs]
    img[ys[keep], xs[keep]] = (0.75, 0.25, 0.22)
    return shape


def _draw_screw(img, x, y, rng, s):
    shaft = (np.abs(y) < 0.08) & (x > -0.45) & (x < 0.7)
    thread = shaft & (np.sin(40 * x) > 0.3)
    head = np.hypot(x + 0.55, y) < 0.2
    _paint(img, shaft | head, (0.3, 0.3, 0.3))
    _paint(img, thread, (0.45, 0.45, 0.45))
    return shaft | head


def _draw_toothbrush(img, x, y, rng, s):
    head = (np.abs(x) < 0.38) & (np.abs(y) < 0.78)
    stripes = np.floor((x + 0.38) / 0.095).astype(int) % 2 == 0
    _paint(img, head & stripes, (0.92, 0.92, 0.95))
    _paint(img, head & ~stripes, (0.25, 0.45, 0.85))
    img[head] += 0.05 * _smooth_noise(rng, s, 30)[head][:, None]
    return head


def _draw_transistor(img, x, y, rng, s):
    body = (np.abs(x) < 0.45) & (y > -0.7) & (y < 0.0)
    leads = np.zeros_like(body)
    for lx in (-0.28, 0.0, 0.28):
        leads |= (np.abs(x - lx) < 0.05) & (y >= 0.0) & (y < 0.85)
    _paint(img, body, (0.1, 0.1, 0.1))
    _paint(img, leads, (0.78, 0.74, 0.6))
    return body | leads


def _draw_zipper(img, x, y, rng, s):
    img += 0.05 * _smooth_noise(rng, s, 40)[..., None]
    band = np.abs(x) < 0.22
    row = np.floor((y + 1) / 0.1).astype(int)
    teeth = band & (((row % 2 == 0) & (x < 0.05)) | ((row % 2 == 1) & (x > -0.05)))
    _paint(img, band, (0.2, 0.2, 0.2))
    _paint(img, teeth & ((y + 1) % 0.1 > 0.02), (0.78, 0.78, 0.78))
    return band


RENDERERS: dict[str, Render] = {
    "carpet": _carpet, "grid": _grid, "leather": _leather, "tile": _tile, "wood": _wood,
    "bottle": _object(_draw_bottle, (0.04, 0.04, 0.04)),
    "cable": _object(_draw_cable, (0.18, 0.2, 0.18)),
    "capsule": _object(_draw_capsule, (0.93, 0.93, 0.92), rotate=0.05),
    "hazelnut": _object(_draw_hazelnut, (0.05, 0.05, 0.05), rotate=np.pi),
    "metal_nut": _object(_draw_metal_nut, (0.08, 0.08, 0.08), rotate=np.pi),
    "pill": _object(_draw_pill, (0.22, 0.22, 0.24), rotate=0.05),
    "screw": _object(_draw_screw, (0.86, 0.86, 0.86), rotate=np.pi),
    "toothbrush": _object(_draw_toothbrush, (0.72, 0.72, 0.76), rotate=0.03),
    "transistor": _object(_draw_transistor, (0.86, 0.86, 0.86), rotate=0.05),
    "zipper": _object(_draw_zipper, (0.32, 0.32, 0.32), rotate=0.0),
}
assert set(RENDERERS) == set(MVTEC_CATEGORIES) == set(DEFECTS)


# --------------------------------------------------------------------------------------------------
# Defects: (image, region, rng) -> mask (bool), image modified in place
# --------------------------------------------------------------------------------------------------
def _anchor(region: np.ndarray, rng: np.random.Generator, margin: int) -> tuple[int, int]:
    inner = region.copy()
    inner[:margin], inner[-margin:], inner[:, :margin], inner[:, -margin:] = False, False, False, False
    ys, xs = np.nonzero(inner if inner.any() else region)
    i = rng.integers(len(ys))
    return int(xs[i]), int(ys[i])


def add_defect(img: np.ndarray, region: np.ndarray, kind: str, rng: np.random.Generator,
               scale: float = 1.0, contrast: float = 1.0) -> np.ndarray:
    """Draw one defect of primitive ``kind`` inside ``region``; return its boolean pixel mask.

    ``scale`` multiplies the defect's length, radius and line width; ``contrast`` the change of intensity or
    colour of a scratch, crack or stain (a hole is always dark and a missing part always background).
    """
    s = img.shape[0]
    width = max(1, round(scale * s / 96))
    cx, cy = _anchor(region, rng, margin=max(2, s // 10))
    canvas, draw = _mask_draw(s)
    if kind in ("scratch", "crack"):
        n_seg = 1 if kind == "scratch" else 5
        length = rng.uniform(0.12, 0.22) * s * scale
        points, angle = [(cx, cy)], rng.uniform(0, 2 * np.pi)
        for _ in range(n_seg):
            angle += rng.uniform(-0.9, 0.9) if kind == "crack" else 0.0
            step = length / n_seg
            px, py = points[-1]
            points.append((px + step * np.cos(angle), py + step * np.sin(angle)))
        draw.line(points, fill=255, width=width + (kind == "crack"))
        mask = np.asarray(canvas) > 0
        shade = rng.choice([-1.0, 1.0]) if kind == "scratch" else -1.0
        img[mask] = np.clip(img[mask] + shade * 0.28 * contrast, 0, 1)
    elif kind == "hole":
        r = rng.uniform(0.025, 0.045) * s * scale
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        mask = np.asarray(canvas) > 0
        img[mask] = img[mask] * 0.25 + 0.02
    elif kind == "stain":
        r = rng.uniform(0.04, 0.07) * s * scale
        draw.ellipse([cx - r, cy - r * rng.uniform(0.5, 1), cx + r, cy + r], fill=255)
        soft = np.asarray(canvas.filter(ImageFilter.GaussianBlur(r / 3)), np.float32) / 255
        tint = rng.uniform(-1, 1, 3).astype(np.float32)
        tint = 0.22 * contrast * tint / (np.linalg.norm(tint) + 1e-6) * np.sqrt(3)
        img += soft[..., None] * tint
        mask = soft > 0.5
    elif kind == "missing":
        r = rng.uniform(0.05, 0.08) * s * scale
        angles = np.sort(rng.uniform(0, 2 * np.pi, 6))
        radii = r * rng.uniform(0.6, 1.0, 6)
        draw.polygon([(cx + q * np.cos(a), cy + q * np.sin(a)) for q, a in zip(radii, angles)], fill=255)
        mask = (np.asarray(canvas) > 0) & region
        fill = np.median(img[~region], axis=0) if (~region).any() else img[mask].mean(axis=0)
        img[mask] = fill
    else:
        raise ValueError(f"unknown defect primitive {kind!r}")
    return mask


def defect_level(category: str, defect: str, difficulty: str = "mixed") -> Level:
    """The :class:`Level` a defect type is drawn at (``difficulty``: ``"mixed"`` or ``"uniform"``)."""
    if difficulty == "uniform":
        return LEVELS["subtle"]
    if difficulty != "mixed":
        raise ValueError(f"unknown difficulty {difficulty!r}: expected 'mixed' or 'uniform'")
    return LEVELS[DIFFICULTY[category][defect]]


def render_image(category: str, rng: np.random.Generator, size: int,
                 defect: str | None = None, defect_scale: float = 1.0,
                 difficulty: str = "mixed") -> tuple[np.ndarray, np.ndarray | None]:
    """One uint8 image of ``category`` (H×W for grayscale categories, else H×W×3) and its mask.

    ``defect`` is one of ``DEFECTS[category]`` or None for a good image (mask None). With ``difficulty``
    ``"mixed"`` the defect is drawn at its level in :data:`DIFFICULTY`, with ``"uniform"`` at the base level;
    ``defect_scale`` multiplies its size either way.
    """
    img, region = RENDERERS[category](rng, size)
    mask = None
    if defect is not None:
        level = defect_level(category, defect, difficulty)
        mask = add_defect(img, region, DEFECTS[category][defect], rng, defect_scale * level.scale, level.contrast)
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if category in GRAYSCALE_CATEGORIES:
        out = out.mean(axis=2).astype(np.uint8)
    return out, mask


def check_version(version: int) -> None:
    """Refuse settings recorded by another version of this generator (its images differ): a ValueError that says
    what to do."""
    if version != GENERATOR_VERSION:
        raise ValueError(f"Settings recorded by version {version} of the built-in data generator; this code draws "
                         f"version {GENERATOR_VERSION}, whose images differ, so that data (and any split.csv or results "
                         "made from it) cannot be regenerated or reused. Use a new RUNS_DIR (or move the old one aside) "
                         "and prepare the data again (notebook 00 or `python -m helpers prepare`).")


def generate_dataset(root: str | os.PathLike, spec: SyntheticSpec | None = None, progress: bool = True,
                     **overrides) -> Path:
    """Write an MVTec-layout tree to ``root`` (skipped when one with the same spec is there).

    Layout: ``<cat>/train/good``, ``<cat>/test/good``, ``<cat>/test/<defect>``,
    ``<cat>/ground_truth/<defect>/NNN_mask.png`` (0/255, mode L).
    """
    spec = spec or SyntheticSpec(**overrides)
    check_version(spec.version)
    root = Path(root)
    info_path = root / layout.BUILTIN_RECORD
    wanted = json.loads(json.dumps(asdict(spec)))
    if info_path.exists() and json.loads(info_path.read_text()) == wanted:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    final, root = root, Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    root.chmod(0o755)   # mkdtemp makes it private; the data folder is not
    jobs: list[tuple[str, str, str | None, int]] = []
    for cat in spec.categories:
        jobs += [(cat, "train", None, i) for i in range(spec.n_train_good)]
        jobs += [(cat, "test", None, i) for i in range(spec.n_test_good)]
        for defect in DEFECTS[cat]:
            jobs += [(cat, "test", defect, i) for i in range(spec.n_per_defect)]
    for cat, split, defect, i in tqdm(jobs, desc="generating built-in dataset", disable=not progress):
        # one independent stream per image: any subset regenerates identically
        rng = np.random.default_rng([spec.seed, MVTEC_CATEGORIES.index(cat), int(split == "test"),
                                     sum(map(ord, defect or "good")), i])
        img, mask = render_image(cat, rng, spec.size, defect, spec.defect_scale, spec.difficulty)
        folder = root / cat / split / (defect or "good")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:03d}.png")
        if mask is not None:
            gt = root / cat / "ground_truth" / defect
            gt.mkdir(parents=True, exist_ok=True)
            Image.fromarray((mask * 255).astype(np.uint8)).save(gt / f"{i:03d}_mask.png")
    (root / info_path.name).write_text(json.dumps(wanted, indent=2))
    return _move_into_place(root, final, wanted)


def _move_into_place(built: Path, final: Path, wanted: dict) -> Path:
    """Rename the finished tree ``built`` to ``final``. Another process that finished the same spec first
    wins (``built`` is discarded); a tree of another spec is moved aside and removed."""
    info = final / layout.BUILTIN_RECORD
    if info.exists() and json.loads(info.read_text()) == wanted:
        shutil.rmtree(built)
        return final
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
        final.replace(old / final.name)
        shutil.rmtree(old)
    try:
        built.replace(final)
    except OSError:                       # a concurrent run renamed its tree into place a moment before
        if not (info.exists() and json.loads(info.read_text()) == wanted):
            raise
        shutil.rmtree(built)
    return final


def builtin_root(runs_dir: str | os.PathLike) -> Path:
    """Where the built-in dataset lives: ``RUNS_DIR/builtin_mvtec``."""
    return Path(runs_dir) / layout.BUILTIN_DIR


def difficulty_table(manifest: pd.DataFrame, root: str | os.PathLike) -> pd.DataFrame:
    """One row per defect type of the built-in data: its primitive, its level and the share of the image its
    masks cover (mean over the images), hardest last within each category. ``manifest``: notebook 00's scan."""
    bad = manifest[(manifest["label"] == 1) & (manifest["mask_path"].fillna("") != "")]
    area = bad.assign(area=[float(np.mean(np.asarray(Image.open(Path(root) / m)) > 0)) for m in bad["mask_path"]])
    table = area.groupby(["category", "defect_type"], sort=True).agg(images=("area", "size"), area=("area", "mean"))
    table = table.reset_index()
    table["primitive"] = [DEFECTS.get(c, {}).get(d, "?") for c, d in zip(table["category"], table["defect_type"])]
    table["level"] = [DIFFICULTY.get(c, {}).get(d, "?") for c, d in zip(table["category"], table["defect_type"])]
    table["defect area (% of image)"] = (100 * table.pop("area")).round(2)
    order = {name: i for i, name in enumerate(LEVELS)}
    table = table.sort_values(["category", "level"], key=lambda s: s.map(order) if s.name == "level" else s)
    return table.reset_index(drop=True)
