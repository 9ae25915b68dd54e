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
# # 05 · What did the models learn? t-SNE, Grad-CAM, and localisation scored against the masks
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/05_tsne_gradcam.ipynb)
#
# The models of notebooks 01–04, on the same held-out `test` images:
#
# - **t-SNE** (scikit-learn; perplexity 30, PCA init, random_state 42) of the Keras model's shared Dense(512),
#   the supervised classifier's hidden layer (its head's 512 units: what its last layer separates) and the SimCLR
#   encoder's pooled features — coloured by category and by good/defective. Silhouette scores are computed in the
#   *original* feature space (t-SNE distorts distances), so they are numbers you can compare.
# - **Class-activation maps** toward "defective": **HiResCAM** (Draelos & Carin 2020; the `grad-cam` package) of the
#   log-odds of "defective" (what the score ranks by) over the backbone's stride-4, 8 and 16 stages, averaged over
#   the image and its two mirror images, for the supervised classifier and the linear probe; for the Keras models
#   (`tf.GradientTape`), over the same three views, at the study CNN's last Conv2D and at the ImageNet network's
#   stride-8, 16 and 32 outputs. *Our choice*, measured against the study's Grad-CAM of the defective
#   logit at the last stage in section 4: Grad-CAM averages each channel's gradient over the image, at stride 32 a
#   128 px input leaves a 4×4 map whose peak rarely lands on a small defect, and one view's noise averages out over
#   three.
# - **Localisation, measured** — what neither study did: for each defective `test` image with a mask, the
#   pixel AUROC of the CAM (upsampled to the mask) and the pointing game (is the CAM's maximum inside
#   the mask?), per model and category.
#
# A model that is missing (its notebook not run yet) is named, and the others carry on.

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
# ## 1 · Data and the trained models

# %%
import time
import numpy as np, pandas as pd, matplotlib.pyplot as plt
from helpers.artefacts import scored
from helpers.explain import features, gradcam
from helpers.viz import features as feature_plots
from helpers.viz import maps as map_plots
from helpers.viz import results
from helpers.workflows import common, explain
started = time.time()
prep = common.start_notebook(cfg)
models, missing = explain.load_trained_models(cfg.runs_dir)
for line in missing:
    print("MISSING —", line)
display(pd.DataFrame([{"model": m.name, "framework": m.kind.framework, "from": m.notebook, "input px": m.image_size,
                       "init weights": m.weights} for m in models]))
test = prep.frame("test")
print(f"{len(test)} test images, {int(test['label'].sum())} defective")

# %% [markdown]
# ## 2 · t-SNE of the learned features

# %%
embeddings, silhouette = {}, {}
for m in models:
    feats = explain.features_of(m, m.inputs(prep, test))
    if feats is None:
        continue
    silhouette[m.name] = features.silhouettes(feats, test["category"], test["label"])
    embeddings[m.name] = features.tsne_2d(feats)
print(f"t-SNE: perplexity {features.effective_perplexity(len(test))}, PCA init, random_state 42")
display(pd.DataFrame(silhouette).T.round(3).rename_axis("silhouette (original space)"))
if embeddings:
    feature_plots.plot_tsne(embeddings, test["category"], test["label"], silhouette); plt.show()

# %% [markdown]
# ## 3 · Class-activation maps toward "defective"
#
# Maps are computed for every test image at each model's input size, then resized to one display size.

# %%
display_px = max([m.image_size for m in models] or [cfg.profile.image_size])
images = prep.cache(display_px, progress=False)
images = np.stack([images.images[i] for i in images.indices(test["path"])])
cams = {}
for m in models:
    maps = explain.gradcam_of(m, m.inputs(prep, test))
    if maps is not None:
        cams[m.name] = gradcam.resize_maps(maps, (display_px, display_px))
masks = explain.load_masks(prep, test)
print("Grad-CAM for:", list(cams) or "no classifier found")

# %% [markdown]
# ### Good vs defective, per category (white: the ground-truth mask)

# %%
if cams:
    map_plots.cam_explorer(test, images, cams, masks)

# %% [markdown]
# ### Correct vs wrong predictions (each model's own val-chosen threshold)

# %%
for m in models:
    if m.name not in cams:
        continue
    pred = scored.test_predictions(cfg.runs_dir, m.notebook)
    if pred is None:
        print(f"{m.name}: no scores.csv — run {m.notebook}.ipynb first"); continue
    joined = test.reset_index().merge(pred[["path", "pred"]], on="path")
    for verdict, rows in (("correct", joined[joined["pred"] == joined["label"]]), ("wrong", joined[joined["pred"] != joined["label"]])):
        rows = rows.sort_values("label", ascending=False).head(4)
        if len(rows) == 0:
            print(f"{m.name}: no {verdict} predictions"); continue
        idx = rows["index"].to_numpy()
        fig = map_plots.plot_overlays(images[idx], {m.name: cams[m.name][idx]}, [masks[i] for i in idx],
                                    [f"{r.category} true={r.label} pred={r.pred}" for r in rows.itertuples()], max_images=4)
        fig.suptitle(f"{m.name}: {verdict}", y=1.02); plt.show()

# %% [markdown]
# ## 4 · Localisation against the ground-truth masks
#
# The field's own measures, defined once in `helpers.evaluation.localisation` and used for PatchCore's maps in 06 too:
# **pixel AUROC** (all pixels of a category's test images pooled, good images included, as MVTec AD reports
# it), **AU-PRO** (per-region overlap up to a false-positive rate of 0.3, normalised: a small defect counts
# as much as a large one) and the **pointing game** (the map's peak inside the mask), each per category and
# as the mean over categories. Chance: 0.5 for the AUROC, about 0.15 for AU-PRO (a random map's PRO ≈ FPR),
# the defect's area fraction for the pointing game.
#
# ### Which maps: never chosen on `test`
#
# The studies took Grad-CAM of the defective logit at the network's last stage. The series takes HiResCAM of the
# log-odds at the stride-4, 8 and 16 stages, averaged over three mirror views — chosen on the built-in data's
# defective `train` and `val` images (101; `val` alone has 15, too few to tell settings apart; the whole comparison
# is `benchmarks/cam_choice.py`, its numbers in `docs/benchmarks.md`). Here the two side by side on this run's `val`
# masks; the `test` images never chose anything:

# %%
display(explain.compare_cams(models, prep, "val").round(3))

# %% [markdown]
# ### Every model's maps on `test`

# %%
summary, per_image = explain.localise(cams, masks, test)
if len(summary):
    metrics_ = ["pixel_auroc", "au_pro", "pointing_game"]
    display(results.interval_table(summary, metrics_).pivot(index="category", columns="maps", values=metrics_))
    print(results.interval_caption())
    defective = (test["label"] == 1).to_numpy()
    area = np.mean([masks[i].mean() for i in np.flatnonzero(defective) if masks[i].any()] or [np.nan])
    print(f"pointing-game chance level (mean defect area fraction): {area:.3f}")
    flat = per_image.groupby("model")["flat_map"].sum()
    for name, n_flat in flat.items():
        if n_flat:
            print(f"{name}: {int(n_flat)} flat (all-zero) CAMs — a flat map points nowhere (a miss)")

# %%
path = explain.write_outputs(cfg, prep, silhouette, summary, per_image, started,
                             notes={"missing_models": missing, "display_px": int(display_px)})
print("written:", path, "and", path.parent / "localisation.csv")
