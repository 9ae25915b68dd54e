"""Colab as its users meet it: each notebook on its own runtime, Google Drive the only disk that lasts.

What the setup cell of every notebook calls (it is the same cell everywhere, from ``tools/setup_cell.ipy``):

- :func:`install` puts the project on the runtime as a package **without changing any package Colab ships**:
  every installed distribution is pinned at its current version while pip runs (a constraints file made from
  the environment itself), so pip can only add what is missing, and no kernel restart is asked for. Whatever
  pip cannot do that way stops with pip's reason and what to do.
- :func:`apply_settings` turns the notebook's parameters (``USE_DRIVE``, ``MVTEC_DIR``, ``PROFILE``) into the
  run's configuration. With Drive on Colab: ``RUNS_DIR`` (split, manifests, checkpoints, models, metrics,
  report) and the downloaded archive live in ``MyDrive/mvtec-defect-toolkit/``; what a runtime can rebuild
  (image cache, extracted images, built-in data) stays on the fast local disk (``/content``).
"""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InstallError
from .config import Config, get_config

__all__ = ["PROJECT", "DRIVE_FOLDER", "PROFILE_CHOICES", "Settings", "installed_versions", "install",
           "mount_drive", "apply_settings"]

#: The distribution name of this project (pyproject.toml).
PROJECT = "mvtec-defect-toolkit"
#: The project's folder under ``MyDrive`` when Drive is used.
DRIVE_FOLDER = "mvtec-defect-toolkit"
PROFILE_CHOICES = ("auto", "full", "quick", "smoke")



def installed_versions() -> dict[str, str]:
    """``{normalised name: version}`` of every distribution importable in this interpreter."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            out.setdefault(name.lower().replace("_", "-"), dist.version)
    return out


def _pinnable(version: str) -> bool:
    """A version pip accepts in a constraint (PEP 440); a distribution with another is left unpinned."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:          # packaging comes with pip's environment almost everywhere
        return True
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def install(checkout: str | os.PathLike, quiet: bool = True) -> dict[str, str]:
    """``pip install <checkout>`` with every installed distribution pinned; return what was added.

    Raises :class:`InstallError` with pip's last lines and the way out when pip fails (for example when the
    project would need a newer version of a package Colab ships), and when anything installed before changed.
    """
    checkout = Path(checkout).resolve()
    before = installed_versions()
    pins = {name: v for name, v in before.items() if name != PROJECT and _pinnable(v)}
    with tempfile.NamedTemporaryFile("w", suffix="-constraints.txt", delete=False) as fh:
        fh.write("\n".join(f"{name}=={version}" for name, version in sorted(pins.items())) + "\n")
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *(["-q"] if quiet else []),
           str(checkout), "-c", fh.name]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        os.unlink(fh.name)
    if done.returncode:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise InstallError(
            f"Installing the project from {checkout} failed (pip exit {done.returncode}):\n{tail}\n"
            "Nothing Colab ships may change, so pip was not allowed to upgrade or downgrade any installed package. "
            "Check the runtime's internet connection and run the cell again; if pip reports a conflict, open an "
            "issue with the message above (Runtime > Disconnect and delete runtime gives a clean runtime).")
    after = installed_versions()
    changed = {n: f"{before[n]} -> {after.get(n)}" for n in pins if after.get(n) != before[n]}
    if changed:
        raise InstallError(f"The install changed packages the runtime already had: {changed}. Restart the runtime "
                           "(Runtime > Disconnect and delete runtime) and report this as a bug.")
    return {n: v for n, v in after.items() if n not in before}


def mount_drive(content: Path) -> Path:
    """Mount Google Drive at ``content/drive`` (Colab asks for permission once); return ``MyDrive``."""
    from google.colab import drive  # only on Colab

    mountpoint = content / "drive"
    drive.mount(str(mountpoint))
    my_drive = mountpoint / "MyDrive"
    if not my_drive.is_dir():
        raise RuntimeError(f"Google Drive did not appear at {my_drive}. Run the cell again and allow access, or set "
                           "USE_DRIVE = False (outputs then last only as long as this runtime).")
    return my_drive


@dataclass
class Settings:
    """The notebook's parameters, as applied: :meth:`config` is the run's configuration."""

    use_drive: bool
    mvtec_dir: str
    profile: str
    drive_folder: Path | None
    #: on Colab with Drive: where outputs last (``RUNS_DIR`` set outside the notebook wins), the archive and /content
    runs_dir: Path | None = None
    archive_dir: Path | None = None
    local_dir: Path | None = None

    def describe(self) -> str:
        where = (f"outputs on Google Drive ({self.drive_folder}): every notebook's runtime shares them"
                 if self.drive_folder else "outputs on this machine's disk")
        return f"settings: PROFILE={self.profile}, MVTEC_DIR={self.mvtec_dir or '(search, else built-in data)'}; {where}"

    def config(self) -> Config:
        """The configuration these settings give, built from them explicitly. ``"auto"`` and an empty ``MVTEC_DIR``
        leave the choice to the runtime (``DEFECTS_PROFILE`` / ``MVTEC_DIR`` set outside the notebook, e.g. by
        ``make run``, else a GPU → full, else quick; MVTec AD at the usual places, else the built-in data) — never to
        an earlier run of the form in the same runtime."""
        return get_config(profile=None if self.profile == "auto" else self.profile, data_dir=self.mvtec_dir or None,
                          runs_dir=self.runs_dir, local_dir=self.local_dir, archive_dir=self.archive_dir)


def apply_settings(use_drive: bool = True, mvtec_dir: str = "", profile: str = "auto", is_colab: bool | None = None,
                   content: str | os.PathLike | None = None) -> Settings:
    """Check a notebook's parameters and mount Drive: the :class:`Settings` whose :meth:`Settings.config` is the run's
    configuration. Nothing is written to ``os.environ``: a form run again with other values (``smoke``, then
    ``auto``; a path, then none) gives exactly the new values.

    ``use_drive`` matters on Colab only: Drive is mounted, outputs go to ``MyDrive/mvtec-defect-toolkit/runs`` (an
    explicit ``RUNS_DIR`` in the environment wins), the archive beside them, and the local disk is ``content``
    (Colab's working folder, ``/content``). ``profile`` ``"auto"`` leaves the choice to the runtime (``full`` with a
    GPU, ``quick`` without).
    """
    from .env import IS_COLAB

    is_colab = IS_COLAB if is_colab is None else is_colab
    if profile not in PROFILE_CHOICES:
        raise ValueError(f"PROFILE = {profile!r}: expected one of {PROFILE_CHOICES}")
    settings = Settings(use_drive and is_colab, str(mvtec_dir or ""), profile, None)
    if is_colab and use_drive:
        content = Path(content or Path.cwd())
        folder = mount_drive(content) / DRIVE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        settings.drive_folder, settings.archive_dir, settings.local_dir = folder, folder, content
        settings.runs_dir = None if os.environ.get("RUNS_DIR") else folder / "runs"
    return settings
