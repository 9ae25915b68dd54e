"""nbval's notebook cells: a longer wait for a cell's output messages on a busy machine.

nbval waits 5 s (hard-coded) for each output message after a cell has finished; a notebook that draws a large figure
on a 2-core machine that is also running other work can take longer to send it, and the cell then fails with
"Timeout of 5 seconds exceeded waiting for output" although it ran. The cell's own time limit
(``--nbval-cell-timeout``) is unchanged.
"""
from __future__ import annotations

import pytest

#: Seconds to wait for each output message of a finished cell (nbval's default: 5).
OUTPUT_TIMEOUT = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT
