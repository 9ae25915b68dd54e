"""Colab's rules, off Colab: settings → folders (Drive for what lasts, local disk for what a runtime rebuilds),
an install that may not change any installed package, and notebooks that find — or restore, or refuse —
what notebook 00 wrote on another runtime. The whole series on simulated runtimes is in
``test_colab_simulation.py``."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import pytest

from helpers import errors
from helpers.core import colab
from helpers.core.config import get_config
from helpers.data.prepare import load_prepared, prepare
from helpers.errors import PreparedStateError

ENV = ("RUNS_DIR", "MVTEC_DIR", "DEFECTS_PROFILE", "DEFECTS_LOCAL_DIR", "DEFECTS_ARCHIVE_DIR")


@pytest.fixture()
def clean_env(monkeypatch):
    """None of the settings variables set; whatever the test (or apply_settings) sets is undone afterwards."""
    for name in ENV:
        monkeypatch.setenv(name, "")      # recorded, so that teardown restores the variable's absence too
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture()
def fake_drive(tmp_path, clean_env):
    """``google.colab.drive.mount`` linking ``MyDrive`` to a folder, as on Colab."""
    store = tmp_path / "drive-store"
    store.mkdir()

    def mount(mountpoint, force_remount=False):
        Path(mountpoint).mkdir(parents=True, exist_ok=True)
        (Path(mountpoint) / "MyDrive").symlink_to(store, target_is_directory=True)

    google = types.ModuleType("google")
    google.__path__ = []
    pkg = types.ModuleType("google.colab")
    pkg.drive = types.SimpleNamespace(mount=mount)
    clean_env.setitem(sys.modules, "google.colab", pkg)
    return store


def test_settings_put_what_lasts_on_drive_and_the_rest_on_local_disk(fake_drive, tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    settings = colab.apply_settings(use_drive=True, profile="smoke", is_colab=True, content=content)
    cfg = settings.config()
    folder = fake_drive / "mvtec-defect-toolkit"
    assert cfg.runs_dir == (folder / "runs").resolve() and cfg.profile.name == "smoke"
    assert cfg.archive_dir == folder.resolve()
    assert cfg.local_dir == content.resolve() and cfg.cache_dir == content.resolve() / "cache"
    assert "Google Drive" in settings.describe()


def test_settings_off_colab_touch_no_folder(clean_env, tmp_path):
    clean_env.chdir(tmp_path)
    settings = colab.apply_settings(use_drive=True, mvtec_dir=str(tmp_path / "mvtec"), profile="auto", is_colab=False)
    assert settings.drive_folder is None and not (tmp_path / "drive").exists()
    cfg = settings.config()
    assert cfg.data_dir == (tmp_path / "mvtec").resolve() and cfg.local_dir == cfg.runs_dir
    with pytest.raises(ValueError, match="PROFILE = 'fast'"):
        colab.apply_settings(profile="fast", is_colab=False)


def test_every_form_value_flipped_and_back_gives_exactly_the_new_values(fake_drive, tmp_path, monkeypatch):
    """A Colab user tries smoke on their own folder without Drive, then runs the real thing in the same runtime:
    nothing of the first run lingers (the form's values once went through os.environ and stayed)."""
    import os

    monkeypatch.setattr("helpers.core.config._has_cuda", lambda: False)
    content = tmp_path / "content"
    content.mkdir()
    monkeypatch.chdir(content)
    before = {name: os.environ.get(name) for name in ENV}
    first = colab.apply_settings(use_drive=False, mvtec_dir=str(tmp_path / "mine"), profile="smoke", is_colab=True,
                                 content=content).config()
    assert (first.profile.name, first.data_dir, first.runs_dir) == ("smoke", (tmp_path / "mine").resolve(),
                                                                    (content / "runs").resolve())
    second = colab.apply_settings(use_drive=True, mvtec_dir="", profile="auto", is_colab=True, content=content).config()
    assert second.profile.name == "quick"               # auto on a CPU runtime, not the smoke of the run before
    assert second.data_dir is None                       # the search, not the old path
    assert second.runs_dir == (fake_drive / "mvtec-defect-toolkit" / "runs").resolve()
    third = colab.apply_settings(use_drive=False, mvtec_dir="", profile="full", is_colab=True, content=content).config()
    assert third.profile.name == "full" and third.runs_dir == (content / "runs").resolve()
    assert {name: os.environ.get(name) for name in ENV} == before     # the environment was never written


def test_install_pins_every_installed_package(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"] = cmd
        seen["constraints"] = Path(cmd[cmd.index("-c") + 1]).read_text().splitlines()
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(colab.subprocess, "run", fake_run)
    assert colab.install(tmp_path) == {}
    installed = colab.installed_versions()
    assert seen["cmd"][:4] == [sys.executable, "-m", "pip", "install"] and str(tmp_path) in seen["cmd"]
    pins = dict(line.split("==") for line in seen["constraints"])
    assert {n: v for n, v in installed.items() if n != colab.PROJECT and colab._pinnable(v)} == pins  # all, as they are
    assert not colab._pinnable("1.0-custom+build.7!") and colab._pinnable("2.11.0+cu128")
    assert installed["numpy"] == pins["numpy"] and colab.PROJECT not in pins


def test_install_failure_and_a_changed_package_are_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(colab.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: Cannot install x because these package versions have conflicting dependencies."))
    with pytest.raises(errors.InstallError, match=r"(?s)pip exit 1.*conflicting dependencies.*not allowed to upgrade"):
        colab.install(tmp_path)
    versions = iter([{"numpy": "2.1.3"}, {"numpy": "2.3.0"}])
    monkeypatch.setattr(colab, "installed_versions", lambda: next(versions))
    monkeypatch.setattr(colab.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, "", ""))
    with pytest.raises(errors.InstallError, match=r"(?s)changed packages.*numpy.*2.1.3 -> 2.3.0"):
        colab.install(tmp_path)


def test_on_colab_without_prepared_data_it_names_notebook_00(clean_env, tmp_path):
    with pytest.raises(PreparedStateError, match=r"run notebook 00 .* first.*USE_DRIVE"):
        load_prepared(get_config("smoke", runs_dir=tmp_path / "runs"), colab=True)
    assert not (tmp_path / "runs" / "dataset.json").exists()          # no silent fallback to the built-in data


def test_a_fresh_runtime_regenerates_the_builtin_data(clean_env, tmp_path):
    clean_env.setenv("DEFECTS_LOCAL_DIR", str(tmp_path / "runtime-1"))
    first = prepare(get_config("smoke", runs_dir=tmp_path / "drive-runs"), progress=False)
    shutil.rmtree(tmp_path / "runtime-1")                               # the runtime is gone
    clean_env.setenv("DEFECTS_LOCAL_DIR", str(tmp_path / "runtime-2"))
    again = load_prepared(get_config("smoke", runs_dir=tmp_path / "drive-runs"), colab=True)
    assert again.root == (tmp_path / "runtime-2" / "builtin_mvtec").resolve()
    assert again.provenance()["manifest_hash"] == first.provenance()["manifest_hash"]
    assert again.provenance()["split_hash"] == first.provenance()["split_hash"]
    assert len(again.cache(32, progress=False)) == len(first.manifest)


def _archive_of(tree: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "mvtec_anomaly_detection.tar.xz"
    with tarfile.open(archive, "w:xz") as tf:
        for child in sorted(tree.iterdir()):
            tf.add(child, arcname=child.name)
    return archive


def test_a_fresh_runtime_extracts_the_archive_kept_on_drive(clean_env, synthetic_root, tmp_path):
    archive = _archive_of(synthetic_root, tmp_path / "drive")
    clean_env.setenv("MVTEC_SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    clean_env.setenv("MVTEC_MIN_FREE_GB", "0.01")
    clean_env.setenv("DEFECTS_ARCHIVE_DIR", str(tmp_path / "drive"))
    clean_env.setenv("DEFECTS_LOCAL_DIR", str(tmp_path / "runtime-1"))
    first = prepare(get_config("smoke", runs_dir=tmp_path / "drive" / "runs"), download=True, progress=False)
    assert not first.source.builtin and first.source.archive == archive.resolve() and archive.exists()
    shutil.rmtree(tmp_path / "runtime-1")
    clean_env.setenv("DEFECTS_LOCAL_DIR", str(tmp_path / "runtime-2"))
    again = load_prepared(get_config("smoke", runs_dir=tmp_path / "drive" / "runs"), colab=True)
    assert again.root == (tmp_path / "runtime-2" / "mvtec_anomaly_detection").resolve()
    assert not again.source.builtin and again.provenance()["manifest_hash"] == first.provenance()["manifest_hash"]
    (tmp_path / "drive" / archive.name).unlink()                        # archive gone too: refused, no fallback
    shutil.rmtree(tmp_path / "runtime-2")
    with pytest.raises(PreparedStateError, match=r"names MVTec AD at .* not on this runtime.*Nothing falls back"):
        load_prepared(get_config("smoke", runs_dir=tmp_path / "drive" / "runs"), colab=True)


def test_a_runs_dir_from_another_generator_version_is_named_not_reused(clean_env, tmp_path):
    clean_env.setenv("DEFECTS_LOCAL_DIR", str(tmp_path / "runtime-1"))
    prepare(get_config("smoke", runs_dir=tmp_path / "runs"), progress=False)
    info_path = tmp_path / "runs" / "dataset.json"
    info = json.loads(info_path.read_text())
    info["builtin_spec"]["version"] = 1                                 # as written before generator version 2
    info_path.write_text(json.dumps(info))
    with pytest.raises(PreparedStateError, match=r"version 1 of the built-in data generator.*new RUNS_DIR"):
        prepare(get_config("smoke", runs_dir=tmp_path / "runs"), progress=False)
    shutil.rmtree(tmp_path / "runtime-1")                               # a fresh runtime cannot regenerate it either
    clean_env.setenv("DEFECTS_LOCAL_DIR", str(tmp_path / "runtime-2"))
    with pytest.raises(PreparedStateError, match=r"version 1 of the built-in data generator"):
        load_prepared(get_config("smoke", runs_dir=tmp_path / "runs"), colab=True)


def test_mvtec_dir_at_a_new_place_must_hold_the_same_bytes(clean_env, synthetic_root, tmp_path):
    shutil.copytree(synthetic_root, tmp_path / "a")
    prepare(get_config("smoke", data_dir=tmp_path / "a", runs_dir=tmp_path / "runs"), progress=False)
    shutil.move(tmp_path / "a", tmp_path / "b")
    moved = load_prepared(get_config("smoke", data_dir=tmp_path / "b", runs_dir=tmp_path / "runs"))
    assert moved.root == (tmp_path / "b").resolve()
    shutil.move(tmp_path / "b", tmp_path / "c")
    png = next((tmp_path / "c" / "bottle" / "train" / "good").glob("*.png"))
    png.write_bytes(next((tmp_path / "c" / "carpet" / "train" / "good").glob("*.png")).read_bytes())
    with pytest.raises(PreparedStateError, match=r"differs from the image notebook 00 scanned"):
        load_prepared(get_config("smoke", data_dir=tmp_path / "c", runs_dir=tmp_path / "runs"))
