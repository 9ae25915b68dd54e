"""Training past one process: under torchrun (gloo on CPU) the shared loop takes the same steps as one process
with the same global batch, checkpoints from rank 0 and resumes intact."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("_ddp_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
#: float sums over two processes differ from one process's only in rounding
TOLERANCE = 1e-5


def _run(cmd: list[str], out: Path, epochs: int, stop_after: int | None = None, loss: str = "ce") -> dict:
    out.mkdir(exist_ok=True)
    args = [str(WORKER), str(out), str(epochs), str(stop_after or "-"), loss]
    done = subprocess.run(cmd + args, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads((out / "result.json").read_text())


@pytest.mark.slow
def test_two_processes_take_the_steps_of_one_with_the_same_global_batch(tmp_path):
    one = _run([sys.executable], tmp_path / "one", 4)
    two = _run(TORCHRUN, tmp_path / "two", 4)
    assert (one["processes"], two["processes"]) == (1, 2)
    np.testing.assert_allclose(two["weights"], one["weights"], atol=TOLERANCE)
    for key in ("train_loss", "val_loss"):                   # logged losses: the global batch's, on rank 0
        np.testing.assert_allclose(two["history"][key], one["history"][key], atol=TOLERANCE)
    assert one["history"]["val_loss"][-1] < one["history"]["val_loss"][0]         # it learns
    # interrupted after 2 epochs and restarted: rank 0's checkpoint, resumed by both processes
    first = _run(TORCHRUN, tmp_path / "resumed", 4, stop_after=2)
    assert len(first["history"]["epoch"]) == 2
    resumed = _run(TORCHRUN, tmp_path / "resumed", 4)
    assert resumed["resumed_from"] == 1
    np.testing.assert_allclose(resumed["weights"], one["weights"], atol=TOLERANCE)
    np.testing.assert_allclose(resumed["history"]["val_loss"], one["history"]["val_loss"], atol=TOLERANCE)


@pytest.mark.slow
def test_simclr_loss_sees_the_whole_global_batch_under_two_processes(tmp_path):
    """NT-Xent's negatives are the global batch's: each process gathers every process's projections
    (differentiably), so two processes take the steps of one with the same global batch."""
    one = _run([sys.executable], tmp_path / "one", 3, loss="ntxent")
    two = _run(TORCHRUN, tmp_path / "two", 3, loss="ntxent")
    np.testing.assert_allclose(two["history"]["train_loss"], one["history"]["train_loss"], atol=TOLERANCE)
    np.testing.assert_allclose(two["weights"], one["weights"], atol=TOLERANCE)
    assert one["history"]["train_loss"][-1] < one["history"]["train_loss"][0]


def test_a_batch_that_does_not_split_is_refused(monkeypatch):
    from helpers.core import distributed

    monkeypatch.setattr(distributed, "world", lambda: (0, 3))
    with pytest.raises(ValueError, match="batch of 64 cannot be split over 3 processes"):
        distributed.per_rank_batch(64)
    assert distributed.loader_sampler(list(range(9)), True, 0) is not None
