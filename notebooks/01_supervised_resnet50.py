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
# # 01 · Supervised classifier (study 000's ResNet-50 recipe): the baseline
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/01_supervised_resnet50.ipynb)
#
# An ImageNet backbone fine-tuned to say good / defective. The study's network is torchvision's ResNet-50
# (`IMAGENET1K_V2`): `BACKBONE = "auto"` uses it whenever its weights can be had — downloaded (Colab), or copied
# into torch's hub cache on a machine without internet. Without them the series uses **EfficientNet-Lite0**, the
# ImageNet network whose weights ship in a package, and **says so loudly** in the notebook and in every output:
# never random weights (those train nothing on this data, measured: docs/benchmarks.md).
#
# | recipe (`full` profile) | |
# |---|---|
# | frozen | the stem and the stride-4 and stride-8 stages (ResNet-50's `conv1`, `layer1`, `layer2`); the last two stages and the head train |
# | head (replaces `fc`) | Dropout(0.5) → Linear(features, 512) → ReLU → BatchNorm1d(512) → Dropout(0.3) → Linear(512, 2) (width 512: *our choice*, the study gives none) |
# | optimiser | AdamW(lr 1e-3, weight decay 1e-4), OneCycleLR(max_lr 0.01 — 1e-3 on EfficientNet-Lite0, *our choice*, measured) stepped every batch |
# | loss | cross-entropy weighted by the inverse class frequencies of `train` |
# | batches, epochs | 64, up to 30 (*our choice*: the study gives no epoch count); early stopping (patience 5) and the epoch kept by val AUROC (*our choice*: the study's val loss, measured) |
# | augmentation | flips, ±20° rotation, colour jitter 0.2, light blur (*our choice*: the study names no parameters) |
# | numerics | fp32 with TF32 on GPU, gradient clipping at max-norm 1.0, 256×256 input |
#
# Trained on `train`, early-stopped and thresholded on `val`, scored once on `test`. The `quick` and
# `smoke` profiles shrink image size, epochs and images per epoch — never the method. The table below the setup
# shows every value with its source.

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
# BACKBONE: "auto" = the study's network with its ImageNet weights (downloaded, or found in torch's hub
#   cache); without them, loudly, EfficientNet-Lite0 (ImageNet weights shipped in a package). Or a name.
BACKBONE = "auto"  #@param ["auto", "resnet50", "wide_resnet50_2", "resnet18", "efficientnet_lite0"]

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
# ## 1 · Data and recipe

# %%
from helpers.evaluation import studies
from helpers.training import recipes
from helpers.viz import results, training
from helpers.workflows import common, supervised
import matplotlib.pyplot as plt
from helpers.models import backbones
prep = common.start_notebook(cfg)   # thread caps, TF32 on GPU, seeds; the split notebook 00 wrote
choice, _ = backbones.resolve(BACKBONE, recipes.SupervisedRecipe().backbone)   # offline: the stand-in, loudly
print("backbone:", choice.describe())
recipe = recipes.for_backbone(recipes.scaled(recipes.SupervisedRecipe(), cfg.profile), choice.key)
recipes.recipe_table(recipe, choice.key)   # each value, the published one where a profile shrinks it, and its source

# %% [markdown]
# ## 2 · Train
#
# Progress bars show each epoch; a checkpoint is written after every epoch to
# `RUNS_DIR/01_supervised_resnet50/`. If the session disconnects, run the notebook again: training
# resumes where it stopped.

# %%
run = supervised.run(prep, recipe, backbone=choice)
fitted = run.fit
print(f"weights: {run.weights} | epochs run: {len(run.history)} | best epoch: {fitted.best_epoch}"
      f"{' (stopped early)' if fitted.stopped_early else ''}")
display(run.history.round(4))

# %% [markdown]
# ## 3 · Curves and the learning-rate schedule (dotted: the epoch whose weights were kept)

# %%
training.plot_history(run.history, {"loss": ["train_loss", "val_loss"], "val accuracy and F1": ["val_acc", "val_f1"],
                                    "val AUROC": ["val_auroc"]},
                      lrs=supervised.schedule_lrs(recipe, run.steps_per_epoch),
                      steps_per_epoch=run.steps_per_epoch, best_epoch=fitted.best_epoch);

# %% [markdown]
# ## 4 · Held-out test results
#
# The threshold is the F1-maximising one on `val`; `test` is touched once, here. Beside each figure its 95%
# bootstrap interval: the range the figure could take on another draw of test images this size (a handful per
# category on the built-in data, so wide). Next to ours, the study's own figures — on its own protocol, so not a
# like-for-like comparison.

# %%
display(results.result_table(run, study=studies.STUDY_SUPERVISED))
print(results.interval_caption())

# %%
test = run.split_scores("test")
print(f"threshold {run.threshold:.4f}, chosen on val (F1-max); scored once on {len(test)} held-out test images")
results.plot_test_results(run); plt.show()

# %% [markdown]
# ## 5 · Per category

# %%
display(results.interval_table(run.per_category, ["auroc"]))
results.plot_per_category(run); plt.show()

# %% [markdown]
# ## 6 · The model folder and `predict()`
#
# `metrics.json` (the shared schema), `scores.csv` (val and test scores, read by the report),
# `history.csv`, `model.pt` and its `model_card.json` are under `RUNS_DIR/01_supervised_resnet50/`: a model folder.
# `predict()` reloads it and scores image files the way `test` was scored (the same preprocessing); notebook 08
# exports it to ONNX.

# %%
from helpers.deploy.predict import predict
print(*sorted(p.name for p in run.out_dir.iterdir()), sep="\n")
sample = test.groupby("label").head(2)
again = predict(run.out_dir, [prep.root / p for p in sample["path"]], backend="framework", progress=False)
display(sample.assign(predict=again["score"].to_numpy())[["path", "label", "score", "predict"]])
