"""The shared training loop (helpers.training.loop.fit) against a bare PyTorch loop: images/s on the same model, batch and
data, and (on a GPU) the effect of TF32 and channels_last.

Both loops train a ResNet-50 (random init, as the loop's cost does not depend on the weights) on the same
tensors already in memory, so only the loop differs: fit adds the non-finite-loss check, gradient clipping,
per-batch scheduler step, loss bookkeeping and the progress bar. Runs alternate (bare, fit, bare, fit, ...) so
that a busy machine affects both alike; the median of the repeats is reported.

Usage: .venv/bin/python benchmarks/loop_overhead.py [--size 64] [--batch 8] [--steps 6] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.models import backbones  # noqa: E402
from helpers.models.classifiers import Classifier  # noqa: E402
from helpers.training.loop import Stepping, fit  # noqa: E402
from helpers.training.schedules import onecycle  # noqa: E402


def setup(size: int, batch: int, steps: int, device: torch.device, channels_last: bool):
    torch.manual_seed(0)
    model = Classifier(backbones.build("resnet50", "random"))
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    data = [{"image": torch.randn(batch, 3, size, size), "label": torch.randint(0, 2, (batch,))} for _ in range(steps)]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    return model, data, opt, onecycle(opt, 0.01, 1, steps), nn.CrossEntropyLoss()


def bare(size, batch, steps, device, channels_last) -> float:
    model, data, opt, sched, ce = setup(size, batch, steps, device, channels_last)
    model.train()
    t0 = time.perf_counter()
    for b in data:
        x, y = b["image"].to(device), b["label"].to(device)
        opt.zero_grad(set_to_none=True)
        ce(model(x), y).backward()
        opt.step()
        sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def shared(size, batch, steps, device, channels_last) -> float:
    model, data, opt, sched, ce = setup(size, batch, steps, device, channels_last)
    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(data, batch_size=None)        # the pre-made batches, as they are
    fit(model, opt, loader, lambda m, b: ce(m(b["image"]), b["label"]), lambda m: {"val_loss": 0.0}, 1,
        stepping=Stepping(sched), progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)   # includes fit's (empty) evaluation and bookkeeping


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; ResNet-50 (01's trainable stages), batch {args.batch} at {args.size} px, {args.steps} steps")
    variants = [("fp32", False, False)] + ([("TF32", True, False), ("TF32 + channels_last", True, True)]
                                            if device.type == "cuda" else [])
    print("| precision / layout | bare loop img/s | fit img/s | fit ÷ bare |\n|---|---|---|---|")
    for label, tf32, cl in variants:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        bare(args.size, args.batch, 2, device, cl)                      # warm-up
        rates = {"bare": [], "fit": []}
        for _ in range(args.repeats):
            rates["bare"].append(bare(args.size, args.batch, args.steps, device, cl))
            rates["fit"].append(shared(args.size, args.batch, args.steps, device, cl))
        b, f = statistics.median(rates["bare"]), statistics.median(rates["fit"])
        print(f"| {label} | {b:.1f} | {f:.1f} | {f / b:.2f} |")


if __name__ == "__main__":
    main()
