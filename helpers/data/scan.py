"""Scan a dataset tree into a manifest, validating every file; nothing is dropped silently.

Two layouts are read. MVTec AD's (any category names)::

    <root>/<category>/train/good/NNN.png
    <root>/<category>/test/<good|defect_type>/NNN.png
    <root>/<category>/ground_truth/<defect_type>/NNN_mask.png

and a plain one, for a practitioner's own sorted photos (no train/test folders: the series splits them; a root
that holds ``good/`` itself is one product, named after the folder)::

    <root>/<product>/good/<any name>.<png|jpg|jpeg|bmp|tif|tiff>
    <root>/<product>/<defect_type>/<stem>.<ext>
    <root>/<product>/masks/<defect_type>/<stem>_mask.<ext>      (optional; or ground_truth/ as in MVTec AD)

Images of the plain layout have ``mvtec_split == "unsplit"`` (:data:`UNSPLIT`): the MVTec standard protocol, which
needs MVTec's own train/test folders, leaves them out.

:func:`scan_mvtec` returns three tables:

- ``manifest``: one row per usable image (:data:`MANIFEST_COLUMNS`), paths relative to the root;
- ``quarantine``: every excluded file with its reason (``path``, ``reason``);
- ``warnings``: kept files that deserve a look (converted modes, defective images without a mask,
  empty folders, a category without ``train/``, duplicate contents, orphan masks).
"""
from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from ..core.env import io_workers
from ..core.files import is_valid_utf8_name, printable_name
from ..errors import DatasetLayoutError
from .images import IMAGE_EXTENSIONS, SYSTEM_FILES, inspect_image, judge_mask

__all__ = ["MVTEC_CATEGORIES", "TEXTURE_CATEGORIES", "GRAYSCALE_CATEGORIES", "MANIFEST_COLUMNS", "QUARANTINE_COLUMNS",
           "WARNING_COLUMNS", "ScanResult", "LAYOUTS", "UNSPLIT", "MASK_FOLDERS", "detect_layout", "looks_like_mvtec_root",
           "looks_like_dataset_root", "describe_layout_problem", "scan_mvtec", "read_manifest",
           "category_counts"]

MVTEC_CATEGORIES: tuple[str, ...] = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill",
    "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)
TEXTURE_CATEGORIES = frozenset({"carpet", "grid", "leather", "tile", "wood"})
#: MVTec's grayscale categories: stored as mode L, converted to RGB at load.
GRAYSCALE_CATEGORIES = frozenset({"grid", "screw", "zipper"})


#: The layouts :func:`scan_mvtec` reads: MVTec AD's, and plain ``<product>/good|<defect_type>/`` folders.
LAYOUTS = ("mvtec", "folders")
#: ``mvtec_split`` of an image in the plain layout: no MVTec train/test folder; the series' split decides.
UNSPLIT = "unsplit"
#: Folders of a plain-layout product that hold masks, not images (``<folder>/<defect_type>/<stem>_mask.<ext>``).
MASK_FOLDERS = ("masks", "ground_truth")

MANIFEST_COLUMNS = ["path", "category", "mvtec_split", "defect_type", "label", "mask_path",
                    "width", "height", "mode", "content_hash"]
QUARANTINE_COLUMNS = ["path", "reason"]
WARNING_COLUMNS = ["path", "warning"]


@dataclass
class ScanResult:
    """What :func:`scan_mvtec` found. Paths in all three tables are relative to ``root``."""

    root: Path
    manifest: pd.DataFrame
    quarantine: pd.DataFrame
    warnings: pd.DataFrame

    def summary(self) -> str:
        m = self.manifest
        return (f"{len(m)} usable images in {m['category'].nunique() if len(m) else 0} categories "
                f"({int((m['label'] == 0).sum()) if len(m) else 0} good, "
                f"{int((m['label'] == 1).sum()) if len(m) else 0} defective); "
                f"{len(self.quarantine)} quarantined; {len(self.warnings)} warnings")


# --------------------------------------------------------------------------------------------------
# Single files
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# The tree
# --------------------------------------------------------------------------------------------------
def _rel(path: str | os.PathLike, root: Path) -> str:
    """``path`` relative to ``root``, POSIX separators, any non-UTF-8 byte escaped (safe in a CSV)."""
    return printable_name(Path(os.path.relpath(path, root)).as_posix())


def _is_real_dir(path: Path) -> bool:
    """A folder that is not a link (the scan never follows links)."""
    return path.is_dir() and not path.is_symlink()


def _category_dirs(root: Path) -> list[Path]:
    try:
        children = sorted(root.iterdir())
    except OSError:
        return []
    return [p for p in children if _is_real_dir(p) and is_valid_utf8_name(p.name)
            and (_is_real_dir(p / "train") or _is_real_dir(p / "test"))]


def looks_like_mvtec_root(root: str | os.PathLike) -> bool:
    """True when ``root`` holds at least one ``<category>/{train,test}/`` folder (links are not followed)."""
    root = Path(root)
    return root.is_dir() and bool(_category_dirs(root))


def _product_dirs(root: Path) -> list[Path]:
    """The plain layout's products: ``root`` itself when it holds ``good/``, else its children that do. A folder
    with ``train/`` or ``test/`` is MVTec-shaped (a single category: :func:`describe_layout_problem` says so)."""
    if _is_real_dir(root / "train") or _is_real_dir(root / "test"):
        return []
    if _is_real_dir(root / "good"):
        return [root]
    try:
        children = sorted(root.iterdir())
    except OSError:
        return []
    return [p for p in children if _is_real_dir(p) and is_valid_utf8_name(p.name) and _is_real_dir(p / "good")]


def detect_layout(root: str | os.PathLike) -> str | None:
    """``"mvtec"``, ``"folders"`` (the plain layout) or None (neither: :func:`describe_layout_problem` says why)."""
    root = Path(root)
    if not root.is_dir():
        return None
    if _category_dirs(root):
        return "mvtec"
    return "folders" if _product_dirs(root) else None


def looks_like_dataset_root(root: str | os.PathLike) -> bool:
    """True when ``root`` is in one of the :data:`LAYOUTS` the scan reads."""
    return detect_layout(root) is not None


def describe_layout_problem(root: Path) -> str:
    """A message saying what an MVTec root should hold and what ``root`` holds instead."""
    expected = ("Expected an MVTec AD root: <root>/<category>/train/good/*.png, "
                "<root>/<category>/test/<good|defect_type>/*.png and "
                "<root>/<category>/ground_truth/<defect_type>/*_mask.png, with categories such as "
                f"{', '.join(MVTEC_CATEGORIES[:4])}, ...; or your own photos sorted into "
                "<root>/<product>/good/ and <root>/<product>/<defect_type>/ (masks optional, in "
                "<root>/<product>/masks/<defect_type>/<stem>_mask.png).")
    if not root.exists():
        return f"Dataset root {root} does not exist. {expected}"
    if not root.is_dir():
        return f"Dataset root {root} is a file, not a folder. {expected}"
    try:
        entries = sorted(root.iterdir())
    except OSError as err:
        return f"Dataset root {root} cannot be read ({err.strerror or err}). {expected}"
    shown = [printable_name(e.name) + ("/" if e.is_dir() else "") for e in entries[:20]]
    found = ", ".join(shown) + (f", ... ({len(entries)} entries)" if len(entries) > 20 else "")
    hints = []
    if (root / "train").is_dir() or (root / "test").is_dir():
        hints.append(f"{root} looks like a single category folder: point at its parent instead.")
    for child in entries:
        if child.is_dir() and looks_like_mvtec_root(child):
            hints.append(f"{child} looks like an MVTec root: point there instead.")
            break
    links = [printable_name(e.name) for e in entries if e.is_symlink()]
    if links:
        hints.append(f"Links are not followed ({', '.join(links[:3])}): copy the folders in, or point at their targets.")
    archives = [e.name for e in entries if e.name.endswith((".tar.xz", ".tar.gz", ".zip"))]
    if archives:
        hints.append(f"Archives found ({', '.join(archives[:3])}): extract them first "
                     "(helpers.data.download.extract_archives).")
    return (f"{root} is neither an MVTec AD root nor a folder of sorted photos. {expected} "
            f"Found: {found or 'an empty folder'}. " + " ".join(hints))


@dataclass
class _Findings:
    """What a scan has to report besides the manifest: (path, reason) and (path, warning) rows."""

    quarantine: list[tuple[str, str]]
    warnings: list[tuple[str, str]]


def _entries(folder: Path, root: Path, found: _Findings) -> list[os.DirEntry] | None:
    """The entries of ``folder`` sorted by name; None, with a quarantine row, when it cannot be read."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as err:
        found.quarantine.append((_rel(folder, root) + "/", f"folder cannot be read ({err.strerror or err}): "
                                                          "nothing in it was scanned"))
        return None


def _special_kind(entry: os.DirEntry) -> str:
    mode = entry.stat(follow_symlinks=False).st_mode
    for test, name in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _kind(entry: os.DirEntry, root: Path, found: _Findings) -> str | None:
    """``"dir"`` or ``"file"`` for what the scan reads; None (listed in the quarantine) for the rest:
    links (never followed: the scan never leaves the root, and never reads one file twice), pipes,
    devices, sockets, and names that are not valid UTF-8."""
    rel = _rel(entry.path, root)
    if entry.is_symlink():
        target = printable_name(os.readlink(entry.path))
        found.quarantine.append((rel, f"symbolic link (to {target}): not followed, so nothing outside the dataset "
                                      "root is read and no image is counted twice; put the file or folder "
                                      "itself here instead"))
        return None
    is_dir = entry.is_dir(follow_symlinks=False)
    if not is_valid_utf8_name(entry.name):
        found.quarantine.append((rel, "name is not valid UTF-8 (shown with \\x escapes): rename it; "
                                      + ("nothing in the folder was scanned" if is_dir else "not read")))
        return None
    if is_dir:
        return "dir"
    if entry.is_file(follow_symlinks=False):
        return "file"
    found.quarantine.append((rel, f"{_special_kind(entry)}, not a regular file: not read"))
    return None


def _walk(folder: Path, root: Path, found: _Findings) -> list[Path]:
    """Every regular file under ``folder`` (sorted); everything else under it is listed with its reason."""
    out: list[Path] = []
    for entry in _entries(folder, root, found) or []:
        kind = _kind(entry, root, found)
        if kind == "file":
            out.append(Path(entry.path))
        elif kind == "dir":
            out.extend(_walk(Path(entry.path), root, found))
    return out


def _check_root_entries(root: Path, category_dirs: list[Path], found: _Findings) -> None:
    """Entries at the root that are not categories: quarantined or warned about."""
    for entry in _entries(root, root, found) or []:
        kind = _kind(entry, root, found)
        if kind == "file":
            if entry.name.lower() in SYSTEM_FILES or entry.name.startswith("._"):
                found.quarantine.append((entry.name, f"system metadata file ({entry.name}), not an image"))
            elif Path(entry.name).suffix.lower() not in {".txt", ".md", ".json"}:  # LICENSE.txt, readme.txt
                found.warnings.append((entry.name, "file at the dataset root ignored (not inside a category)"))
        elif kind == "dir" and Path(entry.path) not in category_dirs:
            inside = _entries(Path(entry.path), root, found)
            if inside is not None:
                found.warnings.append((entry.name + "/",
                                       "folder ignored: neither a category (train/, test/) nor a product (good/)"
                                       if inside else "empty category folder (no train/ or test/): nothing to use"))


def _split_dirs(root: Path, cat_dir: Path, found: _Findings) -> dict[str, Path]:
    """The category's ``train/`` and ``test/`` folders that can be scanned, with warnings for missing ones."""
    category, out = cat_dir.name, {}
    for entry in _entries(cat_dir, root, found) or []:
        if entry.name in ("train", "test", "ground_truth") and _kind(entry, root, found) == "dir":
            out[entry.name] = Path(entry.path)
    if "train" not in out:
        found.warnings.append((category + "/", "no train/ folder: test images only; the MVTec standard "
                                               "protocol cannot fit a one-class model for this category"))
    if "test" not in out:
        found.warnings.append((category + "/", "no test/ folder: train images only"))
    return out


def _candidates(root: Path, cat_dir: Path, dirs: dict[str, Path], found: _Findings
                ) -> list[tuple[Path, str, str, str]]:
    """Every file of one category's ``train/`` and ``test/`` as (file, category, split, defect type)."""
    category, out = cat_dir.name, list[tuple[Path, str, str, str]]()
    if category not in MVTEC_CATEGORIES:
        found.warnings.append((category + "/", "not one of the 15 MVTec AD category names; kept"))
    for split in ("train", "test"):
        if split not in dirs:
            continue
        children = _entries(dirs[split], root, found)
        if children == []:
            found.warnings.append((f"{category}/{split}/", "empty folder"))
        for child in children or []:
            kind = _kind(child, root, found)
            if kind == "file":
                found.quarantine.append((_rel(child.path, root),
                                         f"file directly in {split}/, outside any good/ or <defect_type>/ folder"))
            elif kind == "dir":
                files = _walk(Path(child.path), root, found)
                if not files:
                    found.warnings.append((_rel(child.path, root) + "/", "empty folder"))
                out.extend((f, category, split, child.name) for f in files)
    return out


def _paired_mask(root: Path, info: dict, rel: str, found: _Findings, masks: dict[Path, bool]) -> Path | None:
    """The usable mask of a defective image (None, with a warning, when it is missing or unusable).

    ``masks`` holds every regular file found under the categories' mask folders (value: used yet); the mask of
    ``<defect_type>/<stem>.<ext>`` is ``<mask folder>/<defect_type>/<stem>_mask.<png or any image extension>``."""
    stem, defect = info["file"].stem, info["defect_type"]
    names = dict.fromkeys(f"{stem}_mask{ext}" for ext in (".png", *sorted(IMAGE_EXTENSIONS)))   # .png first
    mask = next((c for d in info["mask_dirs"] for n in names if (c := d / defect / n) in masks), None)
    if mask is None:
        found.warnings.append((rel, "defective image without a ground-truth mask: kept for image-level "
                                    "scores, left out of pixel-level scores"))
        return None
    masks[mask] = True
    mask_info = inspect_image(mask)
    if not mask_info["ok"]:
        found.warnings.append((rel, f"its mask is unusable ({mask_info['reason']}): kept for "
                                    "image-level scores, left out of pixel-level scores"))
        found.quarantine.append((_rel(mask, root), mask_info["reason"]))
        return None
    with Image.open(mask) as img:
        usable, note = judge_mask(np.asarray(img.convert("L")))
    if note:
        found.warnings.append((rel, note))
    if not usable:
        return None
    if (mask_info["width"], mask_info["height"]) != (info["width"], info["height"]):
        found.warnings.append((rel, f"mask size {mask_info['width']}×{mask_info['height']} differs "
                                    f"from the image's {info['width']}×{info['height']}: it is "
                                    "resized with the image"))
    return mask


def _plain_candidates(root: Path, product: Path, found: _Findings) -> tuple[list[tuple[Path, str, str, str]], list[Path]]:
    """The plain layout: every file under ``<product>/good/`` and ``<product>/<defect_type>/`` as (file, product,
    :data:`UNSPLIT`, defect type), and the product's mask folders."""
    name = product.name            # the root itself when it holds good/: one product named after the folder
    out, mask_dirs = list[tuple[Path, str, str, str]](), []
    for child in _entries(product, root, found) or []:
        kind = _kind(child, root, found)
        if kind == "file":
            if child.name.lower() in SYSTEM_FILES or child.name.startswith("._"):
                found.quarantine.append((_rel(child.path, root), f"system metadata file ({child.name}), not an image"))
            else:
                found.quarantine.append((_rel(child.path, root), "file directly in the product folder, outside any "
                                                                 "good/ or <defect_type>/ folder: not used"))
        elif kind == "dir" and child.name in MASK_FOLDERS:
            mask_dirs.append(Path(child.path))
        elif kind == "dir":
            files = _walk(Path(child.path), root, found)
            if not files:
                found.warnings.append((_rel(child.path, root) + "/", "empty folder"))
            out.extend((f, name, UNSPLIT, child.name) for f in files)
    return out, mask_dirs


def _manifest_row(root: Path, info: dict, found: _Findings, masks: dict[Path, bool]) -> dict | None:
    """One manifest row for a checked file (None when it is quarantined)."""
    rel = _rel(info["file"], root)
    if not info["ok"]:
        found.quarantine.append((rel, info["reason"]))
        return None
    if info["note"]:
        found.warnings.append((rel, info["note"] + "; kept"))
    label = 0 if info["defect_type"] == "good" else 1
    mask = _paired_mask(root, info, rel, found, masks) if label == 1 else None
    return {"path": rel, "category": info["category"], "mvtec_split": info["mvtec_split"],
            "defect_type": info["defect_type"], "label": label,
            "mask_path": _rel(mask, root) if mask is not None else "",
            "width": info["width"], "height": info["height"], "mode": info["mode"],
            "content_hash": info["content_hash"]}


def _check_all(candidates: list[tuple[Path, str, str, str]], workers: int | None, progress: bool) -> list[dict]:
    """:func:`inspect_image` of every candidate, in threads, in order."""
    def check(item: tuple[Path, str, str, str]) -> dict:
        f, category, split, defect = item
        info = inspect_image(f)
        info.update(file=f, category=category, mvtec_split=split, defect_type=defect)
        return info

    with ThreadPoolExecutor(max_workers=workers or io_workers()) as pool:
        return list(tqdm(pool.map(check, candidates), total=len(candidates),
                         desc="validating images", disable=not progress))


def _duplicate_warnings(manifest: pd.DataFrame) -> list[tuple[str, str]]:
    """A warning for every file whose bytes are identical to another's."""
    out: list[tuple[str, str]] = []
    for _, group in manifest[manifest.duplicated("content_hash", keep=False)].groupby("content_hash"):
        others = ", ".join(group["path"])
        out.extend((p, f"identical bytes to other files ({others}); the split keeps them together")
                   for p in group["path"])
    return out


def scan_mvtec(root: str | os.PathLike, workers: int | None = None, progress: bool = True) -> ScanResult:
    """Scan and validate a dataset tree in either of the :data:`LAYOUTS` (the module docstring shows both).

    Every entry under ``<category>/train``, ``<category>/test`` and ``<category>/ground_truth`` ends in the
    manifest, the quarantine (with its reason) or the warnings; masks are paired by name
    (``NNN.png`` ↔ ``ground_truth/<defect>/NNN_mask.png``) and their content is checked. Links are never
    followed (listed with their target), nor are pipes, devices or unreadable folders read: nothing from
    outside ``root`` enters the manifest, and no file's bytes are copied into the tables.

    Raises:
        DatasetLayoutError: ``root`` is in neither layout (the message lists what was found).
    """
    root = Path(root).expanduser().resolve()
    layout = detect_layout(root)
    if layout is None:
        raise DatasetLayoutError(describe_layout_problem(root))
    found = _Findings([], [])
    candidates: list[tuple[Path, str, str, str]] = []
    masks: dict[Path, bool] = {}
    mask_dirs: dict[str, list[Path]] = {}
    if layout == "mvtec":
        category_dirs = _category_dirs(root)
        _check_root_entries(root, category_dirs, found)
        for cat_dir in category_dirs:
            dirs = _split_dirs(root, cat_dir, found)
            candidates += _candidates(root, cat_dir, dirs, found)
            mask_dirs[cat_dir.name] = [dirs["ground_truth"]] if "ground_truth" in dirs else []
    else:
        products = _product_dirs(root)
        if products != [root]:
            _check_root_entries(root, products, found)
        for product in products:
            files, mask_dirs[product.name] = _plain_candidates(root, product, found)
            candidates += files
    for folders in mask_dirs.values():
        for folder in folders:
            masks.update(dict.fromkeys(_walk(folder, root, found), False))
    infos = _check_all(candidates, workers, progress)
    for info in infos:
        info["mask_dirs"] = mask_dirs.get(info["category"], [])
    rows = [row for info in infos if (row := _manifest_row(root, info, found, masks)) is not None]
    found.warnings.extend((_rel(mask, root), "mask without a matching image (unused)")
                          for mask, used in sorted(masks.items()) if not used)
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    if len(manifest):
        manifest = manifest.sort_values("path", ignore_index=True)
        found.warnings.extend(_duplicate_warnings(manifest))
    return ScanResult(root=root, manifest=manifest,
                      quarantine=pd.DataFrame(found.quarantine, columns=QUARANTINE_COLUMNS),
                      warnings=pd.DataFrame(found.warnings, columns=WARNING_COLUMNS))


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``manifest.csv`` written by :func:`helpers.data.prepare.prepare` (empty mask paths as "")."""
    df = pd.read_csv(path, keep_default_na=False, dtype={"mask_path": str, "content_hash": str})
    missing = set(MANIFEST_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path} is not a manifest: missing columns {sorted(missing)}")
    return df


def category_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per category: good/defective in MVTec's train and test folders, and defect types."""
    table = (manifest.assign(kind=manifest["mvtec_split"] + "/" + manifest["label"].map({0: "good", 1: "defective"}))
             .pivot_table(index="category", columns="kind", values="path", aggfunc="count", fill_value=0))
    table["total"] = table.sum(axis=1)
    table["defect_types"] = manifest[manifest["label"] == 1].groupby("category")["defect_type"].nunique()
    table["with_mask"] = manifest[manifest["mask_path"] != ""].groupby("category")["path"].count()
    return table.fillna(0).astype(int)
