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
# # 03 · Linear probe on the SimCLR encoder, and a label-free score
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/03_linear_probe.ipynb)
#
# How good are the SimCLR features? The encoder from notebook 02 is **frozen**; a single Linear(2048, 2)
# is trained on **10% of `train`**, drawn stratified by category × label.
#
# | recipe (`full` profile) | |
# |---|---|
# | probe | Linear(2048, 2) on the frozen encoder (features computed once, no augmentation) |
# | optimiser | Adam(lr 1e-4), batch 32, 30 epochs; F1 and AUROC per epoch on `val` |
# | class balance | cross-entropy weighted by inverse class frequencies of the labelled 10% |
# | threshold | F1-max on `val` |
#
# The study reported F1 84.18%, recall 99.36% and a **98.93% false-positive rate** — its probe called
# almost everything defective. We weight the loss and report FPR and specificity on `test`.
#
# A **label-free** variant needs no defect labels at all: the anomaly score of an image is its mean
# distance to the k nearest embeddings of `train` good images (k = 1 and 5).

# %% tags=["setup"]
# Setup. On Colab: fetch the project and the few packages Colab lacks (torch and TensorFlow are
# preinstalled and left alone). Elsewhere: use this checkout (`make run` / `make test` set up a venv).
import os, sys  # noqa: F401 - os: for the settings lines below, when uncommented
from pathlib import Path
IS_COLAB = "google.colab" in sys.modules
if IS_COLAB and not Path("mvtec-defect-toolkit").exists():
    # !git clone -q https://github.com/mvtec-defects/mvtec-defect-toolkit mvtec-defect-toolkit
    # %pip install -q -r mvtec-defect-toolkit/requirements.txt
    # Optional: keep outputs on Google Drive across sessions
    # from google.colab import drive; drive.mount("/content/drive")
    # os.environ["RUNS_DIR"] = "/content/drive/MyDrive/mvtec_runs"
ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents, Path("mvtec-defect-toolkit").resolve()]
            if (p / "helpers" / "__init__.py").exists())
sys.path.insert(0, str(ROOT))

# Settings: uncomment to override the environment variables.
# os.environ["DEFECTS_PROFILE"] = "quick"   # full (GPU, the published recipe) | quick (CPU demo) | smoke (CI)
# os.environ["MVTEC_DIR"] = "/content/drive/MyDrive/mvtec_anomaly_detection"
# %matplotlib inline
from helpers import config, env
cfg = config.get_config()
env.print_versions()
print(env.runtime_notice(cfg.profile.name))
print(f"outputs: {cfg.runs_dir}")


# %% [markdown]
# ## 1 · Data, recipe and the frozen encoder from notebook 02

# %%
from helpers import prepare, metrics, viz, recipes, studies
from helpers import pytorch_track as pt
import pandas as pd, matplotlib.pyplot as plt
prep = prepare.start_notebook(cfg)   # thread caps, TF32 on GPU, seeds; the split notebook 00 wrote
recipe = recipes.scaled(recipes.ProbeRecipe(), cfg.profile)
encoder, meta = pt.load_simclr_encoder(cfg.runs_dir)   # a missing file names the notebook to run first
print("encoder: SimCLR from notebook 02, init weights:", meta["weights"])
recipe

# %% [markdown]
# ## 2 · Train the probe

# %%
run = pt.run_probe(prep, encoder, recipe, encoder_info={"weights": meta["weights"], "simclr_recipe": meta.get("recipe")})
labelled = run.info["labelled"]
print(f"{len(labelled)} labelled training images (of {len(prep.frame('train'))}):",
      labelled.groupby("label").size().rename({0: "good", 1: "defective"}).to_dict())
display(run.history.round(4))
viz.plot_history(run.history, {"loss": ["train_loss", "val_loss"], "val F1 and AUROC": ["val_f1", "val_auroc"]});

# %% [markdown]
# ## 3 · Held-out test results, beside the study's
#
# The study's figures are its own, on a sample of its test data; ours are on the shared held-out `test`.

# %%
ours = {k: run.test_metrics[k] for k in ["accuracy", "precision", "recall", "f1", "specificity", "fpr", "roc_auc", "pr_auc"]}
display(pd.DataFrame({"ours (test)": ours, "study (as reported)": studies.STUDY_PROBE}).round(4))

# %%
test = run.split_scores("test")
print(f"threshold {run.threshold:.4f}, chosen on val (F1-max); scored once on {len(test)} held-out test images")
viz.plot_test_results(run); plt.show()

# %%
display(run.per_category.round(3))
viz.plot_per_category(run); plt.show()

# %% [markdown]
# ## 4 · Label-free: k-nearest-neighbour distance to good training images
#
# No defect label is used: only "these training images are good". Higher distance = more anomalous.

# %%
knn = run.info["knn"]
display(pd.DataFrame({f"k={k}": {"test AUROC": v["auroc"]} for k, v in knn.items()}).round(4))
per_cat = pd.concat({f"k={k}": v["per_category"].set_index("category")["auroc"] for k, v in knn.items()}, axis=1)
per_cat["probe"] = run.per_category.set_index("category")["auroc"]
display(per_cat.round(3))
axes = None
for k, v in knn.items():
    t = v["scores"][v["scores"]["split"] == "test"]
    axes = metrics.plot_roc_pr(t["label"], t["score"], label=f"kNN k={k}", axes=axes)
metrics.plot_roc_pr(test["label"], test["score"], label="probe", axes=axes); plt.show()
