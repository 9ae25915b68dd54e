"""One inferencer per backend: a model folder's model that scores preprocessed batches.

- :class:`FrameworkInferencer`: the saved model in its own framework (torch or Keras), eager;
- :class:`OnnxInferencer`: onnxruntime on ``model.onnx`` (``onnx``) or ``model.int8.onnx`` (``onnx-int8``).

Both return :class:`helpers.models.kinds.ModelOutput` and know nothing of any kind of model: the folder's kind
(:mod:`helpers.models.kinds`) says how to feed, run and read it. An ONNX file is opened only when it is the file the
card recorded (sha256) and every tensor it keeps outside itself lies in the one data file the card names, inside the
folder — an ONNX file's external data can name any path, and onnxruntime would read it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..artefacts.card import Export, ModelCard, check_file_name, sha256
from ..core import layout
from ..errors import ModelCardError, ModelFolderError
from ..models import kinds

__all__ = ["BACKENDS", "Inferencer", "FrameworkInferencer", "OnnxInferencer", "open_inferencer", "external_locations"]

#: Where a model runs: onnxruntime on the fp32 export, onnxruntime on the INT8 one, or the framework (eager).
BACKENDS = ("onnx", "onnx-int8", "framework")
#: The card's entry for each exported file, the file, and the command that makes it.
_EXPORTS = {"onnx": ("onnx", layout.ONNX, "export"), "onnx-int8": ("int8", layout.ONNX_INT8, "export --int8")}


class Inferencer:
    """Scores preprocessed batches (:mod:`helpers.data.preprocessing`, the card's ``input``) of one model folder."""

    backend = ""

    def __init__(self, folder: str | Path, card: ModelCard):
        self.folder, self.card, self.kind = Path(folder), card, kinds.get(card.kind)

    def __call__(self, batch: np.ndarray, category: int | None = None) -> kinds.ModelOutput:
        """Scores of ``batch``; ``category``: the batch's category index (per-category models; one per batch)."""
        raise NotImplementedError


class FrameworkInferencer(Inferencer):
    """The saved model in its own framework (the card has already checked the model file's sha256)."""

    backend = "framework"

    def __init__(self, folder: str | Path, card: ModelCard):
        super().__init__(folder, card)
        self.model, _ = self.kind.load(self.folder / card.model_file)

    def __call__(self, batch: np.ndarray, category: int | None = None) -> kinds.ModelOutput:
        return self.kind.score(self.model, batch, category)


def _tensors(graph: Any) -> list[Any]:
    """Every tensor of an ONNX graph, subgraphs included (initializers and constant attributes)."""
    import onnx

    out = list(graph.initializer) + [s.values for s in graph.sparse_initializer]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                out.append(attr.t)
            out.extend(attr.tensors)
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else []) + list(attr.graphs):
                out.extend(_tensors(sub))
    return out


def external_locations(path: Path) -> set[str]:
    """The files an ONNX file's tensors point to (its external data), read without loading any of them."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {entry.value for t in _tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL
            for entry in t.external_data if entry.key == "location"}


def _check_onnx(folder: Path, export: Export, command: str) -> Path:
    """The export's file, once it is the one the card recorded and its external data stays in the folder."""
    path = folder / check_file_name(export.file, "onnx.file")
    if path.is_symlink() or not path.is_file():
        raise ModelFolderError(f"{folder}: no {export.file}. Make it first (python -m helpers {command} --model {folder}) "
                               "or score with --backend framework.")
    if sha256(path) != export.sha256:
        raise ModelFolderError(f"{path} is not the file the card recorded (sha256 differs): run `python -m helpers "
                               f"{command}` again.")
    allowed = {export.data_file} if export.data_file else set()
    outside = external_locations(path) - allowed
    if outside:
        raise ModelCardError(f"{path} keeps tensors in {sorted(outside)[:3]}, which its card does not name as its data "
                             "file: an ONNX file may only read data from the file beside it that the card records. "
                             "Not loaded.")
    if export.data_file:
        data = folder / export.data_file
        if data.is_symlink() or not data.is_file() or sha256(data) != export.data_sha256:
            raise ModelFolderError(f"{data} is missing, a link, or not the data file the card recorded (sha256).")
    return path


class OnnxInferencer(Inferencer):
    """onnxruntime (CPU) on the folder's fp32 (``onnx``) or INT8 (``onnx-int8``) export; ``threads``: its intra-op
    threads (None: onnxruntime's default)."""

    def __init__(self, folder: str | Path, card: ModelCard, backend: str = "onnx", threads: int | None = None):
        super().__init__(folder, card)
        import onnxruntime as ort

        self.backend = backend
        key, name, command = _EXPORTS[backend]
        export = getattr(card, key)
        if export is None:
            raise ModelFolderError(f"{self.folder}: no {name}. Make it first (python -m helpers {command} --model "
                                   f"{self.folder}) or score with --backend framework.")
        path = _check_onnx(self.folder, export, command)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray, category: int | None = None) -> kinds.ModelOutput:
        return self.kind.from_onnx(self.session.run(list(self.kind.onnx_outputs), self.kind.onnx_feeds(batch, category)))


def open_inferencer(folder: str | Path, card: ModelCard, backend: str, threads: int | None = None) -> Inferencer:
    """The inferencer of ``backend`` (one of :data:`BACKENDS`) for a model folder."""
    if backend not in BACKENDS:
        raise ModelFolderError(f"backend {backend!r}: expected one of {BACKENDS}")
    if backend == "framework":
        return FrameworkInferencer(folder, card)
    return OnnxInferencer(folder, card, backend, threads)
