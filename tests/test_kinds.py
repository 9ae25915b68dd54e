"""A model kind carries its own lists: adding one is one class and one ``register`` call, beside its notebook's stem
in ``helpers/core/layout.py`` (README, CONTRIBUTING).

The toy kind below is a supervised classifier under another name, notebook and report label; nothing else in the
package is edited, and it reaches the report (07), the model folders notebook 08 deploys, notebook 05's models,
``predict`` and the CLI's help and choices."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import cli
from helpers.artefacts.card import card_for, write_card
from helpers.artefacts.record import metrics_record, write_metrics
from helpers.artefacts.scored import ScoredRun
from helpers.data import preprocessing
from helpers.data.synthetic import render_image
from helpers.deploy.predict import predict
from helpers.models import backbones, kinds
from helpers.models.classifiers import Classifier
from helpers.workflows import commands, deployment, explain, report

DATA = {"builtin": True, "name": "built-in", "root": "/data", "manifest_hash": "m1", "split_hash": "s1"}


class _Toy(kinds.SUPERVISED.__class__):
    """The whole of a new kind: its name, notebook, file, report row and trainer (here the supervised one's)."""

    name, title = "toy", "toy classifier"
    notebook, model_file, workflow = "10_toy", "toy.pt", "supervised"
    report_rows = (kinds.ReportRow("scores.csv", "Toy classifier", "a toy, on every train label"),)


@pytest.fixture()
def toy(monkeypatch):
    from helpers.core import layout

    monkeypatch.setattr(layout, "NOTEBOOKS", (*layout.NOTEBOOKS, "10_toy"))   # its notebook ("Add a notebook")
    monkeypatch.setattr(kinds, "KINDS", dict(kinds.KINDS))                    # registered for this test only
    return kinds.register(_Toy())


def test_a_new_kind_reaches_the_report_predict_and_the_cli(toy, tmp_path, capsys):
    import torch

    with pytest.raises(ValueError, match="registered already"):
        kinds.register(_Toy())
    runs, folder = tmp_path / "runs", tmp_path / "runs" / toy.notebook
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    model = Classifier(backbones.build("resnet18", "random")).eval()
    toy.save(model, folder / toy.model_file, backbone="resnet18", image_size=32)
    entry = backbones.get("resnet18")
    spec = toy.input_spec(32, entry.mean, entry.std)
    images = [render_image("bottle", np.random.default_rng(i), 64)[0] for i in range(4)]
    scores = toy.score(model, preprocessing.batch(spec, images)).defect
    paths = [f"bottle/test/{i}.png" for i in range(4)]
    rows = pd.DataFrame({"path": paths * 2, "category": "bottle", "label": [0, 1] * 4,
                         "split": ["val"] * 4 + ["test"] * 4, "score": np.concatenate([scores, scores])})
    rows.to_csv(folder / "scores.csv", index=False)
    record = metrics_record(toy.notebook, "Toy classifier", "shared-split", "smoke", {"test": 4}, 0.5, "f1",
                            {"roc_auc": 0.5}, data=DATA, extra={"backbone": "resnet18", "weights": "random"})
    write_metrics(record, runs)
    run = ScoredRun(toy.notebook, "Toy classifier", rows, 0.5, "f1", {}, pd.DataFrame(), record, folder)
    write_card(folder, card_for(run, toy.name, toy.model_file, spec, backbone="resnet18", weights="random"))

    found, _ = report.load_approaches(runs)                                  # the report (07)
    assert [a.name for a in found] == ["Toy classifier"] and found[0].backbone == "resnet18 (random)"
    assert toy.notebook in deployment.model_folders(runs)[0]                  # notebook 08's model folders
    assert toy in explain.explained_kinds()                                   # notebook 05's models
    assert "toy" in commands.trainable()                                      # python -m helpers train toy
    for i, image in enumerate(images):
        from PIL import Image

        Image.fromarray(image).save(tmp_path / f"photo_{i}.png")
    table = predict(folder, [tmp_path / f"photo_{i}.png" for i in range(4)], backend="framework", progress=False)
    assert table["problem"].eq("").all() and np.allclose(table["score"], scores, atol=1e-5)    # predict
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    assert "(01, 03, 04, 06 or 10)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "toy" in capsys.readouterr().out


def test_the_colab_form_and_the_cli_list_the_registrys_backbones(capsys):
    """A backbone is one entry in helpers/models/backbones.py: the notebooks' form and the CLI's help read it."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("nbtool", Path(__file__).resolve().parents[1] / "tools" / "notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    form = tool.EXTRA_PARAMETERS["01"].splitlines()[-1]
    assert form.endswith("[" + ", ".join(f'"{c}"' for c in backbones.CHOICES) + "]")
    with pytest.raises(SystemExit):
        cli.main(["oneclass", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert all(key in shown for key in backbones.BACKBONES)
