"""Profiles and locations: which sizes to run at, where the data is, where outputs go.

Everything is driven by three environment variables, each overridable in a notebook's first cell:

- ``DEFECTS_PROFILE``: ``full`` (the published recipes, for a GPU), ``quick`` (a CPU demo of the
  whole series 00–07 in 2.5–5.5 min on 2 cores, measured) or ``smoke`` (CI: each notebook in under 3 minutes).
  Default: ``full`` when a CUDA GPU is visible, ``quick`` otherwise.
- ``MVTEC_DIR``: the MVTec AD root (the folder holding ``bottle/``, ``cable/``, ...). Default: the first
  of :data:`KNOWN_DATA_PLACES` that exists, else the built-in sample dataset (generated on first use).
- ``RUNS_DIR``: where every output goes (default ``./runs``): split, manifests, checkpoints, models,
  metrics, report. On Colab with ``USE_DRIVE`` it is a folder on Google Drive, shared by every runtime.
- ``DEFECTS_LOCAL_DIR``: a fast local disk for what each runtime can rebuild: the image cache, the
  built-in data, the extracted MVTec AD images (default: ``RUNS_DIR``; on Colab with Drive: ``/content``).
- ``DEFECTS_ARCHIVE_DIR``: where the downloaded MVTec AD archive is kept (default: ``DEFECTS_LOCAL_DIR``;
  on Colab with Drive: the Drive folder, so it is downloaded once).

Profiles shrink image size, epochs and data only; they never change a method.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import layout
from .files import ensure_writable_dir

#: Places searched for an MVTec AD root when ``MVTEC_DIR`` is not set (Colab first).
KNOWN_DATA_PLACES: tuple[str, ...] = (
    "/content/mvtec_anomaly_detection",
    "/content/drive/MyDrive/mvtec_anomaly_detection",
    "~/data/mvtec_anomaly_detection",
    "./data/mvtec_anomaly_detection",
)

__all__ = ["KNOWN_DATA_PLACES", "SEED", "IMAGENET_MEAN", "IMAGENET_STD", "Profile", "BUILTIN_DATASET", "PROFILES",
           "default_profile_name", "get_profile", "Config", "get_config", "with_profile"]

SEED = 42
#: ImageNet channel statistics, the normalisation of every ImageNet-initialised torch model here.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Profile:
    """Sizes for one run of the series. Only sizes, epochs and data amounts live here."""

    name: str
    #: Edge of the square images fed to the PyTorch models (recipe: 256).
    image_size: int
    #: Edge of the square images fed to the Keras model (recipe: 224).
    tf_image_size: int
    #: Multiplier on every recipe's epoch count (1.0 = the recipe), at least one epoch is run.
    epoch_scale: float
    #: Cap on training images per epoch (None = all of ``train``).
    max_train_images: int | None
    #: Worker processes for torch DataLoaders.
    num_workers: int
    #: Built-in sample dataset parameters (used only when no MVTec root is found).
    builtin: dict[str, Any] = field(default_factory=dict)
    #: Whether recipes' step floors apply (``KerasRecipe.min_steps``): off in smoke, which checks code paths, not
    #: learning, in CI's minutes.
    step_floors: bool = True

    def epochs(self, recipe_epochs: int) -> int:
        """Epochs to run for a recipe that asks for ``recipe_epochs``."""
        return max(1, round(recipe_epochs * self.epoch_scale))


#: The built-in dataset is the same in every profile so that one split serves them all.
BUILTIN_DATASET: dict[str, Any] = {"size": 128, "n_train_good": 16, "n_test_good": 5,
                                   "n_per_defect": 3, "seed": SEED}

PROFILES: dict[str, Profile] = {
    "full": Profile("full", image_size=256, tf_image_size=224, epoch_scale=1.0,
                    max_train_images=None, num_workers=2, builtin=BUILTIN_DATASET),
    # quick: 128 px (the built-in images' own size: EfficientNet-Lite0 learns the defects there, 96 px cost test AUROC)
    # and a third of each recipe's epochs (10 of the supervised 30: the built-in train split is 4 batches an epoch)
    "quick": Profile("quick", image_size=128, tf_image_size=96, epoch_scale=1 / 3,
                     max_train_images=None, num_workers=0, builtin=BUILTIN_DATASET),
    "smoke": Profile("smoke", image_size=64, tf_image_size=64, epoch_scale=0.05,
                     max_train_images=96, num_workers=0, builtin=BUILTIN_DATASET, step_floors=False),
}


def _has_cuda() -> bool:
    try:
        import torch  # optional, heavy
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def default_profile_name() -> str:
    """``DEFECTS_PROFILE`` if set, else ``full`` with a CUDA GPU and ``quick`` without."""
    name = os.environ.get("DEFECTS_PROFILE", "").strip().lower()
    if name:
        return name
    return "full" if _has_cuda() else "quick"


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile (default: :func:`default_profile_name`).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    name = (name or default_profile_name()).lower()
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}: expected one of {sorted(PROFILES)} "
                         "(set DEFECTS_PROFILE or pass profile=...).")
    return PROFILES[name]


@dataclass(frozen=True)
class Config:
    """One run's settings: the profile and the folders."""

    profile: Profile
    runs_dir: Path
    #: Explicit MVTec root (``MVTEC_DIR`` or argument); None means search, then built-in data.
    data_dir: Path | None
    seed: int = SEED
    #: Fast local disk for what a runtime rebuilds (cache, built-in data, extracted images); None: ``runs_dir``.
    local: Path | None = None
    #: Where the downloaded archive is kept; None: :attr:`local_dir`.
    archive: Path | None = None

    @property
    def local_dir(self) -> Path:
        return self.local or self.runs_dir

    @property
    def archive_dir(self) -> Path:
        return self.archive or self.local_dir

    @property
    def cache_dir(self) -> Path:
        """The image cache (rebuilt on each runtime; never on Drive)."""
        return self.local_dir / layout.CACHE_DIR

    def as_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-able values."""
        return {"profile": asdict(self.profile), "runs_dir": str(self.runs_dir), "local_dir": str(self.local_dir),
                "archive_dir": str(self.archive_dir),
                "data_dir": None if self.data_dir is None else str(self.data_dir), "seed": self.seed}


def get_config(profile: str | None = None, data_dir: str | os.PathLike | None = None,
               runs_dir: str | os.PathLike | None = None, local_dir: str | os.PathLike | None = None,
               archive_dir: str | os.PathLike | None = None) -> Config:
    """Build the run configuration from arguments, else environment variables, else defaults. Nothing here (or in
    :func:`helpers.core.colab.apply_settings`) writes the environment: a notebook's form is passed in explicitly."""
    data = data_dir if data_dir is not None else os.environ.get("MVTEC_DIR") or None
    runs = runs_dir if runs_dir is not None else os.environ.get("RUNS_DIR") or "runs"
    runs_path = ensure_writable_dir(Path(runs).expanduser().resolve(), "RUNS_DIR")
    local, archive = (given if given is not None else os.environ.get(name) or None
                      for given, name in ((local_dir, "DEFECTS_LOCAL_DIR"), (archive_dir, "DEFECTS_ARCHIVE_DIR")))
    return Config(profile=get_profile(profile), runs_dir=runs_path,
                  data_dir=None if data is None else Path(data).expanduser().resolve(),
                  local=None if local is None else ensure_writable_dir(Path(local).expanduser().resolve(),
                                                                       "DEFECTS_LOCAL_DIR"),
                  archive=None if archive is None else Path(archive).expanduser().resolve())


def with_profile(cfg: Config, **changes: Any) -> Config:
    """A copy of ``cfg`` whose profile has some fields changed (for tests and experiments)."""
    return replace(cfg, profile=replace(cfg.profile, **changes))
