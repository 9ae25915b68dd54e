"""One image file: decode it to RGB whatever its mode, check it before trusting it, hash its bytes.

:func:`inspect_image` reads the header first (a file that declares 12,000 px is refused before a pixel is
decoded), then decodes every pixel; it says in words why a file is excluded. Scanning (:mod:`.scan`), ``predict``
and the inspector page check every file with it. Masks are binarised by :func:`binarise_mask` and judged by
:func:`judge_mask`.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

__all__ = ["IMAGE_EXTENSIONS", "SYSTEM_FILES", "MIN_FILE_BYTES", "MAX_FILE_BYTES", "MIN_SIDE", "MAX_SIDE", "NATIVE_MODES",
           "CONVERTIBLE_MODES", "load_rgb", "load_mask", "binarise_mask", "judge_mask", "content_hash", "inspect_image"]

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must fail, not decode half-grey

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
SYSTEM_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".directory"})
MIN_FILE_BYTES = 67           # the smallest valid PNG is 67 bytes
MAX_FILE_BYTES = 64 << 20     # MVTec's largest PNG is ~1.5 MB; 64 MB is certainly not an MVTec image
MIN_SIDE = 32
MAX_SIDE = 8192

#: Modes used as they are (L is converted to RGB at load, as MVTec's grayscale categories need).
NATIVE_MODES = frozenset({"RGB", "L"})

#: Modes converted to 8-bit RGB at load, kept and listed in the warnings.
CONVERTIBLE_MODES = {
    "RGBA": "RGBA converted to RGB (alpha channel dropped)",
    "LA": "LA converted to RGB (alpha channel dropped)",
    "P": "palette image converted to RGB",
    "1": "1-bit image converted to RGB",
    "I;16": "16-bit grayscale rescaled to 8 bits and converted to RGB",
    "I;16B": "16-bit grayscale rescaled to 8 bits and converted to RGB",
    "I;16L": "16-bit grayscale rescaled to 8 bits and converted to RGB",
    "I": "32-bit integer image rescaled to 8 bits and converted to RGB",
    "CMYK": "CMYK converted to RGB",
}


def _to_uint8_rgb(img: Image.Image) -> Image.Image:
    """Convert any supported mode to 8-bit RGB (16/32-bit integer images are rescaled, not clipped)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image as an ``H×W×3`` uint8 array, whatever its mode (grayscale → 3 channels)."""
    with Image.open(path) as img:
        img.load()
        return np.asarray(_to_uint8_rgb(img))


def load_mask(path: str | os.PathLike | None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A ground-truth mask as a ``H×W`` uint8 array of 0/1; zeros of ``shape`` when ``path`` is empty."""
    if not path or (isinstance(path, float) and np.isnan(path)):
        if shape is None:
            raise ValueError("load_mask needs a shape when there is no mask path")
        return np.zeros(shape, dtype=np.uint8)
    with Image.open(path) as img:
        return binarise_mask(np.asarray(img.convert("L")))


def binarise_mask(values: np.ndarray) -> np.ndarray:
    """0/1 uint8 from a mask's grey levels: ``> 127`` for 0/255 masks, ``> 0`` for masks stored as 0/1."""
    return (values > (0 if values.max(initial=0) <= 1 else 127)).astype(np.uint8)


def judge_mask(values: np.ndarray) -> tuple[bool, str]:
    """Whether a defect mask's grey levels can be right: ``(usable, note)``; the note says what was seen.

    Unusable: every pixel 0 (empty), or every pixel defective (constant). Usable with a note: 0/1 values
    (a common export; read as binary) or more than two grey levels (thresholded at 128).
    """
    levels = np.unique(values)
    binary = binarise_mask(values)
    if levels.max(initial=0) == 0 or not binary.any():
        return False, (f"its mask is empty (no pixel marked defective; grey levels {_levels(levels)}) although the "
                       "image is in a defect folder: left out of pixel-level scores")
    if binary.all():
        return False, (f"its mask marks every pixel defective (constant, grey levels {_levels(levels)}): "
                       "left out of pixel-level scores")
    if set(levels.tolist()) <= {0, 1}:
        return True, "its mask is stored as 0/1 (not 0/255): read as binary, 1 = defective"
    if not set(levels.tolist()) <= {0, 255}:
        return True, f"its mask has {len(levels)} grey levels, not 0/255: thresholded at 128"
    return True, ""


def _levels(levels: np.ndarray) -> str:
    shown = ", ".join(map(str, levels[:6].tolist()))
    return shown + (", ..." if len(levels) > 6 else "")


def content_hash(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes (the leakage check compares these)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _size_problem(width: int, height: int) -> str:
    if min(width, height) < MIN_SIDE:
        return f"image too small ({width}×{height} px; minimum {MIN_SIDE} px per side)"
    if max(width, height) > MAX_SIDE:
        return f"image too large ({width}×{height} px; maximum {MAX_SIDE} px per side)"
    return ""

#: File signatures named in the reason for a file that is not an image (its bytes are never copied out).
_SIGNATURES = ((b"PK\x03\x04", "a ZIP archive"), (b"\xfd7zXZ", "an XZ archive"), (b"\x1f\x8b", "a gzip file"),
               (b"%PDF", "a PDF"), (b"<", "HTML/XML text"), (b"{", "JSON text"), (b"\x89PNG", "a damaged PNG"),
               (b"\xff\xd8", "a damaged JPEG"), (b"\x7fELF", "an executable (ELF)"), (b"#!", "a script"))


def _looks_like(head: bytes) -> str:
    """What a file's first bytes suggest, in words (never the bytes themselves)."""
    for magic, what in _SIGNATURES:
        if head.lstrip()[:len(magic)] == magic:
            return f"its content looks like {what}"
    printable = head and all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return "its content looks like plain text" if printable else "unrecognised binary content"


def inspect_image(path: str | os.PathLike) -> dict:
    """Validate one image file: extension, byte size, full decode, dimensions, mode.

    Returns a dict with ``ok`` and either ``reason`` (why it is excluded) or ``width``, ``height``,
    ``mode``, ``content_hash`` and ``note`` (non-empty when it is kept after a conversion).
    """
    path = Path(path)
    name = path.name
    if name.lower() in SYSTEM_FILES or name.startswith("._"):
        return {"ok": False, "reason": f"system metadata file ({name}), not an image"}
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        return {"ok": False, "reason": f"unsupported extension {ext or '(none)'!r}; expected one of "
                                       f"{', '.join(sorted(IMAGE_EXTENSIONS))}"}
    size = path.lstat().st_size
    if size == 0:
        return {"ok": False, "reason": "empty file (0 bytes)"}
    if size < MIN_FILE_BYTES:
        return {"ok": False, "reason": f"file too small to be an image ({size} bytes < {MIN_FILE_BYTES})"}
    if size > MAX_FILE_BYTES:
        return {"ok": False, "reason": f"file too large ({size / 2**20:.0f} MiB > {MAX_FILE_BYTES >> 20} MiB)"}
    try:
        with Image.open(path) as img:     # reads the header only: the size is known before any pixel is decoded
            fmt, width, height, mode = img.format, img.width, img.height, img.mode
            if problem := _size_problem(width, height):
                return {"ok": False, "reason": problem + " (from the header; not decoded)"}
            img.verify()  # checksums and structure (PNG CRCs)
        with Image.open(path) as img:
            img.load()    # full decode of every pixel: catches truncated data the header hides
    except PermissionError as err:
        return {"ok": False, "reason": f"file cannot be read ({err.strerror or 'permission denied'})"}
    except UnidentifiedImageError:
        with open(path, "rb") as fh:
            head = fh.read(16)
        return {"ok": False, "reason": f"not a decodable image although named {ext} ({_looks_like(head)})"}
    except Image.DecompressionBombError as err:   # Pillow refuses at open past twice its pixel limit
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        declared = f"{int(pixels.group(1)):,} px" if pixels else "more than Pillow's limit"
        return {"ok": False, "reason": f"image too large ({declared} declared in its header; not decoded)"}
    except (OSError, SyntaxError, ValueError) as err:
        return {"ok": False, "reason": f"corrupt or truncated image data ({type(err).__name__}: {str(err)[:200]})"}
    note = ""
    if mode not in NATIVE_MODES:
        if mode not in CONVERTIBLE_MODES:
            return {"ok": False, "reason": f"unsupported image mode {mode!r} ({fmt})"}
        note = f"mode {mode}: {CONVERTIBLE_MODES[mode]}"
    return {"ok": True, "width": width, "height": height, "mode": mode,
            "content_hash": content_hash(path), "note": note}
