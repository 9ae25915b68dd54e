# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Deployment: export, parity, INT8, latency, `predict`
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/08_deploy.ipynb)
#
# Both studies stop at "model quantization for edge deployment". This notebook does it for the models of
# notebooks 01 (supervised classifier), 03 (SimCLR encoder + linear probe), 04 (Keras multi-task CNN, both
# heads) and 06 (PatchCore: backbone, every category's memory bank and the nearest-neighbour search in one graph
# that returns the image score and the anomaly map): each model notebook leaves a
# **model folder** (`RUNS_DIR/<notebook>/`) holding the model and `model_card.json` — the preprocessing, image
# size, labels, the threshold chosen on `val`, the test metrics and the data/code provenance. Here each folder
# is exported to ONNX, checked against the framework on the `test` images, quantised to INT8 (calibrated on
# `val` good images only), timed, and used by `python -m helpers predict` on a folder with a broken file in it,
# with heatmaps: PatchCore's anomaly maps, and Grad-CAM for the classifiers.

# %% tags=["parameters"]
# Settings: a form on Colab (change them, then Runtime > Run all); `papermill -p NAME VALUE` sets them too.
# USE_DRIVE: on Colab, keep every output on Google Drive, so that each notebook's runtime finds what the
#   earlier notebooks wrote and training resumes after a disconnect (recommended).
# MVTEC_DIR: the MVTec AD root, or your own product's photos sorted into good/ and one folder per defect type
#   (README: "Your own product"); "" looks in the usual places, else uses the built-in sample data.
# PROFILE: "auto" is full on a GPU and quick on a CPU; full = the published recipes, smoke = CI-sized.
USE_DRIVE = True  #@param {type:"boolean"}
MVTEC_DIR = ""  #@param {type:"string"}
PROFILE = "auto"  #@param ["auto", "full", "quick", "smoke"]

# %% tags=["setup"]
# Setup: applies the settings above; nothing to edit here. On Colab it fetches the project at PROJECT_REF
# and installs it as a package without changing any package Colab ships (so no restart prompt);
# elsewhere it uses this checkout (`make run` / `make test` set up a venv).
import os, shutil, subprocess, sys
from pathlib import Path
IS_COLAB = "google.colab" in sys.modules
PROJECT_URL = "https://github.com/mvtec-defects/mvtec-defect-toolkit"
PROJECT_REF = os.environ.get("DEFECTS_REF", "main")  # the project version Colab runs: a branch, tag or commit
if IS_COLAB:
    CHECKOUT = Path("mvtec-defect-toolkit")
    if not (CHECKOUT / "helpers" / "__init__.py").exists():
        shutil.rmtree(CHECKOUT, ignore_errors=True)  # what a failed clone left
        for cmd in (["git", "clone", "-q", PROJECT_URL, str(CHECKOUT)], ["git", "-C", str(CHECKOUT), "checkout", "-q", PROJECT_REF]):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{done.stderr.strip()}\nCheck the runtime's internet "
                                   "connection and that DEFECTS_REF (default: main) names a branch, tag or commit "
                                   "of the project; then run this cell again.")
    sys.path.insert(0, str(CHECKOUT.resolve()))
    from helpers.core import colab
    print("installed:", colab.install(CHECKOUT) or "nothing new")
else:
    ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "helpers" / "__init__.py").exists()), None)
    if ROOT:  # running inside a checkout; otherwise the installed package is used
        sys.path.insert(0, str(ROOT))
# %matplotlib inline
from helpers.core import colab, env
SETTINGS = colab.apply_settings(USE_DRIVE, MVTEC_DIR, PROFILE)
cfg = SETTINGS.config()   # the form's values, passed explicitly (nothing lingers in os.environ)
env.print_versions()
print(env.runtime_notice(cfg.profile.name))
print(SETTINGS.describe())
print(f"outputs: {cfg.runs_dir}")


# %% [markdown]
# ## 1 · The model folders

# %%
import json
import pandas as pd, matplotlib.pyplot as plt
from helpers.artefacts.card import read_card
from helpers.core import layout
from helpers.viz import results
from helpers.workflows import common, deployment
prep = common.start_notebook(cfg, frameworks=False)
folders, missing = deployment.model_folders(cfg.runs_dir)
print("model folders:", *[f"{stem}: {path}" for stem, path in folders.items()], sep="\n  ")
if missing:
    print("left out:", *missing, sep="\n  ")
card = read_card(next(iter(folders.values())))   # validated: every field typed and bounded, the model file's hash checked
print(json.dumps({k: v for k, v in card.as_dict().items() if k in ("kind", "approach", "input", "threshold", "test_metrics")},
                 indent=1))

# %% [markdown]
# ## 2 · Export to ONNX and check it against the framework
#
# The ONNX graph takes the preprocessed batch (the card's `input`: NCHW with ImageNet normalisation for the
# PyTorch models, NHWC in [0, 1] for Keras, NCHW in [0, 1] plus the category's index for PatchCore) and returns
# the defect probability (Keras: and the category probabilities; PatchCore: the normalised image score and the
# anomaly map), so the card's threshold applies unchanged. Parity: the largest difference of the scores on the
# `test` images (goal ≤ 1e-4), of PatchCore's maps next to their largest value, and whether any decision at the
# threshold changes.

# %%
parity = deployment.export_and_check(folders, prep.root)
parity

# %% [markdown]
# ## 3 · INT8: static quantisation calibrated on `val` good images
#
# onnxruntime's static quantisation of the convolutions (int8 weights per channel, uint8 activations; the head and
# the softmax stay fp32, so scores are not rounded) needs the range of every activation: it runs the `val` good images through the model — never `test`. The question is what it costs in
# detection: the test AUROC of each backend, and how many test decisions change. The budget is 0.005 AUROC
# (`checks.AUROC_BUDGET`); the card records each model's result (`int8.quality`).
#
# Watch PatchCore's row. Its score is a distance between patch features, and neighbouring good and defective
# patches differ by less than INT8's rounding of those features: on the built-in data INT8 cost it 0.10 AUROC
# (0.912 → 0.812; docs/benchmarks.md) and gained no speed (its fp32 graph is already small). Deploy PatchCore with the
# fp32 ONNX file. Whether a classifier keeps its AUROC under INT8 is what this table checks on your data (on the
# built-in data the classifiers are at chance, so their small changes here are noise on near-ties).

# %%
quality = deployment.int8_quality(folders, prep.root)
quality.round(4)

# %% [markdown]
# ## 4 · Latency on this machine
#
# Scoring one preprocessed batch (preprocessing excluded), batch 1 and 32, median and 95th percentile over
# repeated runs. `benchmarks/deploy_latency.py` measures the same with peak memory, in one run per machine, for
# `docs/benchmarks.md`; here the repeats are few, so read the ratios, not the last digit.

# %%
repeats = {"smoke": 3, "quick": 5}.get(cfg.profile.name, 10)   # few: make run stays within 5 minutes on a CPU
speed = deployment.latency_table(folders, prep.root, repeats)
results.plot_throughput(speed); plt.show()
speed.round(1)

# %% [markdown]
# ## 5 · `predict` on a folder of new images, with heatmaps
#
# What a user runs on images the model has never seen:
# `python -m helpers predict --model RUNS_DIR/<notebook> FOLDER --out predictions.csv --heatmaps HEATMAP_DIR`.
# Here the folder holds a few `test` images (in folders named after their category: PatchCore has a memory bank
# per category and reads the category from the path, or from `--category`) and one broken file: the broken file
# is listed with its reason, the rest are scored. Each overlay shows the image as the model saw it beside the
# map: PatchCore's anomaly map (green = its category's threshold, red above it), or Grad-CAM toward "defective"
# for a classifier (computed with the framework model: gradients are not in the ONNX file). Each model scores
# with its INT8 file where INT8 stayed within the AUROC budget above, else with the fp32 one.

# %%
incoming = cfg.runs_dir / layout.DEPLOY / layout.INCOMING
deployment.stage_incoming(next(iter(folders.values())), incoming, prep.root)
tables = deployment.predict_each(folders, incoming, cfg.runs_dir / layout.DEPLOY / layout.HEATMAPS)
display(tables[next(iter(tables))].drop(columns="heatmap"))
pd.DataFrame({stem: t.set_index("path")["decision"] for stem, t in tables.items()})

# %%
for stem, table in tables.items():
    if results.plot_predictions(table, stem) is None:
        print(f"{stem}: no image scored, so no map to draw (each file's reason is in its table above)")
        continue
    plt.show()

# %% [markdown]
# ## 6 · The inspector page: try a model without writing code
#
# `python -m helpers serve --model DIR` opens a page where anyone on the line can drop photos and see each one's
# score, the decision at the card's threshold (a slider re-decides without scoring again), the predicted category
# (Keras), where the model looks, and the card in words. It scores with `predict`'s code, so the numbers are
# the same. Here it runs inline on PatchCore's folder (the category comes from a file's name, e.g.
# `bottle_001.png`, or from the menu). It listens on this machine only; a public link only when asked
# (`--share`).

# %%
from helpers.deploy import serve
page = serve.in_notebook(folders.get(layout.PATCHCORE) or next(iter(folders.values())))

# %% [markdown]
# ## 7 · What the model card does not know
#
# The threshold was chosen on this dataset's `val` images. A new camera, lighting, background or resolution
# shifts every score: re-check the threshold on a few known-good images before trusting the decisions. A kind
# of defect the training data never showed may score as good. On the built-in data these numbers say that
# export, quantisation and `predict` work, not how well a model finds real defects.
