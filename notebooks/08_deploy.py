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
# notebooks 01 (supervised ResNet-50), 03 (SimCLR encoder + linear probe) and 04 (Keras multi-task CNN, both
# heads): each model notebook leaves a
# **model folder** (`RUNS_DIR/<notebook>/`) holding the model and `model_card.json` — the preprocessing, image
# size, labels, the threshold chosen on `val`, the test metrics and the data/code provenance. Here each folder
# is exported to ONNX, checked against the framework on the `test` images, quantised to INT8 (calibrated on
# `val` good images only), timed, and used by `python -m helpers predict` on a folder with a broken file in it.
#
# Not yet here (issue 14, open): PatchCore (06), and heatmap overlays in `predict`.

# %% tags=["parameters"]
# Settings: a form on Colab (change them, then Runtime > Run all); `papermill -p NAME VALUE` sets them too.
# USE_DRIVE: on Colab, keep every output on Google Drive, so that each notebook's runtime finds what the
#   earlier notebooks wrote and training resumes after a disconnect (recommended).
# MVTEC_DIR: the MVTec AD root; "" looks in the usual places, else uses the built-in sample data.
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
    from helpers import colab
    print("installed:", colab.install(CHECKOUT) or "nothing new")
else:
    ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "helpers" / "__init__.py").exists()), None)
    if ROOT:  # running inside a checkout; otherwise the installed package is used
        sys.path.insert(0, str(ROOT))
# %matplotlib inline
from helpers import colab, config, env
SETTINGS = colab.apply_settings(USE_DRIVE, MVTEC_DIR, PROFILE)
cfg = config.get_config()
env.print_versions()
print(env.runtime_notice(cfg.profile.name))
print(SETTINGS.describe())
print(f"outputs: {cfg.runs_dir}")


# %% [markdown]
# ## 1 · The model folders

# %%
import json, shutil
import pandas as pd, matplotlib.pyplot as plt
from helpers import deploy, prepare, runs
prep = prepare.start_notebook(cfg, frameworks=False)
folders, missing = deploy.model_folders(cfg.runs_dir)
print("model folders:", *[f"{stem}: {path}" for stem, path in folders.items()], sep="\n  ")
if missing:
    print("left out:", *missing, sep="\n  ")
card = deploy.read_model_card(next(iter(folders.values())))
print(json.dumps({k: card[k] for k in ("approach", "input", "output", "threshold", "test_metrics")}, indent=1))

# %% [markdown]
# ## 2 · Export to ONNX and check it against the framework
#
# The ONNX graph takes the preprocessed batch (the card's `input`: NCHW with ImageNet normalisation for the
# PyTorch models, NHWC in [0, 1] for Keras) and returns the defect probability (and, for Keras, the category
# probabilities), so the card's threshold applies unchanged. Parity: the largest difference of any output on the
# `test` images (goal ≤ 1e-4) and whether any decision at the threshold changes.

# %%
rows = []
for stem, folder in folders.items():
    deploy.export_onnx(folder)
    images, labels = deploy.run_images(folder, "test", root=prep.root)
    check = deploy.parity(folder, images)
    rows.append({"model": stem, "test images": check["n"], "max |onnx - framework|": check["max_abs_diff"],
                 "same decisions": check["same_decisions"]})
parity = pd.DataFrame(rows)
parity

# %% [markdown]
# ## 3 · INT8: static quantisation calibrated on `val` good images
#
# onnxruntime's static quantisation of the convolutions (int8 weights per channel, uint8 activations; the head and
# the softmax stay fp32, so scores are not rounded) needs the range of every activation: it runs the `val` good images through the model — never `test`. The question is what it costs in
# detection: the test AUROC of each backend, and how many test decisions change.

# %%
rows = []
for stem, folder in folders.items():
    deploy.quantize_int8(folder, root=prep.root)
    results = {b: deploy.evaluate(folder, b, root=prep.root) for b in deploy.BACKENDS}
    sizes = deploy.file_sizes(folder)
    for backend, res in results.items():
        rows.append({"model": stem, "backend": backend, "test AUROC": res["roc_auc"],
                     "AUROC change vs framework": res["roc_auc"] - results["framework"]["roc_auc"],
                     "decisions changed vs framework": int((res["decisions"] != results["framework"]["decisions"]).sum()),
                     "size MiB": sizes.get(backend)})
quality = pd.DataFrame(rows)
quality.round(4)

# %% [markdown]
# ## 4 · Latency on this machine
#
# Scoring one preprocessed batch (preprocessing excluded), batch 1 and 32, median and 95th percentile over
# repeated runs. `benchmarks/deploy_latency.py` measures the same with peak memory, in one run per machine, for
# `docs/benchmarks.md`; here the repeats are few, so read the ratios, not the last digit.

# %%
repeats = 3 if cfg.profile.name == "smoke" else 10
rows = []
for stem, folder in folders.items():
    images, _ = deploy.run_images(folder, "test", root=prep.root)
    for backend in deploy.BACKENDS:
        for row in deploy.latency(folder, backend, images[:32], batch_sizes=(1, 32), repeats=repeats, warmup=1):
            rows.append({"model": stem, **row})
speed = pd.DataFrame(rows)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for ax, batch in zip(axes, (1, 32)):
    view = speed[speed["batch"] == batch].pivot(index="model", columns="backend", values="images_per_s")
    view[list(deploy.BACKENDS)].plot.barh(ax=ax)
    ax.set_title(f"images / s at batch {batch} (higher is better)"); ax.set_ylabel("")
plt.tight_layout(); plt.show()
speed.round(1)

# %% [markdown]
# ## 5 · `predict` on a folder of new images
#
# What a user runs on images the model has never seen:
# `python -m helpers predict --model RUNS_DIR/<notebook> FOLDER --out predictions.csv`. Here the folder holds
# a few `test` images and one broken file: the broken file is listed with its reason, the rest are scored.

# %%
folder = next(iter(folders.values()))
incoming = cfg.runs_dir / runs.DEPLOY / "incoming"
shutil.rmtree(incoming, ignore_errors=True); incoming.mkdir(parents=True)
images, labels = deploy.run_images(folder, "test", root=prep.root)
picked = [images[i] for i in sorted({*range(0, len(images), max(1, len(images) // 6))})][:6]
for i, path in enumerate(picked):
    shutil.copy(path, incoming / f"{i}_{path.parent.name}_{path.name}")
(incoming / "broken.png").write_bytes(picked[0].read_bytes()[:200])
table = deploy.predict(folder, [incoming], backend="onnx-int8", progress=False)
table

# %%
scored = table[table["problem"] == ""].reset_index(drop=True)
fig, axes = plt.subplots(1, len(scored), figsize=(2.2 * len(scored), 2.6))
for ax, row in zip(fig.axes, scored.itertuples()):
    ax.imshow(plt.imread(row.path), cmap="gray"); ax.axis("off")
    ax.set_title(f"{row.decision}\n{row.score:.2f}", fontsize=9, color="crimson" if row.decision == "defective" else "green")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 6 · What the model card does not know
#
# The threshold was chosen on this dataset's `val` images. A new camera, lighting, background or resolution
# shifts every score: re-check the threshold on a few known-good images before trusting the decisions. A kind
# of defect the training data never showed may score as good. On the built-in data these numbers say that
# export, quantisation and `predict` work, not how well a model finds real defects.
