"""Export: ``model.onnx`` from a model folder (its kind says how), and ``model.int8.onnx`` by static quantisation
calibrated on the folder's ``val`` good images — never ``test``. Each file is recorded in the card (file, sha256,
exporter) and written beside a staging folder first, so a failed export replaces nothing.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..artefacts.card import Export, read_card, sha256, write_card
from ..core import layout
from ..data import preprocessing
from ..errors import ModelFolderError
from ..models import kinds
from .inputs import batches

__all__ = ["QUANTIZED_OPS", "export_onnx", "quantize_int8"]

#: What INT8 quantises: the convolutions, nearly all of the compute. The head and the softmax stay fp32, so the
#: score is not rounded to 1/255 steps (our choice: quantised there, test scores tied and the AUROC moved).
QUANTIZED_OPS = ["Conv"]


@contextlib.contextmanager
def _staged(folder: Path, name: str) -> Iterator[Path]:
    """Yield a path ``name`` in a fresh folder beside ``folder``; on success every file written there (the ONNX file
    and its ``.data``, if any) replaces its namesake in ``folder``, data first. On an error nothing is replaced."""
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
    try:
        yield stage / name
        (folder / layout.onnx_data(name)).unlink(missing_ok=True)
        for item in sorted(stage.iterdir(), key=lambda p: p.name == name):
            if item.is_file():
                os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _record(folder: Path, name: str, exporter: str, **extra: object) -> Export:
    data = folder / layout.onnx_data(name)
    return Export(name, sha256(folder / name), exporter, data.name if data.exists() else None,
                  sha256(data) if data.exists() else None, **extra)  # type: ignore[arg-type]


def export_onnx(model_dir: str | os.PathLike, opset: int = 18) -> Path:
    """Write ``model.onnx`` and record it in the card. Input ``image``: a preprocessed batch of any size (the card's
    ``input``; per-category models also take ``category``, the index of the batch's category); outputs: the kind's
    (:attr:`helpers.models.kinds.ModelKind.onnx_outputs`)."""
    folder = Path(model_dir)
    card = read_card(folder)
    kind = kinds.get(card.kind)
    model, _ = kind.load(folder / card.model_file)
    with _staged(folder, layout.ONNX) as tmp:
        exporter = kind.export(model, tmp, card.input, opset)
    write_card(folder, card.with_export("onnx", _record(folder, layout.ONNX, exporter)))
    return folder / layout.ONNX


def quantize_int8(model_dir: str | os.PathLike, calibration: Sequence | None = None, batch_size: int = 8,
                  root: str | os.PathLike | None = None) -> Path:
    """Static INT8 quantisation of ``model.onnx`` with onnxruntime (QDQ, per-channel int8 weights, uint8
    activations, MinMax calibration) into ``model.int8.onnx``, recorded in the card.

    ``calibration``: images to calibrate on (default: the folder's ``val`` good images under ``root`` — never
    ``test``).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .checks import run_images

    folder = Path(model_dir)
    card = read_card(folder)
    if card.onnx is None or not (folder / layout.ONNX).exists():
        raise ModelFolderError(f"{folder}: no {layout.ONNX}; run `python -m helpers export --model {folder}` first.")
    what = "the images given"
    if calibration is None:
        calibration, _ = run_images(folder, "val", label=0, root=root)
        what = f"{len(calibration)} good val images"
    kind = kinds.get(card.kind)
    feeds = [kind.onnx_feeds(preprocessing.batch(card.input, chunk), category)
             for chunk, category in batches(card, calibration, batch_size)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    big = bool(card.onnx.data_file)
    with _staged(folder, layout.ONNX_INT8) as tmp:
        pre = tmp.parent / "pre" / "model.pre.onnx"
        pre.parent.mkdir()
        # symbolic shape inference cannot follow PatchCore's category-selected bank; ONNX's own inference suffices
        quant_pre_process(str(folder / layout.ONNX), str(pre), skip_symbolic_shape=kind.per_category,
                          save_as_external_data=big, all_tensors_to_one_file=True)
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, op_types_to_quantize=QUANTIZED_OPS,
                        use_external_data_format=big)
        shutil.rmtree(pre.parent)
    method = ("onnxruntime quantize_static: QDQ, per-channel int8 weights, uint8 activations, MinMax; ops quantised: "
              f"{', '.join(QUANTIZED_OPS)}; everything else (dense layers, heads, softmax, PatchCore's distance search) "
              "stays fp32")
    write_card(folder, card.with_export("int8", _record(folder, layout.ONNX_INT8, method, calibrated_on=what)))
    return folder / layout.ONNX_INT8
