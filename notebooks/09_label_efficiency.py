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
# # 09 · How many labels? Supervision against the methods that need none
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/09_label_efficiency.ipynb)
#
# Study 000 says self-supervision "reduces labelling costs while maintaining strong performance". Labels cost
# inspection time, so the question a practitioner pays for is: **from how many labelled defective images does a
# supervised model beat a method that needs none?** Neither study (nor anomalib) answers it; this notebook
# measures it on your data.
#
# - The **supervised classifier** (notebook 01's recipe) and the **linear probe** on notebook 02's SimCLR encoder
#   (notebook 03's recipe) train on nested, stratified subsets of `train`'s labels — every category × label
#   stratum contributes its share, a larger budget holds every image of a smaller one, and each category gets a
#   labelled defective image where the budget allows — several seeds per budget (a seed draws the subset and
#   initialises the model).
# - **kNN** on the SimCLR features (notebook 03) and **PatchCore** (notebook 06) need no defect label: they are the
#   reference lines. (Picking `train`'s good images for their banks takes labels too; the report counts those.)
# - Every point is test AUROC on the same held-out `test` images as every other notebook, with its bootstrap 95%
#   interval; the dots show the spread over seeds — two different sources of uncertainty.
#
# Run notebooks 01, 02, 03 and 06 first (their outputs are read from `RUNS_DIR`).

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
# ## 1 · The plan and what it will cost

# %%
import time
import matplotlib.pyplot as plt
from helpers.core import layout
from helpers.data import budgets
from helpers.models import backbones
from helpers.training import recipes
from helpers.viz import results
from helpers.workflows import common, labels
prep = common.start_notebook(cfg)   # thread caps, TF32 on GPU, seeds; the split notebook 00 wrote
started = time.time()
choice, _ = backbones.resolve(BACKBONE, recipes.SupervisedRecipe().backbone)   # offline: the stand-in, loudly
print("backbone:", choice.describe())
recipe = recipes.scaled(recipes.LabelBudgetRecipe(), cfg.profile)
display(recipes.recipe_table(recipe))
display(budgets.budget_table(budgets.nested_budgets(prep.frame("train"), recipe.probe_fractions, cfg.seed)))
todo = labels.plan(prep, recipe)
seconds, measured = labels.estimate_seconds(prep, todo)
print(f"{len(todo)} fits: {int((todo['approach'] == labels.SUPERVISED).sum())} supervised fine-tunes (estimated "
      f"{seconds / 60:.1f} min from {measured}) and {int((todo['approach'] == labels.PROBE).sum())} probe fits "
      "(seconds: the encoder's features are computed once)")

# %% [markdown]
# ## 2 · Train on every budget

# %%
result = labels.run(prep, recipe, backbone=choice)
display(result.runs.round(3))

# %% [markdown]
# ## 3 · The answer
#
# The line is the mean over seeds; its band the bootstrap 95% interval over test images (mean over seeds); the
# dots each seed. Dashed: the approaches that use no defect label, with their intervals. Where a curve's band
# overlaps a reference's, these test images cannot tell them apart.

# %%
fig = results.plot_label_efficiency(result.runs, result.references,
                                    title=f"How many labels? {prep.provenance()['name']}, {cfg.profile.name} profile, "
                                          f"{result.backbone}")
plt.show()
fig.savefig(layout.notebook_dir(cfg.runs_dir, layout.LABELS) / layout.LABEL_FIGURE, dpi=120, bbox_inches="tight")
for line in result.summary["in words"]:
    print(line)
if prep.source.builtin:
    print("Built-in sample data: this says how the comparison is made, not how many labels MVTec AD needs.")

# %%
record = labels.write_outputs(prep, result, started)
print("written:", layout.artefact(cfg.runs_dir, layout.LABELS, layout.LABEL_RUNS), "and the summary the report links")
