"""Notebook 00 as functions: locate the data, scan, validate, split, cache, and write it all down.

Outputs under ``RUNS_DIR``: ``manifest.csv``, ``quarantine.csv``, ``warnings.csv``, ``split.csv``,
``dataset.json`` (where the data is and what it holds) and ``cache/<key>/``. Later notebooks call
:func:`load_prepared`, which reads them back (and runs the preparation when they are missing).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import synthetic
from .cache import ImageCache, build_cache, manifest_hash
from .config import KNOWN_DATA_PLACES, Config, get_config
from .data import DatasetLayoutError, ScanResult, describe_layout_problem, looks_like_mvtec_root, read_manifest, scan_mvtec
from .split import check_leakage, ensure_split


@dataclass
class DataSource:
    """Where the images come from and whether they are the built-in sample."""

    root: Path
    builtin: bool
    how: str


def locate_data(cfg: Config, download: bool = False, progress: bool = True) -> DataSource:
    """Find the dataset: ``cfg.data_dir`` (``MVTEC_DIR``), known places, else the built-in sample.

    Args:
        download: when nothing is found, download MVTec AD (about 4.9 GB) into the first known
            place instead of using the built-in sample (for Colab; needs the internet).

    Raises:
        DatasetLayoutError: an explicitly given root is not MVTec layout (the message lists what
            was found there).
    """
    if cfg.data_dir is not None:
        if not looks_like_mvtec_root(cfg.data_dir):
            raise DatasetLayoutError(describe_layout_problem(cfg.data_dir))
        return DataSource(cfg.data_dir, False, "MVTEC_DIR / data_dir")
    for place in KNOWN_DATA_PLACES:
        path = Path(place).expanduser().resolve()
        if looks_like_mvtec_root(path):
            return DataSource(path, False, f"found at known place {place}")
    if download:
        from .download import download_mvtec

        root = download_mvtec(Path(KNOWN_DATA_PLACES[0]).expanduser())
        return DataSource(root, False, "downloaded")
    root = synthetic.generate_dataset(synthetic.builtin_root(cfg.runs_dir),
                                      synthetic.SyntheticSpec(**cfg.profile.builtin),
                                      progress=progress)
    return DataSource(root, True, "built-in sample dataset (no MVTec AD root found)")


def describe_source(source: DataSource) -> str:
    """One line for the notebook: which data this run uses."""
    if source.builtin:
        return (f"Using the BUILT-IN SAMPLE dataset at {source.root} — generated, not MVTec AD. "
                "Set MVTEC_DIR to a real MVTec AD root for real results.")
    return f"Using MVTec AD at {source.root} ({source.how})."


@dataclass
class Prepared:
    """Everything notebook 00 produces, as later notebooks need it."""

    cfg: Config
    source: DataSource
    manifest: pd.DataFrame
    split: pd.DataFrame
    quarantine: pd.DataFrame
    warnings: pd.DataFrame

    @property
    def root(self) -> Path:
        return self.source.root

    def frame(self, split: str | None = None, label: int | None = None) -> pd.DataFrame:
        """Manifest rows joined with their split, optionally filtered by split and label."""
        df = self.manifest.merge(self.split[["path", "split"]], on="path", how="inner")
        if split is not None:
            df = df[df["split"] == split]
        if label is not None:
            df = df[df["label"] == label]
        return df.reset_index(drop=True)

    def provenance(self) -> dict[str, Any]:
        """What every metrics.json records about the data: built-in or not, name, root, and the hashes of
        the manifest and of the split (two runs compare only when both hashes are equal)."""
        from .split import split_hash

        return {"builtin": self.source.builtin,
                "name": "built-in sample dataset (generated, not MVTec AD)" if self.source.builtin else "MVTec AD",
                "root": str(self.root), "how_found": self.source.how,
                "manifest_hash": manifest_hash(self.manifest), "split_hash": split_hash(self.split)}

    def cache(self, size: int | None = None, progress: bool = True) -> ImageCache:
        """The memory-mapped cache at ``size`` (default: the profile's image size), built on demand."""
        return build_cache(self.manifest, self.root, size or self.cfg.profile.image_size,
                           self.cfg.runs_dir / "cache", progress=progress)


def write_outputs(cfg: Config, source: DataSource, scan: ScanResult, split: pd.DataFrame) -> dict:
    """Write manifest/quarantine/warnings CSVs and ``dataset.json``; return the dataset info."""
    out = cfg.runs_dir
    scan.manifest.to_csv(out / "manifest.csv", index=False)
    scan.quarantine.to_csv(out / "quarantine.csv", index=False)
    scan.warnings.to_csv(out / "warnings.csv", index=False)
    info = {"root": str(source.root), "builtin": source.builtin, "how": source.how,
            "manifest_hash": manifest_hash(scan.manifest), "images": len(scan.manifest),
            "quarantined": len(scan.quarantine), "warnings": len(scan.warnings),
            "split": split["split"].value_counts().to_dict()}
    (out / "dataset.json").write_text(json.dumps(info, indent=2))
    return info


def prepare(cfg: Config | None = None, cache_sizes: tuple[int, ...] | None = None,
            download: bool = False, progress: bool = True) -> Prepared:
    """Run the whole preparation: locate → scan/validate → split (once) → leakage check → cache."""
    cfg = cfg or get_config()
    t0 = time.time()
    source = locate_data(cfg, download=download, progress=progress)
    scan = scan_mvtec(source.root, progress=progress)
    if scan.manifest.empty:
        raise DatasetLayoutError(f"No usable image under {source.root}: all {len(scan.quarantine)} files "
                                 f"were quarantined (see the quarantine table). {scan.summary()}")
    split = ensure_split(scan.manifest, cfg.runs_dir / "split.csv", seed=cfg.seed)
    check_leakage(split, scan.manifest)
    write_outputs(cfg, source, scan, split)
    prepared = Prepared(cfg, source, scan.manifest, split, scan.quarantine, scan.warnings)
    for size in cache_sizes or (cfg.profile.image_size,):
        prepared.cache(size, progress=progress)
    if progress:
        print(f"Prepared in {time.time() - t0:.1f}s: {scan.summary()}")
    return prepared


def load_prepared(cfg: Config | None = None) -> Prepared:
    """Read what notebook 00 wrote under ``RUNS_DIR``; run the preparation if it is missing.

    The split is read, never rewritten: every notebook scores on the same ``test`` images.
    """
    cfg = cfg or get_config()
    info_path = cfg.runs_dir / "dataset.json"
    if not info_path.exists():
        print(f"No prepared data under {cfg.runs_dir} (notebook 00 not run yet): preparing it now.")
        return prepare(cfg)
    info = json.loads(info_path.read_text())
    source = DataSource(Path(info["root"]), info["builtin"], info["how"])
    manifest = read_manifest(cfg.runs_dir / "manifest.csv")
    split = ensure_split(manifest, cfg.runs_dir / "split.csv", seed=cfg.seed)
    check_leakage(split, manifest)
    read = lambda name: pd.read_csv(cfg.runs_dir / name, keep_default_na=False)  # noqa: E731
    return Prepared(cfg, source, manifest, split, read("quarantine.csv"), read("warnings.csv"))


def start_notebook(cfg: Config | None = None, frameworks: bool = True) -> Prepared:
    """What every notebook after 00 does first, in one call.

    With ``frameworks``: cap torch/TensorFlow threads, TF GPU memory growth, TF32 on GPU
    (:func:`helpers.env.configure_frameworks`, printed). Then seed Python/NumPy/torch/TF, load what notebook
    00 wrote (the split: train / val / test) and print where the data come from and the split's sizes.
    """
    from .env import configure_frameworks, seed_everything

    cfg = cfg or get_config()
    if frameworks:
        print("frameworks:", configure_frameworks())
    seed_everything(cfg.seed)
    prepared = load_prepared(cfg)
    print(describe_source(prepared.source))
    print("split (images):", prepared.split["split"].value_counts().reindex(["train", "val", "test"]).to_dict())
    return prepared


__all__ = ["DataSource", "Prepared", "describe_source", "load_prepared", "start_notebook", "locate_data",
           "prepare", "write_outputs"]
