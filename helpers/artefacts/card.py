"""The model card: everything needed to score a new image the way a notebook scored ``test``, as a validated record.

A model notebook's folder (``RUNS_DIR/<notebook>/``) is the model folder: the saved model and ``model_card.json``.
A model folder is shared between people, so whoever sends it controls every byte of it: :func:`read_card` is the
one reader (``predict``, ``export``, ``serve`` and the notebooks use it) and checks the card **before any file is
loaded or any buffer is sized**. Every field is typed and bounded (sizes a model can use, finite thresholds, plain
names); every file it names is a plain name inside the folder; the model file's sha256 must match the card's. A
bad card raises :class:`helpers.errors.ModelCardError` naming the field, what it holds and what was expected.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core import files
from ..core.layout import CARD, notebook_of
from ..data.preprocessing import InputSpec
from ..errors import ModelCardError, ModelFolderError

__all__ = ["SCHEMA", "LIMITS", "MAX_IMAGE_SIZE", "MAX_CARD_BYTES", "CategoryThreshold", "Threshold", "Export",
           "Int8Quality", "ModelCard", "card_for", "read_card", "write_card", "sha256", "check_file_name"]

SCHEMA = 2
#: The largest input edge a card may declare (MVTec AD's images are 700–1024 px; the full profile uses 256).
MAX_IMAGE_SIZE = 1024
#: A card is a few KB; a bigger file is not read.
MAX_CARD_BYTES = 1 << 20
_MAX_CATEGORIES = 1000
_MAX_BANK_ROWS = 50_000_000
#: Scores and thresholds: probabilities, or distances of unit-norm-scale features (PatchCore's stay far below).
_MAX_SCORE = 1e6
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
LIMITS = ("The threshold was chosen on this dataset's val images: a new camera, lighting, background or "
          "resolution shifts the scores, so re-check the threshold on a few known-good images first.",
          "Only the defect types in the training data were seen; a new kind of defect may score as good.",
          "Scores are not calibrated probabilities of a defect on another product line.")


@dataclass(frozen=True)
class CategoryThreshold:
    """A per-category model's threshold and its category's val score range (scores become ``(s − t) / span + 0.5``)."""

    threshold: float
    min: float
    max: float
    note: str = ""

    @property
    def span(self) -> float:
        from ..evaluation.metrics import category_span

        return category_span(self.min, self.max)


@dataclass(frozen=True)
class Threshold:
    """The decision threshold, chosen on ``val``: a score at or above it is "defective"."""

    value: float
    method: str
    chosen_on: str = "val"
    per_category: dict[str, CategoryThreshold] | None = None


@dataclass(frozen=True)
class Int8Quality:
    """What INT8 cost on the folder's test images (``python -m helpers export --int8``)."""

    test_roc_auc_fp32: float | None
    test_roc_auc_int8: float | None
    change: float | None
    test_images: int
    decisions_changed: int
    within_budget: bool | None
    budget: float


@dataclass(frozen=True)
class Export:
    """An exported file of the folder and how it was made."""

    file: str
    sha256: str
    exporter: str
    data_file: str | None = None
    data_sha256: str | None = None
    calibrated_on: str | None = None
    quality: Int8Quality | None = None


@dataclass(frozen=True)
class ModelCard:
    """One model folder's card (``model_card.json``)."""

    kind: str
    approach: str
    notebook: str
    framework: str
    model_file: str
    model_sha256: str
    input: InputSpec
    threshold: Threshold
    #: the category names: the Keras model's category head, or PatchCore's banks (sorted); empty otherwise
    categories: tuple[str, ...] = ()
    #: PatchCore: each bank's rows (they bound the batch size)
    bank_rows: dict[str, int] | None = None
    backbone: str | None = None
    weights: str | None = None
    test_metrics: dict[str, float | None] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    profile: str = ""
    limits: tuple[str, ...] = LIMITS
    onnx: Export | None = None
    int8: Export | None = None
    schema: int = SCHEMA

    def with_export(self, name: str, export: Export | None) -> ModelCard:
        """This card with its ``onnx`` or ``int8`` entry replaced."""
        if name == "onnx":
            return replace(self, onnx=export)
        if name == "int8":
            return replace(self, int8=export)
        raise ValueError(f"a card records the exports 'onnx' and 'int8', not {name!r}")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["input"] = self.input.as_dict()
        return out


def sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (read in blocks)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file_name(name: Any, where: str) -> str:
    """A file a card names must be a plain name in the model folder: no folder part, no ``..``, no link target."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ModelCardError(f"field {where!r} is {_show(name)}; expected a plain file name inside the model folder "
                             "(letters, digits, '_', '.', '-'; no folder part)")
    return name


def card_for(run: Any, kind: str, model_file: str, spec: InputSpec, categories: tuple[str, ...] = (),
             bank_rows: dict[str, int] | None = None, backbone: str | None = None, weights: str | None = None) -> ModelCard:
    """The card of a scored run's model (:class:`helpers.artefacts.scored.ScoredRun`), saved as ``model_file`` in
    the run's folder: its threshold (per category when the run chose one per category), its test metrics and the
    data and code provenance of its ``metrics.json``."""
    record = run.record
    per = {c: CategoryThreshold(float(p.threshold), float(p.min), float(p.max), p.note)
           for c, p in record.threshold_per_category().items()
           if p.threshold is not None and p.min is not None and p.max is not None} or None
    metrics = {k: (None if v is None else float(v)) for k, v in record.metrics.items() if k in _METRICS}
    return ModelCard(kind=kind, approach=run.approach, notebook=notebook_of(run.stem), framework=_framework(kind),
                     model_file=model_file, model_sha256=sha256(Path(run.out_dir) / model_file), input=spec,
                     threshold=Threshold(float(run.threshold), run.threshold_method, "val", per),
                     categories=tuple(categories), bank_rows=bank_rows, backbone=backbone, weights=weights,
                     test_metrics=metrics, data=record.data.model_dump(exclude_none=True), code=dict(record.code),
                     device=dict(record.device), profile=record.profile)


def _framework(kind: str) -> str:
    from ..models.kinds import get

    return get(kind).framework


def write_card(folder: str | os.PathLike, card: ModelCard) -> Path:
    """Write ``model_card.json`` into ``folder`` (atomically), after checking it reads back."""
    _parse(json.loads(json.dumps(card.as_dict())), Path(folder) / CARD)
    return files.write_json(Path(folder) / CARD, card.as_dict(), allow_nan=False)


def read_card(model_dir: str | os.PathLike, check_model_file: bool = True) -> ModelCard:
    """The validated card of a model folder. Raises :class:`ModelFolderError` for a missing folder or card and
    :class:`ModelCardError` (naming the field) for a card that is not what this version writes; with
    ``check_model_file``, also when the model file is missing, not a plain file, or not the one the card hashed."""
    from ..models.kinds import deployable_notebooks

    folder, notebooks = Path(model_dir), deployable_notebooks()
    if not folder.is_dir():
        raise ModelFolderError(f"--model {folder}: not a folder. Expected a model folder written by a model notebook "
                               f"({notebooks}), holding the model and {CARD}.")
    path = folder / CARD
    if not path.is_file() or path.is_symlink():
        found = sorted(p.name for p in folder.iterdir())[:8]
        raise ModelFolderError(f"{folder}: no {CARD} (found: {', '.join(found) or 'nothing'}). Run the model's "
                               f"notebook ({notebooks}) to the end: it writes the card beside the model.")
    if path.stat().st_size > MAX_CARD_BYTES:
        raise ModelCardError(f"{path}: {path.stat().st_size} bytes; a model card is a few KB (at most "
                             f"{MAX_CARD_BYTES} bytes are read)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (OSError, ValueError) as err:
        raise ModelCardError(f"{path}: not a readable model card ({type(err).__name__}: {str(err)[:200]}); run the "
                             "model's notebook again.") from None
    card = _parse(raw, path)
    if check_model_file:
        model = folder / card.model_file
        if model.is_symlink() or not model.exists():
            raise ModelFolderError(f"{folder}: the card's model_file {card.model_file!r} is not a file here.")
        if sha256(model) != card.model_sha256:
            raise ModelCardError(f"{model}: its sha256 is not the card's field 'model_sha256': the model file was "
                                 "changed or replaced after the card was written. Use the folder as its notebook wrote it.")
    return card


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a card may hold")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Fields:
    """Typed, bounded reads of a JSON object, each failure naming its field."""

    def __init__(self, raw: Any, where: str):
        if not isinstance(raw, dict):
            raise ModelCardError(f"field {where or 'the card'!r} is {_show(raw)}; expected an object")
        self.raw, self.where = raw, where

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, default: Any = ...) -> Any:
        if key not in self.raw:
            if default is ...:
                raise ModelCardError(f"field {self._name(key)!r} is missing")
            return default
        return self.raw[key]

    def fail(self, key: str, value: Any, expected: str) -> ModelCardError:
        return ModelCardError(f"field {self._name(key)!r} is {_show(value)}; expected {expected}")

    def integer(self, key: str, lo: int, hi: int, default: Any = ...) -> int:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(key, v, f"an integer from {lo} to {hi}")
        return v

    def number(self, key: str, lo: float = -math.inf, hi: float = math.inf, default: Any = ..., none: bool = False
               ) -> float | None:
        v = self.get(key, default)
        if v is None and none:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise self.fail(key, v, f"a finite number from {lo} to {hi}" + (" or null" if none else ""))
        return float(v)

    def text(self, key: str, max_len: int = 500, default: Any = ..., none: bool = False) -> str | None:
        v = self.get(key, default)
        if v is None and none:
            return None
        if not isinstance(v, str) or len(v) > max_len or any(ord(c) < 32 and c not in "\t\n" for c in v):
            raise self.fail(key, v, f"a string of at most {max_len} printable characters")
        return v

    def name(self, key: str, value: Any = ...) -> str:
        v = self.get(key) if value is ... else value
        if not isinstance(v, str) or not _NAME.match(v):
            raise self.fail(key, v, "a plain name (letters, digits, '_', '.', '-'; at most 128)")
        return v

    def sha(self, key: str, none: bool = False) -> str | None:
        v = self.get(key, None if none else ...)
        if v is None and none:
            return None
        if not isinstance(v, str) or not _SHA.match(v):
            raise self.fail(key, v, "a sha256 (64 lowercase hex digits)")
        return v

    def obj(self, key: str, default: Any = ...) -> Any:
        v = self.get(key, default)
        return None if v is None else _Fields(v, self._name(key))

    def plain(self, key: str, default: Any = ...) -> dict[str, Any]:
        """A free-form record (provenance): kept as it is, shown as text only, never used to load or size anything."""
        v = self.get(key, default)
        if not isinstance(v, dict) or len(json.dumps(v)) > 20_000:
            raise self.fail(key, v, "an object of at most 20,000 characters")
        return v


def _parse(raw: Any, path: Path) -> ModelCard:
    from ..models.kinds import KINDS

    try:
        f = _Fields(raw, "")
        schema = f.get("schema")
        if schema != SCHEMA:
            raise ModelCardError(f"field 'schema' is {_show(schema)}; this version reads schema {SCHEMA} cards (an older "
                                 "card: run the model's notebook again to write one)")
        kind = f.get("kind")
        if kind not in KINDS or not KINDS[kind].scored:
            raise f.fail("kind", kind, "one of " + ", ".join(k for k, v in KINDS.items() if v.scored))
        return _consistent(_card(f, kind))
    except ModelCardError as err:
        raise ModelCardError(f"{path}: {err}") from None


def _card(f: _Fields, kind: str) -> ModelCard:
    categories = _categories(f)
    bank_rows = None
    if f.get("bank_rows", None) is not None:
        rows = f.obj("bank_rows")
        bank_rows = {rows.name(c, c): rows.integer(c, 1, _MAX_BANK_ROWS) for c in rows.raw}
    return ModelCard(
        kind=kind, approach=str(f.text("approach", 200)), notebook=f.name("notebook"),
        framework=str(f.text("framework", 20)), model_file=check_file_name(f.get("model_file"), "model_file"),
        model_sha256=str(f.sha("model_sha256")), input=_input(f.obj("input")), threshold=_threshold(f.obj("threshold")),
        categories=categories, bank_rows=bank_rows, backbone=f.text("backbone", 64, None, none=True),
        weights=f.text("weights", 200, None, none=True), test_metrics=_metrics(f.obj("test_metrics", {})),
        data=f.plain("data", {}), code=f.plain("code", {}), device=f.plain("device", {}),
        profile=str(f.text("profile", 20, "")), limits=tuple(_texts(f, "limits")),
        onnx=_export(f.obj("onnx", None)), int8=_export(f.obj("int8", None)), schema=SCHEMA)


def _consistent(card: ModelCard) -> ModelCard:
    """The fields agree with each other and with the kind: a per-category model names its categories, a bank for
    each (no more, no fewer) and a threshold for each; other kinds have neither banks nor per-category thresholds."""
    from ..models.kinds import get

    kind = get(card.kind)
    if card.framework != kind.framework:
        raise ModelCardError(f"field 'framework' is {_show(card.framework)}; a {card.kind} model is {kind.framework!r}")
    per = card.threshold.per_category
    if not kind.per_category and not 0.0 <= card.threshold.value <= 1.0:
        raise ModelCardError(f"field 'threshold.value' is {card.threshold.value}; a {card.kind} model's score is a "
                             "probability: expected a number from 0 to 1")
    if kind.per_category:
        if not card.categories:
            raise ModelCardError(f"field 'categories' is empty; a {card.kind} model has a memory bank per category")
        if card.bank_rows is None or set(card.bank_rows) != set(card.categories):
            raise ModelCardError(f"field 'bank_rows' is {_show(card.bank_rows)}; expected one row count per category "
                                 f"({', '.join(card.categories)})")
        if per is None or set(per) != set(card.categories):
            raise ModelCardError(f"field 'threshold.per_category' names {_show(sorted(per or {}))}; expected one "
                                 f"threshold per category ({', '.join(card.categories)})")
    else:
        if card.bank_rows is not None:
            raise ModelCardError(f"field 'bank_rows' is {_show(card.bank_rows)}; a {card.kind} model has no memory banks")
        if per is not None:
            raise ModelCardError(f"field 'threshold.per_category' is set; a {card.kind} model has one threshold")
    return card


def _categories(f: _Fields) -> tuple[str, ...]:
    v = f.get("categories", [])
    if not isinstance(v, list) or len(v) > _MAX_CATEGORIES:
        raise f.fail("categories", v, f"a list of at most {_MAX_CATEGORIES} names")
    names = tuple(f.name(f"categories[{i}]", c) for i, c in enumerate(v))
    if len(set(names)) != len(names):
        raise f.fail("categories", v, "names that are all different")
    return names


def _texts(f: _Fields, key: str) -> list[str]:
    v = f.get(key, [])
    if not isinstance(v, list) or len(v) > 20:
        raise f.fail(key, v, "a list of at most 20 strings")
    return [str(_Fields({f"{key}[{i}]": t}, f.where).text(f"{key}[{i}]", 1000)) for i, t in enumerate(v)]


def _input(f: _Fields) -> InputSpec:
    size = f.integer("image_size", 8, MAX_IMAGE_SIZE)
    resize = f.integer("resize", size, MAX_IMAGE_SIZE)
    layout = f.get("layout")
    if layout not in ("NCHW", "NHWC"):
        raise f.fail("layout", layout, "'NCHW' or 'NHWC'")
    mean, std = f.get("mean", None), f.get("std", None)
    if (mean is None) != (std is None):
        raise f.fail("std" if mean is not None else "mean", std if mean is not None else mean, "both mean and std, or neither")
    if mean is not None:
        for key, values, lo in (("mean", mean, 0.0), ("std", std, 1e-3)):
            if not isinstance(values, list) or len(values) != 3:
                raise f.fail(key, values, "3 numbers (one per channel)")
            for i, v in enumerate(values):
                _Fields({f"{key}[{i}]": v}, f.where).number(f"{key}[{i}]", lo, 1.0)
        return InputSpec(size, resize, layout, tuple(mean), tuple(std))
    return InputSpec(size, resize, layout)


def _threshold(f: _Fields) -> Threshold:
    per = None
    if f.get("per_category", None) is not None:
        p = f.obj("per_category")
        per = {}
        for c in p.raw:
            g = p.obj(p.name(c, c))
            lo, hi = g.number("min", -_MAX_SCORE, _MAX_SCORE), g.number("max", -_MAX_SCORE, _MAX_SCORE)
            if hi < lo:
                raise g.fail("max", hi, f"at least min ({lo})")
            per[c] = CategoryThreshold(g.number("threshold", -_MAX_SCORE, _MAX_SCORE), lo, hi, str(g.text("note", 300, "")))
    method = f.get("method")
    if method not in ("f1", "youden", "fixed"):
        raise f.fail("method", method, "'f1', 'youden' or 'fixed'")
    return Threshold(f.number("value", -_MAX_SCORE, _MAX_SCORE), method, str(f.text("chosen_on", 20, "val")), per)  # type: ignore[arg-type]


_METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "category_accuracy")


def _metrics(f: _Fields | None) -> dict[str, float | None]:
    if f is None:
        return {}
    unknown = sorted(set(f.raw) - set(_METRICS))
    if unknown:
        raise f.fail(unknown[0], f.raw[unknown[0]], f"one of the metrics {', '.join(_METRICS)}")
    return {k: f.number(k, 0.0, 1.0, none=True) for k in f.raw}


def _export(f: _Fields | None) -> Export | None:
    if f is None:
        return None
    quality = None
    if f.get("quality", None) is not None:
        q = f.obj("quality")
        within = q.get("within_budget")
        if within not in (True, False, None):
            raise q.fail("within_budget", within, "true, false or null")
        quality = Int8Quality(q.number("test_roc_auc_fp32", 0, 1, none=True), q.number("test_roc_auc_int8", 0, 1, none=True),
                              q.number("change", -1, 1, none=True), q.integer("test_images", 0, 10**7),
                              q.integer("decisions_changed", 0, 10**7), within, q.number("budget", 0, 1))
    data = f.get("data_file", None)
    return Export(check_file_name(f.get("file"), f"{f.where}.file"), str(f.sha("sha256")), str(f.text("exporter", 300)),
                  None if data is None else check_file_name(data, f"{f.where}.data_file"), f.sha("data_sha256", none=True),
                  f.text("calibrated_on", 300, None, none=True), quality)
