"""The model files themselves as untrusted input (the cards are fuzzed in test_card_fuzz.py): a sender controls both
the card and the file, so a file whose hash the card vouches for is still checked — shapes, dtypes and widths
against the kind's own network and backbone, layer types against study 001's network — and refused with a message
that names the file and what is wrong, never a traceback from deep inside a framework."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from test_card_fuzz import _run  # the tests folder is on sys.path (pytest prepend mode)

from helpers.artefacts.card import CARD, card_for, write_card
from helpers.core import layout
from helpers.errors import ModelFolderError
from helpers.models import backbones, kinds
from helpers.models.classifiers import Classifier
from helpers.models.patchcore import PatchCore, PatchFeatures


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sup") / "model.pt"
    torch.manual_seed(0)
    kinds.SUPERVISED.save(Classifier(backbones.build("resnet18", "random")).eval(), path, backbone="resnet18",
                          image_size=32)
    return path


def _tampered(path, tmp_path, change):
    blob = torch.load(path, weights_only=True)
    change(blob)
    out = tmp_path / "model.pt"
    torch.save(blob, out)
    return out


def test_a_classifier_file_whose_weights_do_not_fit_is_refused_by_name(classifier_file, tmp_path):
    assert kinds.SUPERVISED.load(classifier_file)[0] is not None          # the untouched file loads
    key = next(k for k, v in torch.load(classifier_file, weights_only=True)["state_dict"].items() if v.ndim == 2)
    cases = {
        "missing": lambda b: b["state_dict"].pop(key),
        "the network's is": lambda b: b["state_dict"].__setitem__(key, torch.zeros(3, 3)),
        "NaN": lambda b: b["state_dict"][key].fill_(float("nan")),
        "table of tensors": lambda b: b.__setitem__("state_dict", [1, 2]),
        "records no backbone": lambda b: b.pop("backbone"),
    }
    for words, change in cases.items():
        with pytest.raises(ModelFolderError, match=words) as err:
            kinds.SUPERVISED.load(_tampered(classifier_file, tmp_path, change))
        assert "model.pt" in str(err.value)


@pytest.fixture(scope="module")
def patchcore_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pc")
    features = PatchFeatures("efficientnet_lite0")
    model = PatchCore(features, ["bottle"], coreset_fraction=0.5)
    with torch.no_grad():
        feats, _ = features(torch.rand(2, 3, 64, 64))
    model.set_bank("bottle", feats[:50])
    kinds.PATCHCORE.save(model, folder / "model.pt")
    per = {"bottle": {"threshold": 1.0, "min": 0.5, "max": 2.0, "note": ""}}
    write_card(folder, card_for(_run(folder, layout.PATCHCORE, per), kinds.PATCHCORE.name, "model.pt",
                                kinds.PATCHCORE.input_spec(56, resize=64), categories=("bottle",),
                                bank_rows={"bottle": 50}, backbone="efficientnet_lite0", weights="ImageNet"))
    return folder


def test_a_patchcore_file_with_the_wrong_bank_width_is_refused_through_predict(patchcore_folder, tmp_path):
    """As the issue tried it: a sender's folder whose banks have the wrong width, the card's hash updated to match.
    Before: RuntimeError: mat1 and mat2 shapes cannot be multiplied. Now: one line naming the file and the width."""
    folder = tmp_path / "sent"
    folder.mkdir()
    for f in patchcore_folder.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    blob = torch.load(folder / "model.pt", weights_only=True)
    blob["state"]["banks"]["bottle"] = blob["state"]["banks"]["bottle"][:, :17].contiguous()
    torch.save(blob, folder / "model.pt")
    import json

    from helpers.artefacts.card import sha256
    card = json.loads((folder / CARD).read_text())
    card["model_sha256"] = sha256(folder / "model.pt")
    (folder / CARD).write_text(json.dumps(card))
    image = tmp_path / "bottle" / "x.png"
    image.parent.mkdir()
    from PIL import Image
    Image.new("RGB", (64, 64), (90, 90, 90)).save(image)
    done = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model", str(folder), "--backend", "framework",
                           "--out", str(tmp_path / "out.csv"), str(image)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "model.pt" in done.stderr and "width 17" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_patchcore_normalisation_and_categories_are_checked(patchcore_folder, tmp_path):
    path = patchcore_folder / "model.pt"
    assert kinds.PATCHCORE.load(path)[0].bank("bottle").shape[0] == 50
    cases = {
        "hold values that are not finite": lambda b: b["state"]["thresholds"].fill_(float("inf")),
        "finite and > 0": lambda b: b["state"]["spans"].fill_(-1.0),
        "one per category": lambda b: b["state"].__setitem__("thresholds", torch.zeros(4)),
        "distinct names": lambda b: b.__setitem__("categories", ["bottle", "bottle"]),
        "one per category of": lambda b: b["state"].__setitem__("banks", {"carpet": b["state"]["banks"]["bottle"]}),
    }
    for words, change in cases.items():
        with pytest.raises(ModelFolderError, match=words):
            kinds.PATCHCORE.load(_tampered(path, tmp_path, change))


def test_a_keras_file_with_code_or_foreign_layers_is_refused(tmp_path):
    import keras

    from helpers.models.multitask import build_multitask

    good = build_multitask(2, 32)
    good.save(tmp_path / "ok.keras")
    assert kinds.MULTITASK.load(tmp_path / "ok.keras")[0] is not None
    inputs = keras.Input((32, 32, 3))
    lam = keras.Model(inputs, {"category": keras.layers.Lambda(lambda x: x[:, 0, 0, :2])(inputs),
                               "defect": keras.layers.Dense(1, name="defect")(keras.layers.Flatten()(inputs))})
    lam.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFolderError, match="Keras would not load it") as err:
        kinds.MULTITASK.load(tmp_path / "lambda.keras")
    assert "lambda.keras" in str(err.value)
    x = keras.layers.BatchNormalization()(keras.layers.Flatten()(inputs))
    foreign = keras.Model(inputs, {"category": keras.layers.Dense(2, name="category")(x),
                                   "defect": keras.layers.Dense(1, name="defect")(x)})
    foreign.save(tmp_path / "foreign.keras")
    with pytest.raises(ModelFolderError, match="BatchNormalization"):
        kinds.MULTITASK.load(tmp_path / "foreign.keras")
