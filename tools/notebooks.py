"""Keep the notebooks honest: paired with their py:percent scripts, without outputs, with the current setup cell.

The notebooks are authored as ``notebooks/NN_name.py`` (jupytext ``py:percent``) paired with
``notebooks/NN_name.ipynb`` (what Colab opens from GitHub); both are committed, the ``.ipynb`` without
outputs and with the metadata that opens it on a Colab GPU runtime. Every notebook's first code cell is
tagged ``parameters`` (Colab shows it as a form; papermill injects values after it) and holds
``tools/parameters_cell.py`` (plus :data:`EXTRA_PARAMETERS` for some notebooks); the next, tagged ``setup``,
holds ``tools/setup_cell.ipy``. Those files are the one source of truth for both cells.

Usage::

    python tools/notebooks.py sync    # setup cell → every .py; then jupytext --sync; outputs stripped
    python tools/notebooks.py check   # exit 1, listing every problem, when anything is out of step

``make sync`` / ``make test`` call these (``tests/test_structure.py`` runs the check).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from helpers.models.backbones import CHOICES  # noqa: E402  (the registry of backbones: the form's list)

NOTEBOOKS = ROOT / "notebooks"
SETUP_CELL = ROOT / "tools" / "setup_cell.ipy"
SETUP_TAG = "setup"
PARAMETERS_CELL = ROOT / "tools" / "parameters_cell.py"
PARAMETERS_TAG = "parameters"
#: Parameters only some notebooks have (by number prefix).
_BACKBONE = ("# BACKBONE: \"auto\" = the study's network with its ImageNet weights (downloaded, or found in torch's hub\n"
             "#   cache); without them, loudly, EfficientNet-Lite0 (ImageNet weights shipped in a package). Or a name.\n"
             'BACKBONE = "auto"  #@param [' + ", ".join(f'"{c}"' for c in CHOICES) + "]")
EXTRA_PARAMETERS = {
    "00": ("# DOWNLOAD_MVTEC: download the official archive (4.9 GB; kept on Drive, so only once) when MVTec AD\n"
           "#   is not found; the images are extracted on each runtime's local disk.\n"
           'DOWNLOAD_MVTEC = False  #@param {type:"boolean"}'),
    "01": _BACKBONE, "02": _BACKBONE, "06": _BACKBONE, "09": _BACKBONE,
}
#: Notebook metadata that makes Colab open the notebook on a GPU runtime.
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}

__all__ = ["pairs", "setup_text", "parameters_text", "problems", "sync", "main"]


def pairs() -> list[tuple[Path, Path]]:
    """(script, notebook) of every numbered notebook; a missing partner shows up in :func:`problems`."""
    stems = sorted({p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*") if p.suffix in (".py", ".ipynb")})
    return [(NOTEBOOKS / f"{s}.py", NOTEBOOKS / f"{s}.ipynb") for s in stems]


def setup_text() -> str:
    """The setup cell every notebook carries."""
    return SETUP_CELL.read_text().rstrip("\n")


def parameters_text(stem: str) -> str:
    """The parameters cell of notebook ``stem`` (e.g. ``00_data_preparation``)."""
    extra = EXTRA_PARAMETERS.get(stem[:2])
    return PARAMETERS_CELL.read_text().rstrip("\n") + (f"\n{extra}" if extra else "")


def _tagged_cell_problems(script: Path, text_nb) -> list[str]:
    """The first code cell is the parameters cell, the second the setup cell, each with its current text."""
    code = [c for c in text_nb.cells if c.cell_type == "code"]
    out = []
    for i, (tag, want, source) in enumerate(((PARAMETERS_TAG, parameters_text(script.stem), PARAMETERS_CELL),
                                             (SETUP_TAG, setup_text(), SETUP_CELL))):
        tagged = [c for c in text_nb.cells if tag in c.metadata.get("tags", ())]
        if len(tagged) != 1 or len(code) <= i or code[i] is not tagged[0]:
            out.append(f"{script.name}: code cell {i + 1} must be the one cell tagged {tag!r}: run `make sync`")
        elif tagged[0].source.rstrip("\n") != want:
            out.append(f"{script.name}: its {tag} cell is not {source.relative_to(ROOT)}: run `make sync`")
    return out


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.rstrip("\n"), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def problems() -> list[str]:
    """Every way the notebooks are out of step (empty when all is well)."""
    out = []
    for script, notebook in pairs():
        if not script.exists() or not notebook.exists():
            out.append(f"{notebook.stem}: {'script' if not script.exists() else 'notebook'} missing: run `make sync`")
            continue
        text_nb, ipynb = jupytext.read(script), nbformat.read(notebook, as_version=4)
        if _cells(text_nb) != _cells(ipynb):
            out.append(f"{notebook.name} and {script.name} differ: run `make sync` (jupytext --sync)")
        if any(ipynb.metadata.get(k) != v for k, v in COLAB_METADATA.items()):
            out.append(f"{notebook.name} does not ask Colab for a GPU runtime: run `make sync`")
        if any(c.get("outputs") or c.get("execution_count") for c in ipynb.cells if c.cell_type == "code"):
            out.append(f"{notebook.name} has outputs: run `make sync` (outputs belong to runs, not to git)")
        out.extend(_tagged_cell_problems(script, text_nb))
    return out


def _strip_outputs(notebook: Path) -> None:
    """No outputs, no execution counts; the Colab GPU-runtime metadata set."""
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata.update(COLAB_METADATA)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, notebook)


def sync() -> None:
    """Write the setup cell into every script, pair each script with its notebook, strip outputs."""
    setup = setup_text()
    for script, notebook in pairs():
        if script.exists():
            nb = jupytext.read(script)
            params = [c for c in nb.cells if PARAMETERS_TAG in c.metadata.get("tags", ())]
            if not params:   # a new notebook: the parameters cell goes right before the setup cell
                at = next(i for i, c in enumerate(nb.cells) if SETUP_TAG in c.metadata.get("tags", ()))
                nb.cells.insert(at, nbformat.v4.new_code_cell("", metadata={"tags": [PARAMETERS_TAG]}))
            for cell in nb.cells:
                tags = cell.metadata.get("tags", ())
                if SETUP_TAG in tags:
                    cell.source = setup
                elif PARAMETERS_TAG in tags:
                    cell.source = parameters_text(script.stem)
            jupytext.write(nb, script, fmt="py:percent")
        target = script if script.exists() else notebook
        subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(target)], check=True, cwd=ROOT)
        _strip_outputs(notebook)


def main(argv: list[str]) -> int:
    """``sync`` or ``check`` (see the module docstring)."""
    if argv[:1] == ["sync"]:
        sync()
    elif argv[:1] != ["check"]:
        print(__doc__)
        return 2
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
