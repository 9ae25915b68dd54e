"""What ``predict`` and the inspector page are given: files and folders, each checked before anything is decoded.

:func:`collect_inputs` finds image files (links are not followed); :func:`vet` keeps the files that can be scored
(:func:`helpers.data.images.inspect_image`: header size first, then a full decode) and, for a per-category model,
that have a category; everything else is listed with its reason. :func:`batches` groups what is left into the
batches a model takes (a per-category model's batch holds one category, and is capped so its distances fit in
memory).
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..artefacts.card import ModelCard
from ..data.images import IMAGE_EXTENSIONS, inspect_image
from ..data.scan import MVTEC_CATEGORIES
from ..errors import ModelFolderError
from ..models import kinds

__all__ = ["Problem", "collect_inputs", "category_of", "vet", "batches", "DISTANCE_FLOATS", "batch_limit"]

#: One entry that was not scored: its path and why.
Problem = dict[str, str]


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Problem]]:
    """Image files named or found in folders (recursively, sorted; links are not followed), and every entry that
    cannot be scored with its reason."""
    found: list[Path] = []
    problems: list[Problem] = []
    for item in map(Path, inputs):
        if item.is_dir() and not item.is_symlink():
            for folder, dirs, names in os.walk(item, followlinks=False):
                dirs.sort()
                for name in sorted(names):
                    path = Path(folder) / name
                    if path.is_symlink():
                        problems.append({"path": str(path), "problem": f"a link (to {os.readlink(path)}), not followed"})
                    elif path.suffix.lower() in IMAGE_EXTENSIONS:
                        found.append(path)
                    elif not name.startswith("."):
                        problems.append({"path": str(path), "problem": f"not an image file (extension "
                                                                       f"{path.suffix or '(none)'!r})"})
        elif item.is_symlink():
            problems.append({"path": str(item), "problem": f"a link (to {os.readlink(item)}), not followed"})
        elif item.exists():
            found.append(item)
        else:
            problems.append({"path": str(item), "problem": "no such file or folder"})
    return found, problems


def category_of(path: str | os.PathLike, known: Sequence[str] | None = None) -> str:
    """The category named in the path (the innermost folder that is one of ``known``, default the MVTec
    categories), or '' when none is."""
    names = set(known or MVTEC_CATEGORIES)
    for part in reversed(Path(path).parts[:-1]):
        if part in names:
            return part
    return ""


def vet(paths: Sequence[Path], problems: list[Problem], card: ModelCard, category: str | None = None
        ) -> tuple[list[Path], list[str]]:
    """The files that can be scored, with each one's category ('' for models without one); every other file goes to
    ``problems`` with its reason. A per-category model (PatchCore) needs each image's category: from its path (a
    folder named after one) or ``category``, which applies to every file. A model of one category (one product) uses
    its one bank for every file whose path names no other MVTec AD category."""
    banks = list(card.categories) if kinds.get(card.kind).per_category else None
    if category is not None and banks is not None and category not in banks:
        raise ModelFolderError(f"--category {category!r}: this {card.approach} has banks for {', '.join(banks)}")
    good, cats = [], []
    for path in paths:
        info = inspect_image(path)
        cat = category or (category_of(path, banks) if banks is not None else category_of(path))
        if not cat and banks is not None and len(banks) == 1 and not category_of(path):
            cat = banks[0]
        if not info["ok"]:
            problems.append({"path": str(path), "problem": info["reason"]})
        elif banks is not None and not cat:
            named = category_of(path)
            problems.append({"path": str(path), "problem": (
                f"no memory bank for category {named!r}: this model was fitted on {', '.join(banks)}" if named else
                f"no category: this model has a memory bank per category ({', '.join(banks)}); put the image in a "
                "folder named after its category or pass --category")})
        else:
            good.append(path)
            cats.append(cat)
    return good, cats


#: A per-category model's distance matrix per batch (patches × bank rows, float32) stays under this many floats
#: (512 MiB).
DISTANCE_FLOATS = 2**27


def batch_limit(card: ModelCard) -> int:
    """The largest batch whose patch-to-bank distances fit :data:`DISTANCE_FLOATS` (the full profile's banks hold
    tens of thousands of rows: a batch of 32 would need GBs); unbounded for models without banks."""
    if not card.bank_rows:
        return 1 << 30
    patches = math.ceil(card.input.image_size / 8) ** 2           # the stride-8 patch grid
    return max(1, DISTANCE_FLOATS // (patches * max(card.bank_rows.values())))


def batches(card: ModelCard, paths: Sequence, batch_size: int, categories: Sequence[str] | None = None
            ) -> Iterator[tuple[list, int | None]]:
    """``(chunk of paths, category index or None)``: a per-category model's batches hold one category each
    (``categories``: each path's; default: from the path, :func:`category_of`); other models' any images."""
    if not kinds.get(card.kind).per_category:
        for i in range(0, len(paths), batch_size):
            yield list(paths[i:i + batch_size]), None
        return
    names = list(card.categories)
    cats = list(categories) if categories is not None else [category_of(p, names) for p in paths]
    batch_size = min(batch_size, batch_limit(card))
    for index, name in enumerate(names):
        members = [p for p, c in zip(paths, cats) if c == name]
        for i in range(0, len(members), batch_size):
            yield members[i:i + batch_size], index
