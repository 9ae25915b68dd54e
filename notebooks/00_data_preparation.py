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
# # 00 · Data preparation: find, check, split and cache MVTec AD
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/mvtec-defects/mvtec-defect-toolkit/blob/main/notebooks/00_data_preparation.ipynb)
#
# Every later notebook stands on what this one writes to `RUNS_DIR`:
#
# | file | what |
# |---|---|
# | `manifest.csv` | one row per usable image: path, category, MVTec split, defect type, label, mask, size, mode, content hash |
# | `quarantine.csv` | every file left out, with the reason |
# | `warnings.csv` | files kept but worth a look (converted modes, defective images without a mask, ...) |
# | `split.csv` | **the protocol**: train / val / test, written once, read by every notebook |
# | `cache/` | decoded, resized images as memory-mapped arrays |
#
# Without MVTec AD (no `MVTEC_DIR`, nothing at the usual places) the notebook generates the **built-in
# sample dataset**: procedural images in MVTec's layout, so everything runs offline. It is for **seeing
# each method work and each tool behave**, not a benchmark: numbers measured on it say nothing about real
# parts. Like MVTec AD it mixes easy and hard defects: each defect type is *obvious* (large, high contrast,
# like bottle `broken_large`), *moderate* or *subtle* (a few pixels, low contrast, like screw
# `scratch_head`); hazelnut's are all obvious, screw's all subtle. With MVTec AD nothing here changes.

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
# DOWNLOAD_MVTEC: download the official archive (4.9 GB; kept on Drive, so only once) when MVTec AD
#   is not found; the images are extracted on each runtime's local disk.
DOWNLOAD_MVTEC = False  #@param {type:"boolean"}

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
# ## 1 · Locate (or download) the data
#
# Order of search: `MVTEC_DIR`, then `/content/mvtec_anomaly_detection`, Google Drive, `~/data/...`,
# `./data/...`, else the built-in sample. On Colab tick `DOWNLOAD_MVTEC` in the settings to fetch the
# official archive (4.9 GB, checksum verified, CC BY-NC-SA 4.0): with Drive on, the archive is kept in
# `MyDrive/mvtec-defect-toolkit/` (downloaded once) and each runtime extracts it to its local disk.
# Per-category archives or a Drive folder work too: `helpers.data.download.extract_archives([...], dest)` then
# point `MVTEC_DIR` there.

# %%
from helpers.core import layout
from helpers.data import cache, prepare, split
from helpers.data import scan as data
from helpers.viz import data as viz
source = prepare.locate_data(cfg, download=DOWNLOAD_MVTEC)
print(prepare.describe_source(source))

# %% [markdown]
# ## 2 · Scan and validate
#
# Each file is checked: extension, file size, a **full decode** (not only the header), dimensions and
# mode. Grayscale categories (grid, screw, zipper) are kept and converted to RGB at load. Anything that
# fails goes to the quarantine table *with its reason*; nothing disappears silently.

# %%
scan = data.scan_mvtec(source.root)
print(scan.summary())
if len(scan.quarantine):
    print("Quarantined files:")
    display(scan.quarantine)
else:
    print("Quarantine: empty — every file decoded.")

# %%
print(f"{len(scan.warnings)} warnings (kept, but worth a look).")
if len(scan.warnings):
    display(scan.warnings.head(30))

# %% [markdown]
# ## 3 · What is there: images per category

# %%
counts = data.category_counts(scan.manifest)
display(counts)
viz.plot_counts(scan.manifest);

# %% [markdown]
# ## 4 · A look at the images
#
# One good image and one per defect type for each category; ground-truth masks are outlined in red.

# %%
viz.show_samples(scan.manifest, source.root, per_row=5);

# %% [markdown]
# On the built-in data, each defect type's level — obvious, moderate or subtle — and the share of the image
# its masks cover: the obvious ones are what every method should find, the subtle ones (screw, capsule,
# grid, zipper) are where methods differ. (MVTec AD has no such labels; this table is only shown for the
# built-in data.)

# %%
if source.builtin:
    from helpers.data import synthetic
    display(synthetic.difficulty_table(scan.manifest, source.root))

# %% [markdown]
# ## 5 · The split — one protocol for every model
#
# `test` (20%, stratified by category × defect type) is **never** used for training, early stopping,
# checkpoint or threshold choice; `val` (20% of the rest) is for those; `train` is the rest. Files with
# identical bytes stay in one split. The split is written once: re-running reads it back. The MVTec
# standard protocol (fit on MVTec train/good, score MVTec test) is kept for comparison with the literature.

# %%
shared_split = split.ensure_split(scan.manifest, cfg.runs_dir / layout.SPLIT, seed=cfg.seed)
report = split.check_leakage(shared_split, scan.manifest)
print("Leakage check passed:", report)
display(split.split_counts(shared_split))

# %%
standard = split.standard_protocol(scan.manifest)
print("MVTec standard protocol:", standard["split"].value_counts().to_dict())
info = prepare.write_outputs(cfg, source, scan, shared_split)
print("Written:", *[cfg.runs_dir / f for f in (layout.MANIFEST, layout.QUARANTINE, layout.WARNINGS, layout.SPLIT, layout.DATASET)],
      sep="\n  ")

# %% [markdown]
# ## 6 · Cache
#
# Each image is decoded and resized once to the profile's size (PyTorch and Keras sizes) into a
# memory-mapped uint8 array, keyed by (manifest hash, size): rebuilt automatically when the data change.
# `docs/benchmarks.md` measures what this saves per epoch.

# %%
for size in sorted({cfg.profile.image_size, cfg.profile.tf_image_size}):
    c = cache.build_cache(scan.manifest, source.root, size, cfg.cache_dir)
    print(f"{size}px: {c.images.shape} uint8, {c.images.nbytes / 2**20:.1f} MiB at {c.directory}")

# %% [markdown]
# ## 7 · Explore
#
# Pick a category and a defect type (static figure when widgets are not available).

# %%
viz.explorer(scan.manifest, source.root);
