"""Notebook 08 as functions: which notebooks leave a model folder, and for each one the ONNX export and its parity,
INT8 and what it costs in detection, latency, and ``predict`` on a folder of new images — each as a table."""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pandas as pd

from ..core import layout
from ..models import kinds

__all__ = ["model_folders", "export_and_check", "int8_quality", "latency_table", "stage_incoming", "predict_each"]

Folders = dict[str, Path]


def model_folders(runs_dir: str | os.PathLike) -> tuple[Folders, list[str]]:
    """The model folders under ``RUNS_DIR`` that hold a card (``{stem: folder}``; the notebooks of the registry's
    deployable kinds, :func:`helpers.models.kinds.deployable`), and what is missing and why."""
    found, missing = {}, []
    for stem in (k.folder for k in kinds.deployable()):
        folder = layout.notebook_dir(runs_dir, stem, create=False)
        if (folder / layout.CARD).exists():
            found[stem] = folder
        else:
            missing.append(f"{stem}: no {layout.CARD} — run notebook {layout.notebook_of(stem)}.ipynb to the end")
    return found, missing


def export_and_check(folders: Folders, root: str | os.PathLike | None) -> pd.DataFrame:
    """Export each folder's model to ONNX and check it against the framework on its ``test`` images: the largest
    score difference, PatchCore's maps next to their largest value, and whether any decision changes."""
    from ..deploy import checks, export

    rows = []
    for stem, folder in folders.items():
        export.export_onnx(folder)
        images, _ = checks.run_images(folder, "test", root=root)
        check = checks.parity(folder, images)
        rows.append({"model": stem, "test images": check.n, "max |onnx - framework|": check.max_abs_diff,
                     "maps: max |Δ|": check.map_max_abs_diff or None, "maps: largest |value|": check.map_scale or None,
                     "same decisions": check.same_decisions, "parity": "ok" if check.ok else "FAILED"})
    return pd.DataFrame(rows)


def int8_quality(folders: Folders, root: str | os.PathLike | None) -> pd.DataFrame:
    """Quantise each model to INT8 (calibrated on ``val`` good images), record on its card whether it kept its test
    AUROC within :data:`helpers.deploy.checks.AUROC_BUDGET`, and compare every backend: test AUROC, its change and
    the decisions that change against the framework, and the file sizes."""
    from ..deploy import checks, export, inferencers, latency

    rows = []
    for stem, folder in folders.items():
        export.quantize_int8(folder, root=root)
        budget = checks.record_int8_quality(folder, root=root).within_budget
        results = {b: checks.evaluate(folder, b, root=root) for b in inferencers.BACKENDS}
        sizes = latency.file_sizes(folder)
        base = results["framework"]
        for backend, res in results.items():
            rows.append({"model": stem, "backend": backend, "test AUROC": res.roc_auc,
                         "AUROC change vs framework": res.roc_auc - base.roc_auc,
                         "decisions changed vs framework": int((res.decisions != base.decisions).sum()),
                         "size MiB": sizes.get(backend), "INT8 within budget": budget if backend == "onnx-int8" else None})
    return pd.DataFrame(rows)


def latency_table(folders: Folders, root: str | os.PathLike | None, repeats: int, batch_sizes: tuple[int, ...] = (1, 32)
                  ) -> pd.DataFrame:
    """Each model's scoring latency per backend on up to 32 ``test`` images (preprocessing excluded)."""
    from ..deploy import checks, inferencers, latency

    rows = []
    for stem, folder in folders.items():
        images, _ = checks.run_images(folder, "test", root=root)
        for backend in inferencers.BACKENDS:
            for row in latency.latency(folder, backend, images[:32], batch_sizes=batch_sizes, repeats=repeats, warmup=1):
                rows.append({"model": stem, **dataclasses.asdict(row)})
    return pd.DataFrame(rows)


def stage_incoming(folder: str | os.PathLike, incoming: str | os.PathLike, root: str | os.PathLike | None,
                   per_label: int = 3) -> list[Path]:
    """A folder of "new" images as a user would bring them: up to ``per_label`` defective and good ``test`` images of
    the model folder's run, each under a folder named after its category (what a per-category model reads), and
    one broken file. Emptied first; returns the files put there."""
    from ..deploy import checks, inputs

    incoming = Path(incoming)
    shutil.rmtree(incoming, ignore_errors=True)
    images, labels = checks.run_images(folder, "test", root=root)
    picked = ([i for i in range(len(images)) if labels[i] == 1][:per_label]
              + [i for i in range(len(images)) if labels[i] == 0][:per_label])
    written = []
    for i in picked:
        path = images[i]
        target = incoming / inputs.category_of(path) / f"{i}_{path.parent.name}_{path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(Path(shutil.copy(path, target)))
    if written:
        broken = written[-1].parent / "broken.png"
        broken.write_bytes(images[picked[0]].read_bytes()[:200])
        written.append(broken)
    return written


def predict_each(folders: Folders, incoming: str | os.PathLike, heatmaps: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """``predict`` of every model on ``incoming``, with heatmaps under ``heatmaps/<notebook>/``: the INT8 file where
    INT8 stayed within the AUROC budget, else the fp32 one. Paths are shown relative to ``incoming``."""
    from ..artefacts.card import read_card
    from ..deploy.predict import predict

    incoming, tables = Path(incoming), {}
    for stem, folder in folders.items():
        out = Path(heatmaps) / stem
        shutil.rmtree(out, ignore_errors=True)
        int8 = read_card(folder).int8
        quality = int8.quality if int8 is not None else None
        backend = "onnx-int8" if quality is not None and quality.within_budget is not False else "onnx"
        table = predict(folder, [incoming], backend=backend, heatmaps=out, progress=False)
        table["path"] = table["path"].map(lambda p: Path(p).relative_to(incoming).as_posix())
        tables[stem] = table
    return tables
