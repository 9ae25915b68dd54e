"""Whether a notebook can show live widgets (ipywidgets), or draws static figures instead."""
from __future__ import annotations

import os

__all__ = ["HEADLESS_ENV", "widgets_wanted"]

HEADLESS_ENV = "DEFECTS_HEADLESS"


def widgets_wanted() -> bool:
    """True when interactive widgets can be shown; prints why not otherwise.

    ``python -m helpers run-notebooks`` sets ``DEFECTS_HEADLESS=1``: papermill/nbclient can block for
    ever on a cell that displays an ipywidgets ``Output`` (jupyter/nbclient#312), and an executed
    notebook keeps no live widget anyway, so the static figures are drawn instead.
    """
    if os.environ.get(HEADLESS_ENV, "") not in ("", "0"):
        print("Headless run: static figures instead of widgets (open the notebook to explore interactively).")
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        print("ipywidgets is not available: showing static figures instead.")
        return False
    return True
