"""The package's shape, checked: every module lazily importable and with ``__all__``, short functions, and
notebook folder names only in :mod:`helpers.artefacts.scored`; the notebooks paired with their scripts."""
from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

import helpers
from helpers.core import layout

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "helpers"
FILES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")
MODULES = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in FILES)
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500


def test_every_layer_is_a_lazy_subpackage_with_a_purpose():
    on_disk = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert sorted(helpers.LAYERS) == on_disk
    for name in helpers.LAYERS:
        package = importlib.import_module(f"helpers.{name}")
        purpose = (package.__doc__ or "").strip()
        assert purpose and "\n" not in purpose, f"helpers/{name}/__init__.py: give it a one-line purpose"
        expected = sorted(p.stem if p.suffix else p.name for p in (PACKAGE / name).iterdir()
                          if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").exists()))
        assert package.__all__ == expected
    assert helpers.workflows.report.__name__ == "helpers.workflows.report"     # lazily, on first use
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        helpers.nope  # noqa: B018


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_what_it_exports(name):
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name} exports names it does not define: {missing}"


def test_no_module_is_longer_than_five_hundred_lines():
    long = [f"{p.relative_to(ROOT)} ({n})" for p in FILES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, "split these modules by concern: " + ", ".join(long)


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_is_longer_than_sixty_lines():
    long = [f"{p.relative_to(ROOT)}:{line} {name} ({n} lines)" for p in FILES
            for name, line, n in _functions(p) if n > MAX_FUNCTION_LINES]
    assert not long, "split these functions: " + ", ".join(long)


def test_notebook_folders_are_named_only_in_the_layout():
    stem = re.compile(r"\b0\d_[a-z]\w+")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in FILES if p != PACKAGE / "core" / "layout.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if stem.search(line)]
    assert not offenders, "use the constants of helpers.core.layout instead: " + ", ".join(offenders)


def test_notebooks_are_paired_stripped_and_carry_the_setup_cell():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import notebooks as nbtool
    finally:
        sys.path.pop(0)
    assert len(nbtool.pairs()) == len(layout.NOTEBOOKS)
    assert nbtool.problems() == []


def test_the_colab_version_list_is_colabs():
    """tools/colab-versions.txt (what `make test-colab` installs) is the team's copy of Colab's runtime list."""
    shared = ROOT.parent / "shared" / "colab" / "colab-versions.txt"
    if not shared.exists():
        pytest.skip(f"{shared} not present")
    assert (ROOT / "tools" / "colab-versions.txt").read_text() == shared.read_text()
