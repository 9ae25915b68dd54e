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

NOTEBOOKS = [NB00]
