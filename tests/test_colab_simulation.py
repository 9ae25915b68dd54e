"""Colab as its users meet it, simulated: every notebook on a fresh "runtime", only Drive shared.

- ``google.colab`` is imported at kernel start (an IPython startup file, as Colab's kernel does), and its
  ``drive.mount`` links ``<mountpoint>/MyDrive`` to one folder that outlives every runtime;
- each notebook runs in a fresh, empty working folder (Colab's ``/content``) through papermill, with its
  parameters injected (``PROFILE="smoke"``, ``DOWNLOAD_MVTEC=True`` for 00) and the Drive left on;
- the setup cell's ``git clone`` of the project is redirected to this checkout's HEAD by git's
  ``url.<local>.insteadOf`` (``GIT_CONFIG_GLOBAL``), and it really ``pip install``s the clone;
- "MVTec AD" is an archive in MVTec's layout generated here and served by a local HTTP server
  (``MVTEC_URL`` / ``MVTEC_SHA256``).

The setup cell installs the project into the interpreter that runs the kernel, so this test runs only in
the throwaway Colab-stack environment (``make test-colab`` sets ``DEFECTS_COLAB_SIMULATION=1``), never in
the development venv, whose editable install it would replace.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROJECT_URL = "https://github.com/mvtec-defects/mvtec-defect-toolkit"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DEFECTS_COLAB_SIMULATION") != "1",
                       reason="installs the project into the running interpreter: run by `make test-colab` in its "
                              "own environment (CI runs it)"),
]

FAKE_COLAB = '''"""A stand-in for google.colab: only what the notebooks use."""
'''
FAKE_DRIVE = '''"""drive.mount links <mountpoint>/MyDrive to the folder that outlives every simulated runtime."""
import os
from pathlib import Path


def mount(mountpoint, force_remount=False):
    store = Path(os.environ["FAKE_DRIVE_STORE"])
    my_drive = Path(mountpoint) / "MyDrive"
    my_drive.parent.mkdir(parents=True, exist_ok=True)
    if not my_drive.exists():
        my_drive.symlink_to(store, target_is_directory=True)
    print(f"Mounted at {mountpoint}")
'''


def _fake_colab(base: Path) -> tuple[Path, Path]:
    """A ``google.colab`` package (``google`` stays a namespace package) and an IPython startup file importing it."""
    pkg = base / "site" / "google" / "colab"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_COLAB)
    (pkg / "drive.py").write_text(FAKE_DRIVE)
    startup = base / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as Colab's kernel does at start\n")
    return base / "site", base / "ipython"


def _archive(base: Path) -> Path:
    """An MVTec-layout archive (categories at its top level, as the official one)."""
    from helpers.data.synthetic import SyntheticSpec, generate_dataset

    tree = generate_dataset(base / "tree", SyntheticSpec(size=96, n_train_good=10, n_test_good=4, n_per_defect=3,
                                                        categories=("bottle", "carpet", "screw")), progress=False)
    (tree / "builtin_dataset.json").unlink()
    served = base / "served"
    served.mkdir()
    archive = served / "mvtec_anomaly_detection.tar.xz"
    with tarfile.open(archive, "w:xz") as tf:
        for child in sorted(tree.iterdir()):
            tf.add(child, arcname=child.name)
    return archive


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    base = tmp_path_factory.mktemp("colab")
    site, ipython = _fake_colab(base)
    archive = _archive(base)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(archive.parent)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    gitconfig = base / "gitconfig"
    gitconfig.write_text(f'[url "{ROOT}"]\n\tinsteadOf = {PROJECT_URL}\n')
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    drive = base / "drive-store"
    drive.mkdir()
    env = {"PYTHONPATH": str(site), "IPYTHONDIR": str(ipython), "GIT_CONFIG_GLOBAL": str(gitconfig),
           "FAKE_DRIVE_STORE": str(drive), "DEFECTS_REF": head.stdout.strip(),
           "MVTEC_URL": f"http://127.0.0.1:{httpd.server_address[1]}/{archive.name}",
           "MVTEC_SHA256": hashlib.sha256(archive.read_bytes()).hexdigest(), "MVTEC_MIN_FREE_GB": "1",
           # papermill can wait for ever on a cell showing an ipywidgets Output (jupyter/nbclient#312); Colab's
           # own front end does not, so the executed copies get the static figures, as `make run` does
           "DEFECTS_HEADLESS": "1"}
    yield {"base": base, "drive": drive, "env": env}
    httpd.shutdown()


def test_every_notebook_on_a_fresh_runtime_with_drive(colab, monkeypatch):
    import papermill

    for name in ("RUNS_DIR", "MVTEC_DIR", "DEFECTS_PROFILE", "DEFECTS_LOCAL_DIR", "DEFECTS_ARCHIVE_DIR", "PYTHONPATH"):
        monkeypatch.setenv(name, "")      # recorded, so that teardown restores it (or its absence)
        monkeypatch.delenv(name)
    for name, value in colab["env"].items():
        monkeypatch.setenv(name, value)
    executed = colab["base"] / "executed"
    executed.mkdir()
    for nb in NOTEBOOKS:
        runtime = colab["base"] / f"runtime-{nb.name[:2]}"      # a fresh /content: nothing from earlier notebooks
        runtime.mkdir()
        params = {"PROFILE": "smoke", **({"DOWNLOAD_MVTEC": True} if nb.name.startswith("00") else {})}
        papermill.execute_notebook(str(nb), str(executed / nb.name), parameters=params, cwd=str(runtime),
                                   kernel_name="python3", progress_bar=False, log_output=False)
        assert not (runtime / "runs").exists(), "outputs went to the runtime's disk, not to Drive"
        shutil.rmtree(runtime)                                    # the runtime goes; only Drive remains
    runs = colab["drive"] / "mvtec-defect-toolkit" / "runs"
    assert (colab["drive"] / "mvtec-defect-toolkit" / "mvtec_anomaly_detection.tar.xz").is_file()  # kept on Drive
    assert not (runs / "cache").exists(), "the image cache belongs on the local disk, not on Drive"
    records = [json.loads(p.read_text()) for p in sorted(runs.rglob("metrics.json"))]
    assert len(records) >= 5
    data = {(r["data"]["builtin"], r["data"]["name"], r["data"]["manifest_hash"], r["data"]["split_hash"])
            for r in records}
    assert len(data) == 1 and next(iter(data))[:2] == (False, "MVTec AD"), data
    notes = json.loads((runs / "report" / "report.json").read_text())
    assert notes["missing"] == [], notes["missing"]                    # 07 found every approach on Drive
