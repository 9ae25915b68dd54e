"""Child process for test_train.py: train a tiny CNN on the small built-in data with a checkpoint.

    python tests/_resume_worker.py DATA_ROOT WORK_DIR EPOCHS [CACHE_DIR]

Writes WORK_DIR/result.json (history and test AUROC) when training completes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.data.cache import build_cache
from helpers.data.scan import scan_mvtec
from helpers.data.split import make_split
from helpers.data.torch_data import MVTecDataset, eval_transform, make_loader, train_transform
from helpers.evaluation.metrics import binary_metrics
from helpers.training.loop import Resuming, Stepping, Stopping, fit, predict_scores


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 2))


def main(root: str, work: str, epochs: int, cache_dir: str | None = None) -> None:
    torch.set_num_threads(1)
    work_dir = Path(work)
    manifest = scan_mvtec(root, progress=False).manifest
    split = make_split(manifest)
    frame = manifest.merge(split[["path", "split"]], on="path")
    cache = build_cache(manifest, root, 32, cache_dir or work_dir.parent / "cache", progress=False)
    train = MVTecDataset(frame[frame.split == "train"], cache=cache, transform=train_transform(32))
    val = MVTecDataset(frame[frame.split == "val"], cache=cache, transform=eval_transform(32))
    test = MVTecDataset(frame[frame.split == "test"], cache=cache, transform=eval_transform(32))
    torch.manual_seed(0)
    model = tiny_cnn()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=epochs * 8)
    loss_fn = nn.CrossEntropyLoss()
    loader = make_loader(train, 8, shuffle=True, seed=1)
    val_loader = make_loader(val, 32)

    def evaluate(m):
        return {"val_loss": float(sum(loss_fn(m(b["image"]), b["label"]) for b in val_loader) / len(val_loader))}

    result = fit(model, opt, loader, lambda m, b: loss_fn(m(b["image"]), b["label"]), evaluate, epochs,
                 stepping=Stepping(sched, max_batches=8), stopping=Stopping(patience=10),
                 resuming=Resuming(work_dir / "ckpt.pt"), progress=False)
    scores, labels = predict_scores(model, make_loader(test, 32))
    out = {"history": result.history.drop(columns="seconds").to_dict("list"),
           "auroc": binary_metrics(labels, scores, 0.5)["roc_auc"], "resumed_from": result.resumed_from,
           "best_epoch": result.best_epoch}
    (work_dir / "result.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
