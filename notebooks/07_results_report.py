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
# # 07 · Every approach on the same held-out test images
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/07_results_report.ipynb)
#
# The comparison neither study could make: supervised, self-supervised, kNN, multi-task and
# one-class approaches, **all scored on the same `test` images** that none of them saw for training,
# early stopping or threshold choice. Each threshold was chosen on `val` (F1-max). Nothing is refitted
# here: the notebook reads `RUNS_DIR/<notebook>/scores.csv` and `metrics.json` of notebooks 01–06.
# Missing approaches are named and left out; an approach that could not score some test images (PatchCore has no
# memory bank for a category without good training images) is named with its reasons, and every table compares
# the approaches on the test images all of them scored.
#
# Every figure carries its **95% bootstrap interval** (test images resampled within each category and label): the
# range it could take on another draw of test images this size. Differences inside it are not differences.

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
# ## 1 · What is there

# %%
import matplotlib.pyplot as plt
from helpers.evaluation import studies
from helpers.viz import results
from helpers.workflows import common, report
prep = common.start_notebook(cfg, frameworks=False)
approaches, missing = report.load_approaches(cfg.runs_dir)
for line in missing:
    print("MISSING —", line)
data = report.check_same_data(cfg.runs_dir, prep.provenance())   # raises if runs saw other data or splits
print(f"data: {data['name']} at {data['root']} (manifest {data['manifest_hash']}, split {data['split_hash']})")
cov = report.coverage(approaches, prep.split[prep.split["split"] == "test"])
n_test = len(cov.common)
print(f"{len(approaches)} approaches. " + cov.describe())
display(cov.per_category)       # test images scored / test images, per approach and category
backbone_warning = report.mixed_backbones(approaches)
if backbone_warning:
    print("NOTE —", backbone_warning)

# %% [markdown]
# ## 2 · The table
#
# Every approach on the same test images, at the threshold it chose on `val`. Read it with two columns in mind:
#
# - **The labels each used**, counted: defect labels it trained on; labels used to *pick* good images (SimCLR's
#   pretraining set and the kNN and PatchCore banks hold `train`'s good images only, and `train` also holds
#   defective images, so picking them takes every `train` label); and the `val` labels that chose early
#   stopping, the checkpoint or the threshold. Nothing here is "label-free" on this split.
# - **Pooled vs per category**: `roc_auc` pools all test images; `category AUROC (mean)` is the mean of the
#   per-category AUROCs. PatchCore's and kNN's scores are distances on a scale of their own per category, so
#   they get a threshold per category (on that category's `val` images) and their scores are normalised per
#   category before pooling (`(s − t) / (max − min) + 0.5` on val, anomalib's min-max centred on the threshold).

# %%
table = report.comparison_table(approaches, cov)
display(report.readable_table(table))
print(results.interval_caption())

# %% [markdown]
# ### Which differences can this test set resolve?
#
# For each pair, the difference of test AUROC and its 95% interval from a **paired bootstrap**: both approaches'
# scores on the same resampled images, so what the images share cancels. An interval that includes 0 means these
# test images cannot tell the two apart — whatever the table's third decimal says.

# %%
comparisons = report.paired_comparisons(approaches, cov)
for line in comparisons["in words"]:
    print(line)

# %% [markdown]
# Under the MVTec standard protocol (fit on MVTec's `train/good` as the folders give it, judged by AUROC on
# MVTec's `test` folders) the one-class method needs no label at all — a different set of test images:

# %%
standard_row = report.standard_protocol_row(cfg.runs_dir)
display(standard_row)

# %% [markdown]
# ### The studies' own figures
#
# Reference only — each measured differently, none on these test images.

# %%
display(studies.study_rows().set_index("approach"))

# %% [markdown]
# ## 3 · Per category and the curves

# %%
heatmap, low, high = report.category_auroc(approaches, cov)
if len(heatmap):
    results.plot_heatmap(heatmap, low, high); plt.show()
    results.plot_curves(approaches, report.on_common(approaches, cov)); plt.show()

# %% [markdown]
# ## 4 · Localisation: Grad-CAM of each model and PatchCore's maps, against the masks

# %%
loc = report.localisation(cfg.runs_dir)
display(results.interval_table(loc, ["pixel_auroc", "au_pro", "pointing_game"]))

# %% [markdown]
# ## 5 · How many labels?
#
# This table compares each approach at the labels its recipe uses. Notebook 09 (`09_label_efficiency.ipynb`)
# asks the practitioner's question: from how many labelled defective images does a supervised approach overtake
# the ones that need none? Its answer, when it has run:

# %%
labels_summary = report.label_efficiency(cfg.runs_dir)
display(labels_summary if labels_summary is not None else "not run yet: run notebook 09_label_efficiency.ipynb")

# %% [markdown]
# ## 6 · Threshold explorer
#
# Move the threshold (as a quantile of the test scores) and watch precision, recall and the
# false-positive rate trade off. The val-chosen threshold is printed for reference.

# %%
results.threshold_explorer(approaches);

# %% [markdown]
# ## 7 · Export

# %%
path = report.export(cfg.runs_dir, table, heatmap, loc, standard=standard_row, comparisons=comparisons, cov=cov,
                     notes={"n_test": n_test, "profile": cfg.profile.name, "missing": missing,
                            "mixed_backbones": backbone_warning,
                            "label_efficiency": report.label_efficiency_note(labels_summary),
                            "data": "built-in sample (not MVTec AD)" if prep.source.builtin else str(prep.root),
                            "provenance": data})
print(path.read_text())
