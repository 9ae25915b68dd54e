"""Notebook 00 as functions: locate the data, scan, validate, split, cache, and write it all down.

Outputs under ``RUNS_DIR``: ``manifest.csv``, ``quarantine.csv``, ``warnings.csv``, ``split.csv``,
``dataset.json`` (where the data is and what it holds) and ``cache/<key>/``. Later notebooks call
:func:`load_prepared`, which reads them back (and runs the preparation when they are missing).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..core import files, layout
from ..core.config import KNOWN_DATA_PLACES, Config, get_config
from ..errors import DatasetLayoutError, PreparedStateError
from . import synthetic
from .cache import ImageCache, build_cache, manifest_hash
from .scan import ScanResult, describe_layout_problem, looks_like_dataset_root, read_manifest, scan_mvtec
from .split import check_leakage, ensure_split


@dataclass
class DataSource:
    """Where the images come from and whether they are the built-in sample."""

    root: Path
    builtin: bool
    how: str
    #: The downloaded archive it was extracted from (another runtime extracts it again from there).
    archive: Path | None = None
    #: The built-in data's generator settings (another runtime regenerates the same images from them).
    spec: dict | None = None


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
        if not looks_like_dataset_root(cfg.data_dir):
            raise DatasetLayoutError(describe_layout_problem(cfg.data_dir))
        return DataSource(cfg.data_dir, False, "MVTEC_DIR / data_dir")
    places: list[str | Path] = [cfg.local_dir / MVTEC_FOLDER, *KNOWN_DATA_PLACES]
    for place in places:
        path = Path(place).expanduser().resolve()
        if looks_like_dataset_root(path):
            return DataSource(path, False, f"found at known place {place}")
    if download:
        return _download(cfg)
    spec = synthetic.SyntheticSpec(**cfg.profile.builtin)
    root = synthetic.generate_dataset(synthetic.builtin_root(cfg.local_dir), spec, progress=progress)
    return DataSource(root, True, "built-in sample dataset (no MVTec AD root found)", spec=asdict(spec))


#: The folder MVTec AD is extracted into, under the local disk (``/content`` on Colab).
MVTEC_FOLDER = "mvtec_anomaly_detection"


def _download(cfg: Config) -> DataSource:
    """Download (once: the archive is kept when ``DEFECTS_ARCHIVE_DIR`` is set, e.g. on Drive) and extract."""
    from .download import ARCHIVE_NAME, download_mvtec

    root = download_mvtec(cfg.local_dir / MVTEC_FOLDER, archive_dir=cfg.archive_dir, keep_archive=cfg.archive is not None)
    archive = cfg.archive_dir / ARCHIVE_NAME
    return DataSource(root, False, "downloaded", archive=archive if archive.exists() else None)


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
                           self.cfg.cache_dir, progress=progress)


def write_outputs(cfg: Config, source: DataSource, scan: ScanResult, split: pd.DataFrame) -> dict:
    """Write manifest/quarantine/warnings CSVs and ``dataset.json``; return the dataset info."""
    out = cfg.runs_dir
    files.write_csv(scan.manifest, out / layout.MANIFEST)
    files.write_csv(scan.quarantine, out / layout.QUARANTINE)
    files.write_csv(scan.warnings, out / layout.WARNINGS)
    info = {"root": str(source.root), "builtin": source.builtin, "how": source.how,
            "archive": None if source.archive is None else str(source.archive), "builtin_spec": source.spec,
            "manifest_hash": manifest_hash(scan.manifest), "images": len(scan.manifest),
            "quarantined": len(scan.quarantine), "warnings": len(scan.warnings),
            "split": split["split"].value_counts().to_dict()}
    files.write_json(out / layout.DATASET, info)
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
    _check_generator_version(cfg, source)
    split = ensure_split(scan.manifest, cfg.runs_dir / layout.SPLIT, seed=cfg.seed)
    check_leakage(split, scan.manifest)
    write_outputs(cfg, source, scan, split)
    prepared = Prepared(cfg, source, scan.manifest, split, scan.quarantine, scan.warnings)
    for size in cache_sizes or (cfg.profile.image_size,):
        prepared.cache(size, progress=progress)
    if progress:
        print(f"Prepared in {time.time() - t0:.1f}s: {scan.summary()}")
    return prepared



def _check_generator_version(cfg: Config, source: DataSource) -> None:
    """A ``RUNS_DIR`` prepared from another version of the built-in data generator cannot be reused: its split and
    results belong to other images. Raised before the split is checked, so the message names the real cause."""
    try:
        old = json.loads((cfg.runs_dir / layout.DATASET).read_text()).get("builtin_spec") or {}
    except (OSError, ValueError, AttributeError):
        return                                  # no (readable) record: the split check decides
    if old and source.builtin and (cfg.runs_dir / layout.SPLIT).exists():
        try:
            synthetic.check_version(old.get("version", 1))
        except ValueError as err:
            raise PreparedStateError(f"{cfg.runs_dir}: {err}") from None


def _read_state(runs_dir: Path) -> tuple[dict, pd.DataFrame]:
    """``dataset.json`` and ``manifest.csv``, checked against each other (the manifest's hash is recorded)."""
    remedy = ("Run notebook 00 again (or `python -m helpers prepare`): it rescans the data and rewrites "
              "manifest.csv and dataset.json; split.csv is kept and checked against them.")
    info_path, manifest_path = runs_dir / layout.DATASET, runs_dir / layout.MANIFEST
    try:
        info = json.loads(info_path.read_text())
        DataSource(Path(info["root"]), info["builtin"], info["how"])
    except (ValueError, KeyError, TypeError) as err:
        raise PreparedStateError(f"{info_path} is damaged ({type(err).__name__}: {str(err)[:200]}). {remedy}") from err
    try:
        manifest = read_manifest(manifest_path)
    except (OSError, ValueError, UnicodeDecodeError) as err:   # pandas' ParserError/EmptyDataError are ValueErrors
        raise PreparedStateError(f"{manifest_path} cannot be read ({type(err).__name__}: {str(err)[:200]}). "
                                 f"{remedy}") from err
    expected = info.get("manifest_hash")
    if expected is not None and manifest_hash(manifest) != expected:
        raise PreparedStateError(
            f"{manifest_path} is not the manifest notebook 00 wrote: it has {len(manifest)} rows where dataset.json "
            f"records {info.get('images', '?')} (and its hash differs), so it was damaged (e.g. a copy cut short) "
            f"or edited. {remedy}")
    return info, manifest


def _source_on_this_runtime(cfg: Config, info: dict, manifest: pd.DataFrame) -> DataSource:
    """The recorded data source, restored on this runtime when its images are missing (see load_prepared)."""
    recorded = Path(info["root"])
    archive = Path(info["archive"]) if info.get("archive") else None
    source = DataSource(recorded, info["builtin"], info["how"], archive=archive, spec=info.get("builtin_spec"))
    if not _images_present(source.root, manifest):
        if source.builtin and source.spec:
            try:
                root = synthetic.generate_dataset(synthetic.builtin_root(cfg.local_dir),
                                                  synthetic.SyntheticSpec(**source.spec), progress=False)
            except ValueError as err:           # settings of another generator version
                raise PreparedStateError(str(err)) from None
            print(f"The built-in data was not on this runtime: regenerated at {root} from its recorded settings.")
            source.root = _same_contents(root, manifest)
        elif not source.builtin and cfg.data_dir is not None and looks_like_dataset_root(cfg.data_dir):
            source.root = _same_contents(cfg.data_dir, manifest)
        elif archive is not None and archive.exists():
            from .download import download_mvtec

            print(f"MVTec AD is not on this runtime: extracting it again from {archive} (a few minutes).")
            source.root = download_mvtec(cfg.local_dir / MVTEC_FOLDER, archive_dir=archive.parent, keep_archive=True)
    if not _images_present(source.root, manifest):
        what = "the built-in sample data" if source.builtin else "MVTec AD"
        raise PreparedStateError(
            f"dataset.json in {cfg.runs_dir} names {what} at {recorded}, but its images are not on this runtime"
            + (f" (nor at MVTEC_DIR={cfg.data_dir})" if cfg.data_dir else "") + ". Nothing falls back to other data: "
            "set MVTEC_DIR to where these images are now, or run notebook 00 again on this runtime (with the same "
            "MVTEC_DIR / DOWNLOAD_MVTEC as before).")
    return source


def _images_present(root: Path, manifest: pd.DataFrame) -> bool:
    """Every manifest image is a file under ``root``."""
    return root.is_dir() and all((root / p).is_file() for p in manifest["path"])


def _same_contents(root: Path, manifest: pd.DataFrame) -> Path:
    """``root`` when every manifest image there has the bytes it was scanned with (a re-extracted, checksummed
    archive needs no such check); otherwise :class:`PreparedStateError` naming a file that differs."""
    from .images import content_hash

    if _images_present(root, manifest):
        for path, expected in zip(manifest["path"], manifest["content_hash"]):
            if content_hash(root / path) != expected:
                raise PreparedStateError(
                    f"{root / path} differs from the image notebook 00 scanned (its sha256 changed): these are not the "
                    "same data. Run notebook 00 again to prepare them (in a new RUNS_DIR to keep the old results).")
    return root


def load_prepared(cfg: Config | None = None, colab: bool | None = None) -> Prepared:
    """Read what notebook 00 wrote under ``RUNS_DIR``, and make sure its images are on this runtime.

    - Nothing under ``RUNS_DIR`` yet: on Colab, an error naming notebook 00 (each Colab notebook runs on its own
      runtime; only Drive is shared); elsewhere the preparation runs now — with ``MVTEC_DIR`` when it is set.
    - The images ``dataset.json`` names are not here (a fresh Colab runtime): the built-in data is regenerated
      from its recorded settings, a downloaded archive kept on Drive is extracted again; else an error that
      says what to do. It never falls back to the built-in data when ``dataset.json`` names another source.

    The split is read, never rewritten: every notebook scores on the same ``test`` images.
    """
    from ..core.env import IS_COLAB

    cfg = cfg or get_config()
    colab = IS_COLAB if colab is None else colab
    if not (cfg.runs_dir / layout.DATASET).exists():
        if colab and cfg.data_dir is None:
            raise PreparedStateError(
                f"Nothing prepared under {cfg.runs_dir}: run notebook 00 (data preparation) first. On Colab every "
                "notebook runs on its own runtime and only Google Drive outlives it: keep USE_DRIVE on (the "
                "default) so that each notebook finds what the earlier ones wrote, or run notebook 00 first in "
                "this runtime.")
        print(f"No prepared data under {cfg.runs_dir} (notebook 00 not run yet): preparing it now.")
        return prepare(cfg)
    info, manifest = _read_state(cfg.runs_dir)
    source = _source_on_this_runtime(cfg, info, manifest)
    split = ensure_split(manifest, cfg.runs_dir / layout.SPLIT, seed=cfg.seed)
    check_leakage(split, manifest)
    read = lambda name: pd.read_csv(cfg.runs_dir / name, keep_default_na=False)  # noqa: E731
    return Prepared(cfg, source, manifest, split, read(layout.QUARANTINE), read(layout.WARNINGS))


__all__ = ["DataSource", "Prepared", "describe_source", "load_prepared", "locate_data",
           "prepare", "write_outputs"]
