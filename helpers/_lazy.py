"""Lazy submodules for the subpackages' ``__init__``: ``helpers.data.split`` is imported on first use, so importing
a subpackage costs nothing until one of its modules is needed (torch and TensorFlow are heavy)."""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

__all__ = ["submodules", "lazy_getattr"]


def submodules(package_path: list[str]) -> list[str]:
    """The modules and subpackages of a package (its ``__path__``), by name."""
    return sorted(m.name for m in pkgutil.iter_modules(package_path) if not m.name.startswith("_"))


def lazy_getattr(package: str, names: list[str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) that imports ``package.<name>`` for each of ``names`` on first use."""
    def __getattr__(name: str) -> Any:
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
