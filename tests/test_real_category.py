"""The whole series on a whole real MVTec AD category (``../shared/mvtec_bottle``), smoke profile.

Generated data hides what real data does: perfect separation (test AUROC 1.0 is common on real MVTec AD), one
category, real score distributions. This runs every notebook as ``make run`` does (``python -m helpers
run-notebooks``) on the real category and checks what they wrote. It takes minutes, so ``make test-dev`` runs it
once, as a step of its own (``DEFECTS_REAL_SERIES=1``), on the dev stack; elsewhere it is skipped with the reason.
Skipped too where ``../shared/mvtec_bottle`` is absent.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.core import layout

BOTTLE = Path(__file__).resolve().parents[1].parent / "shared" / "mvtec_bottle"

pytestmark = [
    pytest.mark.skipif(os.environ.get("DEFECTS_REAL_SERIES") != "1",
                       reason="the real-category series runs as its own step of make test-dev (DEFECTS_REAL_SERIES=1)"),
    pytest.mark.skipif(not BOTTLE.is_dir(), reason=f"{BOTTLE} (the team's real category) is absent"),
]

#: metrics that live in [0, 1] (differences of them do not: those are checked in [-1, 1])
BOUNDED = ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "fpr", "specificity", "category_auroc_mean",
           "pixel_auroc", "au_pro", "pointing_game")


def _bounded_values(node, key: str = "", path: str = ""):
    """Every number under a bounded metric's key in a metrics.json tree, with where it was found."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _bounded_values(v, k if k in BOUNDED or any(k.startswith(b + "_") for b in BOUNDED) else key,
                                       f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _bounded_values(v, key, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool) and key:
        yield path, float(node)


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("real_series")
    env = {**os.environ, "MVTEC_DIR": str(BOTTLE), "DEFECTS_PROFILE": "smoke", "RUNS_DIR": str(runs)}
    done = subprocess.run([sys.executable, "-m", "helpers", "run-notebooks"], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, f"the series stopped on the real category:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return runs


def test_every_notebook_runs_on_the_real_category(series):
    executed = sorted(p.stem for p in (series / layout.EXECUTED_DIR).glob("*.ipynb"))
    wanted = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert executed == wanted


def test_every_interval_stays_in_its_range(series):
    files = sorted(series.glob("*/metrics.json"))
    assert len(files) >= 6, [str(f) for f in files]
    bad = [(f.parent.name, where, v) for f in files for where, v in _bounded_values(json.loads(f.read_text()))
           if math.isfinite(v) and not 0.0 <= v <= 1.0]
    assert not bad, bad


def test_one_category_everywhere(series):
    for f in sorted(series.glob("*/metrics.json")):
        m = json.loads(f.read_text())
        cats = {row["category"] for row in m.get("per_category") or [] if isinstance(row, dict) and "category" in row}
        assert cats <= {"bottle", "(mean over categories)"}, (f.parent.name, cats)
    report = (series / layout.REPORT_DIR / layout.COMPARISON_MD).read_text()
    assert "bottle" in report
