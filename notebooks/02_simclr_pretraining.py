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
# | encoder | ResNet-50 (ImageNet init when available), `fc` removed → 2048-d |
# | projection head | Linear(2048, 1024) → ReLU → Linear(1024, 256) |
# | loss | NT-Xent, temperature 0.07 (each view's positive: the other view; negatives: the other 2N − 2) |
# | batches, epochs | 48 with drop_last, 7 epochs, fp32 (TF32 on GPU), gradient clipping 1.0 |
# | optimiser (**our choice**) | the study does not name one: AdamW(lr 1e-3, weight decay 1e-4), linear warm-up over 10% of steps, cosine decay to 0 |
#
# The validation loss is NT-Xent on the good images of `val` with fixed augmentations, so epochs compare.
# Chance level is log(2B − 1) for batch size B. Notebook 03 probes the saved encoder.

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
# ## 1 · Data and recipe

# %%
from helpers import prepare, viz, recipes
from helpers import pytorch_track as pt
prep = prepare.start_notebook(cfg)   # thread caps, TF32 on GPU, seeds; the split notebook 00 wrote
recipe = recipes.scaled(recipes.SimCLRRecipe(), cfg.profile)
recipe

# %% [markdown]
# ## 2 · Pretrain (checkpoint every epoch; a re-run resumes)

# %%
run = pt.run_simclr(prep, recipe)
import math
chance = math.log(2 * run.info["batch_size"] - 1)
print(f"weights: {run.weights} | {run.info['n_train_good']} good training images | batch {run.info['batch_size']}"
      f" | chance level log(2B-1) = {chance:.3f}")
display(run.fit.history.round(4))

# %% [markdown]
# ## 3 · Loss and learning-rate schedule

# %%
fig = viz.plot_history(run.fit.history, {"NT-Xent": ["train_loss", "val_loss"]},
                       lrs=pt.schedule_lrs(recipe, run.info["steps_per_epoch"]),
                       steps_per_epoch=run.info["steps_per_epoch"])
fig.axes[0].axhline(chance, ls="--", c="grey", label="chance"); fig.axes[0].legend(fontsize=8);

# %% [markdown]
# ## 4 · Saved encoder

# %%
print(*sorted(p.name for p in run.out_dir.iterdir()), sep="\n")
encoder, meta = pt.load_simclr_encoder(cfg.runs_dir)
print("reloaded:", meta["arch"], "| image size", meta["image_size"], "| init weights", meta["weights"])
