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
# # 03 · Linear probe on the SimCLR encoder, and a kNN score without defect labels
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/03_linear_probe.ipynb)
#
# How good are the SimCLR features? The encoder from notebook 02 (on the backbone 02 used) is **frozen**; a single
# Linear(features, 2)
# is trained on the labels of **10% of `train`**, drawn stratified by category × label. Labels counted
# honestly, that is not all this approach used: SimCLR pretrained on `train`'s *good* images, and picking
# them out of `train` (which also holds defective images) took every `train` label; the threshold took
# every `val` label. `metrics.json` (`labels_used`) and the report count each.
#
# | recipe (`full` profile) | |
# |---|---|
# | probe | Linear(features, 2) on the frozen encoder (features computed once, no augmentation) |
# | optimiser | Adam(lr 1e-4), batch 32, 30 epochs — and at least 300 steps (*our choice*: a small labelled set gives 30 epochs of one step each, too few to move the probe; the extra epochs cost milliseconds); F1 and AUROC per epoch on `val` |
# | class balance | cross-entropy weighted by inverse class frequencies of the labelled 10% (our choice: the study's probe called almost everything defective) |
# | gradient clipping | max-norm 1.0, as every other torch model here (our choice: the study does not say) |
# | threshold | F1-max on `val` |
#
# The study reported F1 84.18%, recall 99.36% and a **98.93% false-positive rate** — its probe called
# almost everything defective. It trained its probe on a 10% sample *of its test data* (its write-up does
# not say how that sample was drawn). We train on 10% of `train`, weight the loss and report FPR and
# specificity on `test`.
#
# A **kNN** variant uses no defect label for training: the anomaly score of an image is its mean distance
# to the k nearest embeddings of `train`'s good images (k = 1 and 5). The bank of good images is picked by
# label, and its scores, distances on a scale of their own per category, get a threshold per category
# (on that category's `val` images) — as PatchCore's in 06.

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
# ## 1 · Data, recipe and the frozen encoder from notebook 02

# %%
from helpers.evaluation import studies
from helpers.training import recipes
from helpers.viz import results, training
from helpers.workflows import common, probe, simclr
import pandas as pd, matplotlib.pyplot as plt
prep = common.start_notebook(cfg)   # thread caps, TF32 on GPU, seeds; the split notebook 00 wrote
recipe = recipes.scaled(recipes.ProbeRecipe(), cfg.profile)
encoder, meta = simclr.load_encoder(cfg.runs_dir)   # a missing file names the notebook to run first
print("encoder: SimCLR from notebook 02, init weights:", meta["weights"])
recipes.recipe_table(recipe)   # each value, the published one where a profile shrinks it, and its source

# %% [markdown]
# ## 2 · Train the probe

# %%
run = probe.run(prep, encoder, recipe, encoder_info={"weights": meta["weights"], "simclr_recipe": meta.get("recipe")})
labelled = run.labelled
print(f"{len(labelled)} labelled training images (of {len(prep.frame('train'))}):",
      labelled.groupby("label").size().rename({0: "good", 1: "defective"}).to_dict())
display(run.history.round(4))
training.plot_history(run.history, {"loss": ["train_loss", "val_loss"], "val F1 and AUROC": ["val_f1", "val_auroc"]});

# %% [markdown]
# ## 3 · Held-out test results, beside the study's
#
# The study's figures are its own, on a sample of its test data; ours are on the shared held-out `test`.

# %%
display(results.result_table(run, study=studies.STUDY_PROBE))
print(results.interval_caption())

# %%
test = run.split_scores("test")
print(f"threshold {run.threshold:.4f}, chosen on val (F1-max); scored once on {len(test)} held-out test images")
results.plot_test_results(run); plt.show()

# %%
display(results.interval_table(run.per_category, ["auroc"]))
results.plot_per_category(run); plt.show()

# %% [markdown]
# ## 4 · Label-free: k-nearest-neighbour distance to good training images
#
# No defect label is used: only "these training images are good". Higher distance = more anomalous.

# %%
knn = run.knn
display(pd.DataFrame({f"k={k}": {"test AUROC [95% interval]": str(v["auroc_interval"])} for k, v in knn.items()}))
per_cat = pd.concat({f"k={k}": results.interval_table(v["per_category"], ["auroc"]).set_index("category")["auroc"]
                     for k, v in knn.items()}, axis=1)
per_cat["probe"] = results.interval_table(run.per_category, ["auroc"]).set_index("category")["auroc"]
display(per_cat)
axes = None
for k, v in knn.items():
    t = v["scores"][v["scores"]["split"] == "test"]
    axes = results.plot_roc_pr(t["label"], t["score"], label=f"kNN k={k}", axes=axes)
results.plot_roc_pr(test["label"], test["score"], label="probe", axes=axes); plt.show()
