"""Build notebooks from a compact list of cells (kept in git so edits stay reviewable).

Usage: ``python tools/nbtools.py`` rewrites every notebook defined in ``tools/notebooks_src.py``
without outputs. Each notebook starts with the same setup cell.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
REPO_URL = "https://github.com/mvtec-defects/mvtec-defect-toolkit"
COLAB = f"https://colab.research.google.com/github/{REPO_URL.split('github.com/')[1]}/blob/main/notebooks"

SETUP = '''\
# Setup. On Colab: fetch the project and the few packages Colab lacks (torch and TensorFlow are
# preinstalled and left alone). Elsewhere: use this checkout (`make run` / `make test` set up a venv).
import os, sys
from pathlib import Path
IS_COLAB = "google.colab" in sys.modules
if IS_COLAB and not Path("mvtec-defect-toolkit").exists():
    !git clone -q {repo} mvtec-defect-toolkit
    %pip install -q -r mvtec-defect-toolkit/requirements.txt
    # Optional: keep outputs on Google Drive across sessions
    # from google.colab import drive; drive.mount("/content/drive")
    # os.environ["RUNS_DIR"] = "/content/drive/MyDrive/mvtec_runs"
ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents, Path("mvtec-defect-toolkit").resolve()]
            if (p / "helpers" / "__init__.py").exists())
sys.path.insert(0, str(ROOT))

# Settings: uncomment to override the environment variables.
# os.environ["DEFECTS_PROFILE"] = "quick"   # full (GPU, the published recipe) | quick (CPU demo) | smoke (CI)
# os.environ["MVTEC_DIR"] = "/content/drive/MyDrive/mvtec_anomaly_detection"
%matplotlib inline
import helpers
from helpers import config, env
cfg = config.get_config()
env.print_versions()
print(f"profile: {{cfg.profile.name}}  |  outputs: {{cfg.runs_dir}}")
'''.format(repo=REPO_URL)


def badge(name: str) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({COLAB}/{name})"


def build(name: str, title: str, intro: str, cells: list[tuple[str, str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {title}\n\n{badge(name)}\n\n{intro}"))
    nb.cells.append(nbformat.v4.new_code_cell(SETUP))
    for kind, src in cells:
        src = src.strip("\n")
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:02d}"
    path = ROOT / "notebooks" / name
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tools"))
    import notebooks_src  # noqa: E402

    for spec in notebooks_src.NOTEBOOKS:
        print(build(**spec))
