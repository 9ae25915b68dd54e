"""Deployment (helpers/deploy/, ``python -m helpers export|predict``): the model card, ONNX parity with the
framework, and ``predict`` on folders holding bad files — generated images and the real MVTec sample."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import errors
from helpers.artefacts.card import card_for, read_card, sha256, write_card
from helpers.artefacts.scored import ScoredRun
from helpers.core import layout
from helpers.data import preprocessing
from helpers.data.synthetic import render_image
from helpers.deploy import checks, export, inferencers, inputs
from helpers.deploy.predict import predict
from helpers.models import backbones, kinds
from helpers.models.classifiers import Classifier

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32
RESNET = backbones.get("resnet50")


def fake_run(out_dir: Path, threshold: float, stem: str = layout.SUPERVISED, per_category: dict | None = None) -> ScoredRun:
    """What a model notebook passes to card_for, without training (parity needs no trained weights)."""
    from helpers.artefacts.record import metrics_record

    record = metrics_record(stem, "Supervised classifier", "shared-split", "smoke", {"test": 1}, threshold, "f1",
                            {"roc_auc": 0.9, "f1": 0.8}, threshold_detail={"per_category": per_category},
                            data={"builtin": True, "name": "test", "root": "/nowhere", "manifest_hash": "m",
                                  "split_hash": "abc"})
    return ScoredRun(stem, "Supervised classifier", pd.DataFrame(), threshold, "f1", {}, pd.DataFrame(), record, out_dir)


def supervised_folder(folder: Path, size: int = SIZE) -> Path:
    """A model folder as notebook 01 leaves it (random weights: parity does not need a trained model), exported."""
    import torch

    torch.manual_seed(0)
    model = Classifier(backbones.build("resnet50", "random")).eval()
    kinds.SUPERVISED.save(model, folder / "model.pt", backbone="resnet50", image_size=size)
    spec = kinds.SUPERVISED.input_spec(size, RESNET.mean, RESNET.std)
    images = [render_image("bottle", np.random.default_rng(i), 64)[0] for i in range(6)]
    probs = kinds.SUPERVISED.score(model, preprocessing.batch(spec, images)).defect
    write_card(folder, card_for(fake_run(folder, float(np.median(probs))), kinds.SUPERVISED.name, "model.pt", spec,
                                backbone="resnet50", weights="none (random init)"))
    export.export_onnx(folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return supervised_folder(tmp_path_factory.mktemp("model"))


def _image_folder(base: Path, n: int = 5) -> Path:
    folder = base / "bottle" / "test" / "good"
    folder.mkdir(parents=True)
    for i in range(n):
        img, _ = render_image("bottle", np.random.default_rng(100 + i), 64)
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return base


def test_card_records_what_scoring_needs(model_dir):
    card = read_card(model_dir)
    assert card.input.image_size == SIZE and card.input.mean == (0.485, 0.456, 0.406) and card.input.layout == "NCHW"
    assert card.threshold.chosen_on == "val" and card.kind == kinds.SUPERVISED.name
    assert card.onnx.file == "model.onnx" and card.onnx.sha256 == sha256(model_dir / "model.onnx")
    assert card.model_sha256 == sha256(model_dir / "model.pt") and card.backbone == "resnet50"
    assert card.data["split_hash"] == "abc" and card.limits


def test_onnx_matches_the_framework(model_dir):
    images = [render_image(c, np.random.default_rng(i), 64)[0] for i, c in enumerate(["bottle", "carpet", "grid"] * 4)]
    images = [np.stack([x] * 3, -1) if x.ndim == 2 else x for x in images]
    check = checks.parity(model_dir, images, batch_size=5)    # ragged last batch: dynamic batch axis
    assert check.n == 12 and check.max_abs_diff <= 1e-4 and check.same_decisions
    assert np.std(check.framework) > 0                          # the scores differ between images: a real check


def test_predict_scores_good_files_and_lists_bad_ones(model_dir, tmp_path):
    data = _image_folder(tmp_path / "imgs")
    folder = data / "bottle" / "test" / "good"
    (folder / "corrupt.png").write_bytes((folder / "000.png").read_bytes()[:300])
    (folder / "notes.txt").write_text("not an image")
    os.symlink(folder / "001.png", folder / "link.png")
    table = predict(model_dir, [data, tmp_path / "missing.png"], backend="onnx", progress=False)
    scored = table[table["problem"] == ""]
    assert sorted(Path(p).name for p in scored["path"]) == [f"{i:03d}.png" for i in range(5)]
    assert set(scored["category"]) == {"bottle"} and scored["score"].between(0, 1).all()
    assert set(scored["decision"]) <= {"good", "defective"}
    problems = dict(zip(table.loc[table["problem"] != "", "path"].map(lambda p: Path(p).name),
                        table.loc[table["problem"] != "", "problem"]))
    assert "corrupt or truncated" in problems["corrupt.png"] and "not an image" in problems["notes.txt"]
    assert "not followed" in problems["link.png"] and problems["missing.png"] == "no such file or folder"
    other = predict(model_dir, [data], backend="framework", progress=False, heatmaps=tmp_path / "cams")
    merged = scored.merge(other[other["problem"] == ""], on="path")
    assert np.abs(merged["score_x"] - merged["score_y"]).max() <= 1e-4
    overlays = [np.asarray(Image.open(p)) for p in other.loc[other["problem"] == "", "heatmap"]]   # Grad-CAM
    assert len(overlays) == 5 and all(o.shape == (SIZE, 2 * SIZE + 4, 3) for o in overlays)
    assert (other.loc[other["problem"] != "", "heatmap"] == "").all()


def test_model_folder_problems_say_what_to_do(model_dir, tmp_path):
    with pytest.raises(errors.ModelFolderError, match="not a folder"):
        read_card(tmp_path / "none")
    with pytest.raises(errors.ModelFolderError, match="no model_card.json"):
        read_card(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    (copy / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(errors.ModelFolderError, match="sha256 differs"):
        predict(copy, [tmp_path], progress=False)
    (copy / "model.onnx").unlink()
    with pytest.raises(errors.ModelFolderError, match="Make it first"):
        predict(copy, [tmp_path], progress=False)


def test_predict_cli_on_real_mvtec_images(model_dir, real_sample, tmp_path):
    """The real sample (40 MVTec images) with a planted corrupt file: every image scored, the file listed."""
    data = tmp_path / "mvtec"
    shutil.copytree(real_sample, data, ignore=shutil.ignore_patterns("ground_truth", "*.txt", "*.md"))
    first = next(data.rglob("*.png"))
    (first.parent / "planted.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    out = tmp_path / "predictions.csv"
    res = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model", str(model_dir), str(data),
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    table = pd.read_csv(out, keep_default_na=False)
    n_images = sum(1 for p in real_sample.rglob("*.png") if "ground_truth" not in p.parts)
    assert (table["problem"] == "").sum() == n_images and "planted.png" in res.stderr
    assert set(table.loc[table["problem"] == "", "category"]) == {p.name for p in real_sample.iterdir() if p.is_dir()}
    nothing = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model", str(model_dir),
                              str(first.parent / "planted.png"), "--out", str(tmp_path / "none.csv")],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert nothing.returncode == 1 and "scored 0 image(s)" in nothing.stdout
    wrong = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model", str(tmp_path), str(data)],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert wrong.returncode == 2 and "no model_card.json" in wrong.stderr and "Traceback" not in wrong.stderr


def test_int8_is_smaller_and_scores_like_fp32(model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    calibration = [render_image("bottle", np.random.default_rng(200 + i), 64)[0] for i in range(8)]
    path = export.quantize_int8(folder, calibration)
    card = read_card(folder)
    assert card.int8.calibrated_on == "the images given" and card.int8.sha256 == sha256(path)
    assert path.stat().st_size < 0.35 * (folder / layout.ONNX).stat().st_size
    data = _image_folder(tmp_path / "imgs")
    fp32 = predict(folder, [data], backend="onnx", progress=False)
    int8 = predict(folder, [data], backend="onnx-int8", progress=False)
    assert (int8["problem"] == "").all() and int8["score"].between(0, 1).all()
    assert np.abs(fp32["score"] - int8["score"]).max() < 0.25   # random weights; trained models: notebook 08


def test_keras_model_exports_both_heads_and_predicts_categories(tmp_path):
    """The Keras multi-task model: NHWC input scaled to [0, 1], ONNX with both heads, the category head named."""
    from helpers.models.multitask import build_multitask

    folder = tmp_path / "keras"
    folder.mkdir()
    names = ["bottle", "carpet", "grid"]
    build_multitask(len(names), SIZE).save(folder / "model.keras")
    write_card(folder, card_for(fake_run(folder, 0.5, layout.MULTITASK), kinds.MULTITASK.name, "model.keras",
                                kinds.MULTITASK.input_spec(SIZE), categories=tuple(names)))
    card = read_card(folder)
    assert card.framework == "keras" and card.input.layout == "NHWC" and card.input.mean is None
    assert card.categories == tuple(names)
    export.export_onnx(folder)
    images = [render_image(c, np.random.default_rng(i), 64)[0] for i, c in enumerate(names * 3)]
    images = [np.stack([x] * 3, -1) if x.ndim == 2 else x for x in images]
    check = checks.parity(folder, images, batch_size=4)       # both heads compared
    assert check.n == 9 and check.max_abs_diff <= 1e-4 and check.same_decisions
    export.quantize_int8(folder, images)
    data = _image_folder(tmp_path / "imgs", n=3)
    for backend in inferencers.BACKENDS:
        table = predict(folder, [data], backend=backend, progress=False, heatmaps=tmp_path / backend)
        assert (table["problem"] == "").all() and set(table["predicted_category"]) <= set(names)
        assert all(Path(p).exists() for p in table["heatmap"])     # Grad-CAM of the Keras model


def test_export_cli_checks_parity_and_quantises_on_the_runs_images(model_dir, tmp_path):
    """``export --int8`` re-exports, compares the backends on the test images scores.csv names, calibrates on
    its val good images and reports the AUROC change."""
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    data = _image_folder(tmp_path / "data", n=9)
    paths = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    pd.DataFrame({"path": paths, "category": "bottle", "label": [0, 0, 0, 0, 0, 1, 0, 1, 1],
                  "split": ["val"] * 4 + ["test"] * 5, "score": 0.5}).to_csv(folder / "scores.csv", index=False)
    card = json.loads((folder / layout.CARD).read_text())
    card["data"]["root"] = str(data)
    (folder / layout.CARD).write_text(json.dumps(card))
    res = subprocess.run([sys.executable, "-m", "helpers", "export", "--model", str(folder), "--int8"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "parity on 5 test images" in res.stdout and "same decisions: True" in res.stdout
    assert "test AUROC fp32" in res.stdout and read_card(folder).int8.calibrated_on == "4 good val images"
    (folder / "scores.csv").unlink()                            # the run's images unknown: no silent skip
    res = subprocess.run([sys.executable, "-m", "helpers", "export", "--model", str(folder), "--int8"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 1 and "parity not checked" in res.stdout and "INT8 not made" in res.stderr


@pytest.mark.slow
def test_patchcore_from_notebook_06_exports_reproduces_its_scores_and_draws_maps(synthetic_root, real_sample, tmp_path):
    """Notebook 06's command saves the banks and a card; ``export --int8`` puts backbone, banks and the
    nearest-neighbour scoring in one ONNX graph whose scores are the ones 06 wrote; ``predict --heatmaps`` draws
    the anomaly maps, needs each image's category, and lists what it cannot score (real MVTec images included)."""
    from PIL import Image as PILImage

    runs_dir = tmp_path / "runs"
    res = subprocess.run([sys.executable, "-m", "helpers", "oneclass", "--data", str(synthetic_root), "--runs",
                          str(runs_dir), "--profile", "smoke", "--categories", "bottle", "carpet"], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    folder = runs_dir / layout.PATCHCORE
    card = read_card(folder)
    assert card.kind == kinds.PATCHCORE.name and card.categories == ("bottle", "carpet")
    assert set(card.threshold.per_category) == {"bottle", "carpet"} and card.threshold.value == 0.5
    res = subprocess.run([sys.executable, "-m", "helpers", "export", "--model", str(folder), "--int8"], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "same decisions: True" in res.stdout and "test AUROC fp32" in res.stdout
    written = pd.read_csv(folder / "scores.csv").query("split == 'test'")
    onnx = checks.evaluate(folder, "onnx")
    # the smoke data's val range is under 1 distance unit, so normalised scores magnify fp32 noise: 1e-3 here
    assert len(written) == onnx.n and np.abs(onnx.scores - written["score"].to_numpy()).max() <= 1e-3

    data = tmp_path / "incoming"
    shutil.copytree(synthetic_root / "bottle" / "test", data / "bottle")
    loose = next((data / "bottle").rglob("*.png"))
    shutil.copy(loose, data / "no_category.png")
    (data / "bottle" / "corrupt.png").write_bytes(loose.read_bytes()[:100])
    shutil.copytree(real_sample / "screw", data / "screw", ignore=shutil.ignore_patterns("ground_truth"))
    shutil.copytree(real_sample / "bottle", data / "real" / "bottle", ignore=shutil.ignore_patterns("ground_truth"))
    n_real = sum(1 for _ in (data / "real" / "bottle").rglob("*.png"))    # real MVTec bottles: the bottle bank
    heat, out = tmp_path / "heat", tmp_path / "predictions.csv"
    res = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model", str(folder), str(data), "--out",
                          str(out), "--backend", "onnx-int8", "--heatmaps", str(heat)], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    table = pd.read_csv(out, keep_default_na=False)
    scored = table[table["problem"] == ""]
    n_bottle = sum(1 for _ in (synthetic_root / "bottle" / "test").rglob("*.png")) + n_real
    assert n_real > 0 and len(scored) == n_bottle and set(scored["category"]) == {"bottle"}
    assert card.bank_rows["bottle"] > 0
    problems = dict(zip(table["path"].map(lambda p: Path(p).name), table["problem"]))
    assert "corrupt or truncated" in problems["corrupt.png"] and "no category" in problems["no_category.png"]
    assert all("no memory bank for category 'screw'" in p for p in table.loc[table["category"] == "screw", "problem"])
    crop = card.input.image_size
    overlay = np.asarray(PILImage.open(scored["heatmap"].iloc[0]))
    assert overlay.shape == (crop, 2 * crop + 4, 3) and len(list(heat.glob("*.png"))) == n_bottle
    left, right = overlay[:, :crop].astype(int), overlay[:, crop + 4:].astype(int)
    assert np.abs(left - right).mean() > 5                           # the map is drawn over the image
    forced = predict(folder, [data / "no_category.png"], category="bottle", progress=False)
    assert forced["problem"].tolist() == [""] and forced["category"].tolist() == ["bottle"]


def test_large_banks_go_to_an_external_data_file(synthetic_root, tmp_path, monkeypatch):
    """Beyond protobuf's 2 GB (the full profile's banks can be) the export keeps the weights in model.onnx.data,
    written with the model and read back by onnxruntime — here forced with a limit of 0 bytes."""
    import torch

    from helpers.models.patchcore import PatchCore, PatchFeatures

    folder = tmp_path / "model"
    folder.mkdir()
    spec = kinds.PATCHCORE.input_spec(56, resize=64)
    paths = sorted((synthetic_root / "bottle" / "train" / "good").glob("*.png"))
    model = PatchCore(PatchFeatures("efficientnet_lite0"), ["bottle"])
    model.fit("bottle", torch.from_numpy(preprocessing.batch(spec, paths)))
    model.set_normalisation({"bottle": (10.0, 10.0)})
    kinds.PATCHCORE.save(model, folder / "model.pt")
    params = {"bottle": {"threshold": 10.0, "min": 5.0, "max": 15.0, "note": ""}}
    rows = int(model.bank_rows[0])
    write_card(folder, card_for(fake_run(folder, 0.5, layout.PATCHCORE, params), kinds.PATCHCORE.name, "model.pt", spec,
                                categories=("bottle",), bank_rows={"bottle": rows}))
    monkeypatch.setattr(kinds, "EXTERNAL_DATA_BYTES", 0)
    export.export_onnx(folder)
    assert read_card(folder).onnx.data_file == "model.onnx.data"
    assert (folder / "model.onnx.data").stat().st_size > rows * model.banks.shape[-1] * 4 and not list(folder.glob(".model*"))
    assert inferencers.external_locations(folder / "model.onnx") == {"model.onnx.data"}
    images = [synthetic_root / "bottle" / "test" / "good" / p.name for p in
              sorted((synthetic_root / "bottle" / "test" / "good").glob("*.png"))]
    check = checks.parity(folder, images)
    assert check.n == len(images) and check.ok and check.map_scale > 0
    monkeypatch.setattr(inputs, "DISTANCE_FLOATS", 1)                  # huge banks: one image per batch
    card = read_card(folder)
    assert inputs.batch_limit(card) == 1 and [len(c) for c, _ in inputs.batches(card, images, 32)] == [1] * len(images)


def test_a_one_product_patchcore_needs_no_category_folder(synthetic_root, tmp_path):
    """A practitioner's own product is one category: ``predict`` and the inspector page use its one bank for files
    anywhere (no category folder, no choice on the page); a file under another MVTec category's folder is refused."""
    import torch

    from helpers.deploy.predict import Predictor
    from helpers.deploy.serve import inspect_uploads
    from helpers.models.patchcore import PatchCore, PatchFeatures

    folder = tmp_path / "model"
    folder.mkdir()
    spec = kinds.PATCHCORE.input_spec(56, resize=64)
    paths = sorted((synthetic_root / "bottle" / "train" / "good").glob("*.png"))
    model = PatchCore(PatchFeatures("efficientnet_lite0"), ["widget"])
    model.fit("widget", torch.from_numpy(preprocessing.batch(spec, paths[:6])))
    model.set_normalisation({"widget": (10.0, 10.0)})
    kinds.PATCHCORE.save(model, folder / "model.pt")
    params = {"widget": {"threshold": 10.0, "min": 5.0, "max": 15.0, "note": ""}}
    write_card(folder, card_for(fake_run(folder, 0.5, layout.PATCHCORE, params), kinds.PATCHCORE.name, "model.pt", spec,
                                categories=("widget",), bank_rows={"widget": int(model.bank_rows[0])}))
    incoming = tmp_path / "incoming"
    (incoming / "screw").mkdir(parents=True)
    loose = Path(shutil.copy(paths[-1], incoming / "photo_001.png"))
    shutil.copy(paths[-2], incoming / "screw" / "000.png")
    table = predict(folder, [incoming], backend="framework", progress=False)
    got = dict(zip(table["path"].map(lambda p: Path(p).name), zip(table["category"], table["problem"])))
    assert got["photo_001.png"] == ("widget", "")
    assert "no memory bank for category 'screw'" in got["000.png"][1]
    page = inspect_uploads(Predictor(folder, "framework"), [loose])
    assert page.table["problem"].tolist() == [""] and page.table["category used"].tolist() == ["widget"]
