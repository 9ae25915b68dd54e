"""The ``RUNS_DIR`` layout: each notebook's folder and every file name the series writes, named here and nowhere else.

Every notebook's outputs live in ``RUNS_DIR/<notebook stem>/``; what notebook 00 writes lies at the top of
``RUNS_DIR``. Renaming a notebook or a file is a one-line change here (``tests/test_structure.py`` keeps notebook
stems out of every other module). It sits in ``core`` because every layer writes or reads something of it.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DATA", "SUPERVISED", "SIMCLR", "PROBE", "MULTITASK", "EXPLAIN", "PATCHCORE", "REPORT", "DEPLOY", "LABELS", "NOTEBOOKS",
    "MULTITASK_IMAGENET", "SUBFOLDERS", "notebook_of",
    "MANIFEST", "QUARANTINE", "WARNINGS", "SPLIT", "SPLIT_SEED", "DATASET", "CACHE_DIR", "BUILTIN_DIR", "BUILTIN_RECORD",
    "CACHE_META", "CACHE_IMAGES", "CACHE_MASKS", "REPORT_DIR", "EXECUTED_DIR",
    "SCORES", "METRICS", "HISTORY", "CARD", "ONNX", "ONNX_INT8", "onnx_data", "checkpoint_name",
    "knn_scores", "KERAS_LOG", "KERAS_FINGERPRINT", "KERAS_BACKUP", "LOCALISATION", "LOCALISATION_PER_IMAGE",
    "PER_CATEGORY_SHARED", "PER_CATEGORY_STANDARD", "COMPARISON_CSV", "COMPARISON_MD", "CATEGORY_AUROC",
    "PAIRS", "COVERAGE", "LABEL_RUNS", "LABEL_SUMMARY", "LABEL_FIGURE", "REPORT_JSON", "INCOMING", "HEATMAPS",
    "notebook_dir", "artefact", "missing_message", "require",
]

# --- notebook stems: the folder each notebook writes under RUNS_DIR (and its file name, + .ipynb) ----------------
DATA = "00_data_preparation"
SUPERVISED = "01_supervised_resnet50"
SIMCLR = "02_simclr_pretraining"
PROBE = "03_linear_probe"
MULTITASK = "04_keras_multitask_cnn"
EXPLAIN = "05_tsne_gradcam"
PATCHCORE = "06_patchcore_one_class"
REPORT = "07_results_report"
DEPLOY = "08_deploy"
LABELS = "09_label_efficiency"
NOTEBOOKS: tuple[str, ...] = (DATA, SUPERVISED, SIMCLR, PROBE, MULTITASK, EXPLAIN, PATCHCORE, REPORT, DEPLOY, LABELS)
#: A notebook that trains a second model keeps it in a folder of its own inside its folder: notebook 04's study heads
#: on an ImageNet backbone, beside study 001's CNN. Such a folder stands wherever a notebook stem does below.
MULTITASK_IMAGENET = f"{MULTITASK}/imagenet"
SUBFOLDERS: tuple[str, ...] = (MULTITASK_IMAGENET,)


def notebook_of(folder: str) -> str:
    """The notebook that writes ``folder`` (a stem, or one of :data:`SUBFOLDERS`)."""
    return folder.split("/", 1)[0]


# --- notebook 00, at the top of RUNS_DIR --------------------------------------------------------------------------
MANIFEST = "manifest.csv"
QUARANTINE = "quarantine.csv"
WARNINGS = "warnings.csv"
SPLIT = "split.csv"
#: The seed the split was made with, beside ``split.csv``.
SPLIT_SEED = "split.json"
#: Where the data is and what it holds.
DATASET = "dataset.json"
#: The image cache (on the runtime's local disk, never on Drive) and the built-in data's folder.
CACHE_DIR = "cache"
BUILTIN_DIR = "builtin_mvtec"
#: The generator settings stored beside the built-in data.
BUILTIN_RECORD = "builtin_dataset.json"
#: One cache folder (``cache/<manifest hash>_<size>/``).
CACHE_META, CACHE_IMAGES, CACHE_MASKS = "meta.json", "images.npy", "masks.npy"
#: Folders of ``RUNS_DIR`` that are not one notebook's: the exported report, the executed notebooks.
REPORT_DIR = "report"
EXECUTED_DIR = "executed"

# --- every model notebook ----------------------------------------------------------------------------------------
SCORES = "scores.csv"
METRICS = "metrics.json"
HISTORY = "history.csv"
#: A model folder's card, and its exports (``python -m helpers export``).
CARD = "model_card.json"
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
# (each model notebook's saved model file is its kind's: helpers.models.kinds, ``model_file``)


def onnx_data(onnx_file: str) -> str:
    """The external-data file beside an ONNX file whose weights do not fit protobuf's 2 GB."""
    return f"{onnx_file}.data"


def checkpoint_name(profile: str, image_size: int, tag: str = "") -> str:
    """A torch training run's checkpoint: one per profile and image size (``tag``: e.g. a control run's)."""
    return f"checkpoint-{profile}-{image_size}px{tag}.pt"


def knn_scores(k: int) -> str:
    """Notebook 03's label-free kNN scores with ``k`` neighbours."""
    return f"scores_knn{k}.csv"


# --- notebook-specific files -------------------------------------------------------------------------------------
KERAS_LOG = "training_log.csv"
KERAS_FINGERPRINT = "fingerprint.json"
KERAS_BACKUP = "backup"
LOCALISATION = "localisation.csv"
LOCALISATION_PER_IMAGE = "localisation_per_image.csv"
PER_CATEGORY_SHARED = "per_category_shared_split.csv"
PER_CATEGORY_STANDARD = "per_category_mvtec_standard.csv"
COMPARISON_CSV = "comparison.csv"
COMPARISON_MD = "comparison.md"
CATEGORY_AUROC = "category_auroc.csv"
PAIRS = "paired_comparisons.csv"
COVERAGE = "coverage.csv"
#: Notebook 09: every (approach, budget, seed) run, and the summary the report links.
LABEL_RUNS = "label_efficiency.csv"
LABEL_SUMMARY = "label_efficiency_summary.csv"
LABEL_FIGURE = "label_efficiency.png"
REPORT_JSON = "report.json"
INCOMING = "incoming"
HEATMAPS = "heatmaps"


def notebook_dir(runs_dir: str | os.PathLike, stem: str, create: bool = True) -> Path:
    """``RUNS_DIR/<stem>/`` (created unless ``create`` is False); ``stem`` may be one of :data:`SUBFOLDERS`."""
    if stem not in NOTEBOOKS and stem not in SUBFOLDERS:
        raise ValueError(f"unknown notebook {stem!r}: expected one of {NOTEBOOKS + SUBFOLDERS}")
    path = Path(runs_dir) / stem
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def artefact(runs_dir: str | os.PathLike, stem: str, name: str) -> Path:
    """The path of a notebook's file ``name``; nothing is created."""
    return notebook_dir(runs_dir, stem, create=False) / name


def missing_message(what: str, path: Path, stem: str) -> str:
    """The one wording for an artefact that is not there: what, where, and which notebook makes it."""
    return f"{what}: no {path} — run notebook {notebook_of(stem)}.ipynb first."


def require(runs_dir: str | os.PathLike, stem: str, name: str, what: str = "output") -> Path:
    """A notebook's file, or ``FileNotFoundError`` naming the notebook to run first."""
    path = artefact(runs_dir, stem, name)
    if not path.exists():
        raise FileNotFoundError(missing_message(what, path, stem))
    return path
