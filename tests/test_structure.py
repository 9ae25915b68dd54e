"""The package's shape, checked: every module lazily importable and with ``__all__``, short functions, and
notebook folder names only in :mod:`helpers.runs`; the notebooks paired with their scripts."""
from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

import helpers
from helpers import runs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "helpers"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__"))
MAX_FUNCTION_LINES = 60


def test_every_module_is_a_lazy_submodule():
    assert sorted(helpers.SUBMODULES) == MODULES
    assert helpers.report.__name__ == "helpers.report"            # was an AttributeError once
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        helpers.nope  # noqa: B018


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_what_it_exports(name):
    module = importlib.import_module(f"helpers.{name}")
    assert isinstance(getattr(module, "__all__", None), list), f"helpers/{name}.py has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"helpers/{name}.py exports names it does not define: {missing}"


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_is_longer_than_sixty_lines():
    long = [f"{p.name}:{line} {name} ({n} lines)" for p in sorted(PACKAGE.glob("*.py"))
            for name, line, n in _functions(p) if n > MAX_FUNCTION_LINES]
    assert not long, "split these functions: " + ", ".join(long)


def test_notebook_folders_are_named_only_in_runs():
    stem = re.compile(r"\b0\d_[a-z]\w+")
    offenders = [f"{p.name}:{i}" for p in sorted(PACKAGE.glob("*.py")) if p.name != "runs.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if stem.search(line)]
    assert not offenders, "use the constants of helpers.runs instead: " + ", ".join(offenders)


def test_notebooks_are_paired_stripped_and_carry_the_setup_cell():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import notebooks as nbtool
    finally:
        sys.path.pop(0)
    assert len(nbtool.pairs()) == len(runs.NOTEBOOKS)
    assert nbtool.problems() == []


def test_the_colab_version_list_is_colabs():
    """tools/colab-versions.txt (what `make test-colab` installs) is the team's copy of Colab's runtime list."""
    shared = ROOT.parent / "shared" / "colab" / "colab-versions.txt"
    if not shared.exists():
        pytest.skip(f"{shared} not present")
    assert (ROOT / "tools" / "colab-versions.txt").read_text() == shared.read_text()
