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
# # 02 · SimCLR: self-supervised pretraining on good images
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/02_simclr_pretraining.ipynb)
#
# SimCLR learns features without labels: two random augmentations of the same image should map close
# together, away from every other image in the batch (the NT-Xent loss). Here it sees only the **good**
# images of `train`.
#
# | recipe (`full` profile) | |
# |---|---|
# | encoder | the study's ResNet-50 with ImageNet weights (`BACKBONE = "auto"`; offline, loudly, EfficientNet-Lite0: its ImageNet weights ship in a package), pooled features |
# | projection head | Linear(features, 1024) → ReLU → Linear(1024, 256) |
# | loss | NT-Xent, temperature 0.07 (each view's positive: the other view; negatives: the other 2N − 2) |
# | batches, epochs | 48 with drop_last, 7 epochs, fp32 (TF32 on GPU), gradient clipping 1.0 |
# | optimiser (**our choice**) | the study does not name one: AdamW(lr 1e-3, weight decay 1e-4), linear warm-up over 10% of steps, cosine decay to 0 |
#
# The validation loss is NT-Xent on the good images of `val` with fixed augmentations, so epochs compare.
# Chance level is log(2B − 1) for batch size B. Notebook 03 probes the saved encoder.
#
# **Untested: the learning rate from ImageNet weights.** lr 1e-3 was chosen on generated data from a *random*
# initialisation (3e-4 stayed at chance, 3e-3 collapsed; `docs/benchmarks.md`). The `full` profile starts from
# ImageNet weights, where a rate tuned from scratch may be too high and wash the pretrained features out. On a
# full run, watch two things: the training loss should fall below chance (log(2B − 1)) within the first epoch
# or two and keep falling without collapsing towards 0 at once; and notebook 03's probe and kNN AUROC should
# beat those of the ImageNet encoder before SimCLR (if they do not, try lr 3e-4).

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
from helpers.training import recipes
from helpers.viz import training
from helpers.workflows import common, simclr
from helpers.models import backbones
prep = common.start_notebook(cfg)   # thread caps, TF32 on GPU, seeds; the split notebook 00 wrote
choice, _ = backbones.resolve(BACKBONE, recipes.SimCLRRecipe().backbone)   # offline: the stand-in, loudly
print("backbone:", choice.describe())
recipe = recipes.for_backbone(recipes.scaled(recipes.SimCLRRecipe(), cfg.profile), choice.key)
recipes.recipe_table(recipe, choice.key)   # each value, the published one where a profile shrinks it, and its source

# %% [markdown]
# ## 2 · Pretrain (checkpoint every epoch; a re-run resumes)

# %%
run = simclr.run(prep, recipe, backbone=choice)
import math
chance = math.log(2 * run.batch_size - 1)
print(f"weights: {run.weights} | {run.n_train_good} good training images | batch {run.batch_size}"
      f" | chance level log(2B-1) = {chance:.3f}")
display(run.fit.history.round(4))

# %% [markdown]
# ## 3 · Loss and learning-rate schedule

# %%
fig = training.plot_history(run.fit.history, {"NT-Xent": ["train_loss", "val_loss"]},
                            lrs=simclr.schedule_lrs(recipe, run.steps_per_epoch), steps_per_epoch=run.steps_per_epoch)
fig.axes[0].axhline(chance, ls="--", c="grey", label="chance"); fig.axes[0].legend(fontsize=8);

# %% [markdown]
# ## 4 · Saved encoder

# %%
print(*sorted(p.name for p in run.out_dir.iterdir()), sep="\n")
encoder, meta = simclr.load_encoder(cfg.runs_dir)
print("reloaded:", meta["kind"], "| backbone", meta["backbone"], "| image size", meta["image_size"],
      "| init weights", meta["weights"])
