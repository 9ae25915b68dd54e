"""Deployment: a model folder that scores new images the way its notebook scored ``test``.

A model notebook's folder (``RUNS_DIR/<stem>/``) is the model folder: the saved model, and
``model_card.json`` (:func:`write_model_card`) holding everything needed to score a new image the same way —
the preprocessing (:func:`preprocess`, the one function training, the cache and ``predict`` share), the
image size, the label encoding, the decision threshold chosen on ``val``, the test metrics and the data and
code provenance. :func:`export_onnx` adds ``model.onnx`` (input: a preprocessed batch; output: the defect
probability), :func:`parity` checks it against the framework, and :func:`predict` scores files and folders on
either backend (``python -m helpers predict``).

Covered: the PyTorch models of notebooks 01 and 03 and the Keras multi-task model of 04 (both heads); PatchCore
(06) is not exported yet. What a model card cannot know is written in it (``limits``): lighting,
cameras or defect types the model never saw.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import files, runs
from .config import IMAGENET_MEAN, IMAGENET_STD
from .data import IMAGE_EXTENSIONS, MVTEC_CATEGORIES, inspect_image

__all__ = ["CARD", "ONNX_FILE", "INT8_FILE", "CARD_SCHEMA", "BACKENDS", "ModelFolderError", "write_model_card",
           "read_model_card", "preprocess", "export_onnx", "quantize_int8", "run_images", "evaluate", "parity",
           "collect_inputs", "category_of", "predict", "model_folders", "latency", "file_sizes"]

CARD = "model_card.json"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
CARD_SCHEMA = 1
#: Where a model runs: onnxruntime on the fp32 export, onnxruntime on the INT8 one, or the framework (eager).
BACKENDS = ("onnx", "onnx-int8", "framework")
#: What INT8 quantises: the convolutions, nearly all of the compute. The head and the softmax stay fp32, so the
#: score is not rounded to 1/255 steps (our choice: quantised there, test scores tied and the AUROC moved).
QUANTIZED_OPS = ["Conv"]
#: The card entry of each exported file.
_EXPORTS = {"onnx": ("onnx", ONNX_FILE, "export"), "onnx-int8": ("int8", INT8_FILE, "export --int8")}
#: Model-file architectures that :func:`export_onnx` and :func:`predict` know (``torch_models.save_model``).
ARCHS = ("supervised_resnet50", "linear_probe", "keras_multitask")
#: The architecture whose framework is Keras (the others are PyTorch models of ``torch_models.save_model``).
KERAS_ARCH = "keras_multitask"
LIMITS = ("The threshold was chosen on this dataset's val images: a new camera, lighting, background or "
          "resolution shifts the scores, so re-check the threshold on a few known-good images first.",
          "Only the defect types in the training data were seen; a new kind of defect may score as good.",
          "Scores are not calibrated probabilities of a defect on another product line.")


class ModelFolderError(ValueError):
    """A model folder that is missing, incomplete or of an unknown kind; the message says what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_RESIZE = ("helpers.cache.load_resized: decode to RGB uint8, resize to image_size × image_size (PIL bilinear, "
           "antialiased)")


def _card_io(arch: str, image_size: int, categories: Sequence[str] | None) -> tuple[dict, dict]:
    """The card's ``input`` and ``output`` for an architecture: how to preprocess, what comes out."""
    labels = {"0": "good", "1": "defective"}
    if arch == KERAS_ARCH:
        return ({"image_size": int(image_size), "channels": "RGB", "layout": "NHWC float32", "resize": _RESIZE,
                 "normalise": "pixel / 255"},
                {"score": "defect head: sigmoid (output 'defect')", "labels": labels,
                 "category": {"head": "softmax over the categories (output 'category')", "names": list(categories or [])}})
    return ({"image_size": int(image_size), "channels": "RGB", "layout": "NCHW float32", "resize": _RESIZE,
             "normalise": "(pixel / 255 - mean) / std per channel", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            {"score": "defect probability: softmax(logits)[:, 1]", "labels": labels})


def write_model_card(run, model_file: str, arch: str, image_size: int, categories: Sequence[str] | None = None) -> Path:
    """``model_card.json`` beside a notebook's saved model, from its :class:`helpers.runs.ScoredRun`."""
    record = run.record
    inputs, outputs = _card_io(arch, image_size, categories)
    card = {
        "schema": CARD_SCHEMA, "approach": run.approach, "notebook": run.stem,
        "framework": "keras" if arch == KERAS_ARCH else "pytorch", "arch": arch, "model_file": model_file,
        "input": inputs, "output": outputs,
        "threshold": {"value": float(run.threshold), "method": run.threshold_method, "chosen_on": "val",
                      "decision": "defective when score >= value", "per_category": None},
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
                               "notebook (01, 03 or 04) to the end: it writes the card beside the model.")
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelFolderError(f"{path}: not a readable model card ({err}); run the model's notebook again.") from None
    if card.get("schema") != CARD_SCHEMA or card.get("arch") not in ARCHS:
        raise ModelFolderError(f"{path}: schema {card.get('schema')!r}, arch {card.get('arch')!r}; this version "
                               f"reads schema {CARD_SCHEMA} cards of {', '.join(ARCHS)}.")
    return card


def preprocess(images: Iterable, image_size: int, layout: str = "NCHW") -> np.ndarray:
    """Image paths or H×W×3 uint8 arrays as a float32 batch, exactly as ``test`` was scored:
    :func:`helpers.cache.load_resized`, then for ``NCHW`` (PyTorch) :func:`helpers.torch_data.eval_transform`
    (ImageNet normalisation) and for ``NHWC`` (Keras) ``pixel / 255``, as :func:`helpers.tf_data.make_dataset`."""
    from .cache import load_resized

    if layout.startswith("NHWC"):
        batch = [load_resized(x, image_size).astype(np.float32) / 255.0 for x in images]
        return np.stack(batch) if batch else np.zeros((0, image_size, image_size, 3), np.float32)
    from .torch_data import eval_transform

    transform = eval_transform(image_size)
    batch = [transform(image=load_resized(x, image_size))["image"].numpy() for x in images]
    return np.stack(batch).astype(np.float32) if batch else np.zeros((0, 3, image_size, image_size), np.float32)


def _batch(card: dict, images: Sequence) -> np.ndarray:
    return preprocess(images, card["input"]["image_size"], card["input"]["layout"])


def _probability_model(model_dir: Path, card: dict):
    """The framework model of a folder, wrapped to output the defect probability (what the ONNX file outputs)."""
    import torch
    from torch import nn

    from .torch_models import load_model

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
    with files.atomic_path(out) as tmp:
        exporter = _export_keras(folder, card, tmp) if card["arch"] == KERAS_ARCH else _export_torch(folder, card, tmp, opset)
    card["onnx"] = {"file": ONNX_FILE, "sha256": _sha256(out), "exporter": exporter,
                    "input": f"image: {card['input']['layout']} (card['input'])",
                    "outputs": "defect (N×1), category (N×C)" if card["arch"] == KERAS_ARCH else "score (N)"}
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


def _export_keras(folder: Path, card: dict, path: Path) -> str:
    import keras

    model = keras.models.load_model(folder / card["model_file"])
    size = card["input"]["image_size"]
    model(np.zeros((1, size, size, 3), np.float32), training=False)    # export needs a model that has been called
    model.export(str(path), format="onnx", verbose=False)
    return f"keras Model.export(format='onnx') (tf2onnx), keras {keras.__version__}"


class _Scorer:
    """Scores preprocessed batches on one backend: ``(defect scores, category probabilities or None)``.

    ``threads``: onnxruntime's intra-op threads (None = its default); the framework uses its own setting."""

    def __init__(self, model_dir: Path, card: dict, backend: str, threads: int | None = None):
        if backend not in BACKENDS:
            raise ModelFolderError(f"backend {backend!r}: expected one of {BACKENDS}")
        self.backend, self.keras = backend, card["arch"] == KERAS_ARCH
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
        else:
            self.model = _probability_model(model_dir, card)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.backend in _EXPORTS:
            if self.keras:
                defect, category = self.session.run(["defect", "category"], {"image": batch})
                return defect.reshape(-1).astype(np.float64), category
            return self.session.run(["score"], {"image": batch})[0].astype(np.float64), None
        if self.keras:
            out = self.model(batch, training=False)
            return np.asarray(out["defect"]).reshape(-1).astype(np.float64), np.asarray(out["category"])
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(batch)).numpy().astype(np.float64), None


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
    batches = [_batch(card, calibration[i:i + batch_size]) for i in range(0, len(calibration), batch_size)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"image": b} for b in batches)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    out = folder / INT8_FILE
    with files.atomic_path(out) as tmp:
        pre = tmp.with_name(tmp.name + ".pre.onnx")
        try:
            quant_pre_process(str(folder / ONNX_FILE), str(pre))
            quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, op_types_to_quantize=QUANTIZED_OPS)
        finally:
            pre.unlink(missing_ok=True)
    card["int8"] = {"file": INT8_FILE, "sha256": _sha256(out), "calibrated_on": what,
                    "method": "onnxruntime quantize_static: QDQ, per-channel int8 weights, uint8 activations, MinMax; "
                              f"ops quantised: {', '.join(QUANTIZED_OPS)} (the head and the softmax stay fp32)"}
    files.write_json(folder / CARD, card)
    return out


def evaluate(model_dir: str | os.PathLike, backend: str, batch_size: int = 32,
             root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Test AUROC and decisions of one backend on the folder's own ``test`` images (under ``root``)."""
    from sklearn.metrics import roc_auc_score

    folder = Path(model_dir)
    card = read_model_card(folder)
    paths, labels = run_images(folder, "test", root=root)
    scorer = _Scorer(folder, card, backend)
    scores = np.concatenate([scorer(_batch(card, paths[i:i + batch_size]))[0] for i in range(0, len(paths), batch_size)])
    auroc = float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else float("nan")
    return {"backend": backend, "n": len(paths), "roc_auc": auroc, "scores": scores,
            "decisions": scores >= card["threshold"]["value"]}


def parity(model_dir: str | os.PathLike, images: Sequence, batch_size: int = 16) -> dict[str, Any]:
    """ONNX against the framework on ``images``: the largest difference of any output (the defect score, and the
    category probabilities where there are some) and whether every decision at the card's threshold agrees."""
    folder = Path(model_dir)
    card = read_model_card(folder)
    onnx, framework = _Scorer(folder, card, "onnx"), _Scorer(folder, card, "framework")
    a, b, worst = [], [], 0.0
    for i in range(0, len(images), batch_size):
        batch = _batch(card, images[i:i + batch_size])
        (sa, ca), (sb, cb) = onnx(batch), framework(batch)
        a.append(sa)
        b.append(sb)
        if ca is not None:
            worst = max(worst, float(np.max(np.abs(ca - cb))))
    a, b = np.concatenate(a), np.concatenate(b)
    t = card["threshold"]["value"]
    return {"n": len(a), "max_abs_diff": max(worst, float(np.max(np.abs(a - b))) if len(a) else 0.0),
            "same_decisions": bool(np.array_equal(a >= t, b >= t)), "onnx": a, "framework": b}


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


def category_of(path: str | os.PathLike) -> str:
    """The MVTec category named in the path (the innermost folder that is one), or '' when none is."""
    for part in reversed(Path(path).parts[:-1]):
        if part in MVTEC_CATEGORIES:
            return part
    return ""


def predict(model_dir: str | os.PathLike, inputs: Sequence[str | os.PathLike], backend: str = "onnx",
            batch_size: int = 32, progress: bool = True) -> pd.DataFrame:
    """Score image files and folders with a model folder.

    Returns one row per input entry: ``path, category, score, decision`` (``defective``/``good`` at the card's
    threshold), ``predicted_category`` (models with a category head) and ``problem`` (why an entry was not
    scored: not an image, corrupt, a link, …; empty when scored).
    Each file is checked by :func:`helpers.data.inspect_image` (header size first, then a full decode) before
    it is scored, so one bad file costs only itself.
    """
    from tqdm.auto import tqdm

    folder = Path(model_dir)
    card = read_model_card(folder)
    scorer = _Scorer(folder, card, backend)
    paths, problems = collect_inputs(inputs)
    threshold = card["threshold"]["value"]
    names = card["output"].get("category", {}).get("names")
    good: list[Path] = []
    for path in paths:
        info = inspect_image(path)
        if info["ok"]:
            good.append(path)
        else:
            problems.append({"path": str(path), "problem": info["reason"]})
    rows = []
    with tqdm(total=len(good), desc=f"scoring ({backend})", unit="img", disable=not progress) as bar:
        for i in range(0, len(good), batch_size):
            chunk = good[i:i + batch_size]
            scores, category = scorer(_batch(card, chunk))
            predicted = [names[j] for j in category.argmax(1)] if category is not None and names else [""] * len(chunk)
            rows += [{"path": str(p), "category": category_of(p), "score": float(s),
                      "decision": "defective" if s >= threshold else "good", "predicted_category": c, "problem": ""}
                     for p, s, c in zip(chunk, scores, predicted)]
            bar.update(len(chunk))
    rows += [{"path": p["path"], "category": category_of(p["path"]), "score": np.nan, "decision": "",
              "predicted_category": "", "problem": p["problem"]} for p in problems]
    return pd.DataFrame(rows, columns=["path", "category", "score", "decision", "predicted_category", "problem"])


def model_folders(runs_dir: str | os.PathLike) -> tuple[dict[str, Path], list[str]]:
    """The model folders under ``RUNS_DIR`` that hold a card (``{stem: folder}``), and what is missing and why."""
    found, missing = {}, []
    for stem in (runs.SUPERVISED, runs.PROBE, runs.KERAS):
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
    pool = _batch(card, images)
    rows = []
    for batch_size in batch_sizes:
        batch = np.resize(pool, (batch_size, *pool.shape[1:])).astype(np.float32)   # cycles the images
        for _ in range(warmup):
            scorer(batch)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scorer(batch)
            times.append(time.perf_counter() - start)
        p50, p95 = np.percentile(times, [50, 95])
        rows.append({"backend": backend, "batch": batch_size, "p50_ms": 1000 * p50, "p95_ms": 1000 * p95,
                     "images_per_s": batch_size / p50, "repeats": repeats})
    return rows


def file_sizes(model_dir: str | os.PathLike) -> dict[str, float]:
    """MiB on disk of the framework model and of each export that exists."""
    folder = Path(model_dir)
    card = read_model_card(folder)
    names = {"framework": card["model_file"], "onnx": ONNX_FILE, "onnx-int8": INT8_FILE}
    return {k: (folder / v).stat().st_size / 2**20 for k, v in names.items() if (folder / v).exists()}
