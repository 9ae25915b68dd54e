"""The package's layers, read from every import (those inside functions too): no cycle, no import upwards, and each
model kind's name written in the registry alone.

The layers, lowest first, are ``helpers.LAYERS``; ``helpers.errors`` sits below them all (every layer raises its
errors) and ``helpers.cli`` above them all. A module may import from its own layer and from lower ones.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import helpers

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "helpers"
#: The rank of each top-level part of the package (``errors`` and ``_lazy`` at the bottom, ``cli`` at the top).
RANK = {"errors": -1, "_lazy": -1, **{name: i for i, name in enumerate(helpers.LAYERS)}, "cli": len(helpers.LAYERS),
        "__main__": len(helpers.LAYERS) + 1}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _targets(module: str, path: Path) -> set[str]:
    """Every module of the package that ``module`` imports, wherever in the file the import is."""
    out = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module and not name.startswith(module + "."):
                out.add(name)
    return out


GRAPH = {m: _targets(m, p) for m, p in MODULES.items()}


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def test_no_import_cycle():
    colour: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        colour[m] = 1
        for t in GRAPH[m]:
            if t.startswith(m + ".") or m.startswith(t + "."):
                continue           # a package and its own modules (lazy submodules) are not a dependency
            if colour.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t] if t in stack else [m, t])
            elif t not in colour:
                visit(t, stack + [t])
        colour[m] = 2

    for m in sorted(GRAPH):
        if m not in colour:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_layer_imports_a_higher_one():
    upward = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
              if _part(m) in RANK and _part(t) in RANK and RANK[_part(t)] > RANK[_part(m)]]
    assert not upward, "a lower layer imports a higher one:\n" + "\n".join(sorted(upward))


def test_every_part_has_a_rank():
    parts = {_part(m) for m in MODULES} - {"__init__"}
    assert parts <= set(RANK), f"give these a layer (helpers.LAYERS): {sorted(parts - set(RANK))}"


def test_a_model_kind_is_named_in_the_registry_alone():
    from helpers.models.kinds import KINDS

    registry = PACKAGE / "models" / "kinds.py"
    offenders = []
    for name in KINDS:
        quoted = re.compile(rf"""["']{re.escape(name)}["']""")
        offenders += [f"{p.relative_to(ROOT)}:{i}: {name!r}" for p in sorted(PACKAGE.rglob("*.py")) if p != registry
                      for i, line in enumerate(p.read_text().splitlines(), 1) if quoted.search(line)]
    assert not offenders, "use helpers.models.kinds instead of a kind's name:\n" + "\n".join(offenders)
