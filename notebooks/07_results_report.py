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
# The comparison neither study could make: supervised, self-supervised, label-free, multi-task and
# one-class approaches, **all scored on the same `test` images** that none of them saw for training,
# early stopping or threshold choice. Each threshold was chosen on `val` (F1-max). Nothing is refitted
# here: the notebook reads `RUNS_DIR/<notebook>/scores.csv` and `metrics.json` of notebooks 01–06.
# Missing approaches are named and left out.

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
# ## 1 · What is there

# %%
import matplotlib.pyplot as plt
from helpers import prepare, report, studies
prep = prepare.start_notebook(cfg, frameworks=False)
approaches, missing = report.load_approaches(cfg.runs_dir)
for line in missing:
    print("MISSING —", line)
data = report.check_same_data(cfg.runs_dir, prep.provenance())   # raises if runs saw other data or splits
n_test = report.check_same_test_images(approaches)   # raises if any approach saw other test images
print(f"data: {data['name']} at {data['root']} (manifest {data['manifest_hash']}, split {data['split_hash']})")
print(f"{len(approaches)} approaches, all scored on the same {n_test} test images")

# %% [markdown]
# ## 2 · The table

# %%
table = report.comparison_table(approaches)
display(table.round(4))

# %% [markdown]
# ### The studies' own figures
#
# Reference only — each measured differently, none on these test images.

# %%
display(studies.study_rows().set_index("approach"))

# %% [markdown]
# ## 3 · Per category and the curves

# %%
heatmap = report.category_auroc(approaches)
if len(heatmap):
    report.plot_heatmap(heatmap); plt.show()
    report.plot_curves(approaches); plt.show()

# %% [markdown]
# ## 4 · Localisation: Grad-CAM of each model and PatchCore's maps, against the masks

# %%
loc = report.localisation(cfg.runs_dir)
display(loc.round(3))

# %% [markdown]
# ## 5 · Threshold explorer
#
# Move the threshold (as a quantile of the test scores) and watch precision, recall and the
# false-positive rate trade off. The val-chosen threshold is printed for reference.

# %%
report.threshold_explorer(approaches);

# %% [markdown]
# ## 6 · Export

# %%
path = report.export(cfg.runs_dir, table, heatmap, loc,
                     {"n_test": n_test, "profile": cfg.profile.name, "missing": missing,
                      "data": "built-in sample (not MVTec AD)" if prep.source.builtin else str(prep.root),
                      "provenance": data})
print(path.read_text())
