"""Child process for test_distributed.py: a small classifier trained by helpers.training.loop.fit, in one process or
several (under torchrun, gloo on CPU), with a checkpoint.

    python tests/_ddp_worker.py OUT_DIR EPOCHS [STOP_AFTER] [LOSS]
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/_ddp_worker.py OUT_DIR EPOCHS [STOP_AFTER] [LOSS]

LOSS: ``ce`` (cross-entropy, the default) or ``ntxent`` (SimCLR's loss over two noisy views, with the
projections of every process gathered as notebook 02's training step does).

Rank 0 writes OUT_DIR/result.json (history and final weights). Every run orders the data as a
DistributedSampler over its own processes does, so one process and two see the same global batches.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data.distributed import DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.core import distributed
from helpers.data.torch_data import make_loader
from helpers.models.simclr import nt_xent
from helpers.training.loop import Resuming, Stepping, fit

GLOBAL_BATCH = 16


def data() -> tuple[list[dict], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return [{"image": x[i], "label": y[i]} for i in range(128)], x[128:], y[128:]


def _ntxent_step(m: nn.Module, b: dict) -> torch.Tensor:
    x = b["image"]
    v1, v2 = x + 0.1 * torch.sin(37 * x), x + 0.1 * torch.cos(53 * x)     # two "views", per image, whatever the rank
    return nt_xent(distributed.gather(m(v1)), distributed.gather(m(v2)), 0.5)


def main(out: Path, epochs: int, stop_after: int | None, loss: str = "ce") -> None:
    distributed.init_from_env()
    rank, size = distributed.world()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    train, xv, yv = data()
    sampler = DistributedSampler(train, num_replicas=size, rank=rank, shuffle=True, seed=1, drop_last=True)
    loader = make_loader(train, distributed.per_rank_batch(GLOBAL_BATCH), sampler=sampler)
    ce = nn.CrossEntropyLoss()
    step = _ntxent_step if loss == "ntxent" else (lambda m, b: ce(m(b["image"]), b["label"]))
    result = fit(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), loader,
                 step, lambda m: {"val_loss": float(ce(m(xv), yv))}, epochs,
                 stepping=Stepping(clip_grad=1.0), resuming=Resuming(out / "ckpt.pt"), seed=3, progress=False,
                 stop_after=stop_after)
    if distributed.is_main():
        (out / "result.json").write_text(json.dumps({
            "processes": size, "resumed_from": result.resumed_from,
            "history": result.history.drop(columns="seconds").to_dict("list"),
            "weights": torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()}))
    distributed.cleanup()


if __name__ == "__main__":
    stop = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    main(Path(sys.argv[1]), int(sys.argv[2]), stop, sys.argv[4] if len(sys.argv) > 4 else "ce")
