"""Benchmark: images/s of one training epoch's data pipeline, raw full-size PNGs vs the cache.

    .venv/bin/python benchmarks/data_pipeline.py [--data MVTEC_ROOT] [--images 120] [--size 224]

Without ``--data`` it generates built-in images at 1024 px (MVTec's largest size). For each framework
it runs one epoch of the *training* pipeline (augmentation included) over the same images:
decoding + resizing the PNGs every time, then reading the memory-mapped cache. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.data.cache import build_cache
from helpers.data.scan import scan_mvtec
from helpers.data.synthetic import SyntheticSpec, generate_dataset


def _epoch(iterable) -> tuple[int, float]:
    t0, n = time.perf_counter(), 0
    for batch in iterable:
        n += len(batch["label"]) if isinstance(batch, dict) else int(batch[0].shape[0])
    return n, time.perf_counter() - t0


def _throughput(iterable, min_seconds: float) -> float:
    """Images/s over whole epochs, repeated until ``min_seconds`` have passed (after one warm-up epoch)."""
    _epoch(iterable)  # warm-up: workers start, page cache, tf.data graph tracing
    n_total, s_total = 0, 0.0
    while s_total < min_seconds:
        n, s = _epoch(iterable)
        n_total, s_total = n_total + n, s_total + s
    return n_total / s_total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", help="an MVTec root (default: generate 1024 px built-in images)")
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--seconds", type=float, default=5.0, help="minimum timed seconds per measurement")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_"))
    if args.data:
        root = Path(args.data)
    else:
        per_cat = max(1, args.images // 15)
        root = generate_dataset(work / "mvtec", SyntheticSpec(size=1024, n_train_good=per_cat, n_test_good=0,
                                                              n_per_defect=0))
    manifest = scan_mvtec(root).manifest.head(args.images)
    sizes = f"{manifest['width'].min()}–{manifest['width'].max()} px"
    t0 = time.perf_counter()
    cache = build_cache(manifest, root, args.size, work / "cache")
    build_s = time.perf_counter() - t0

    import torch

    from helpers.data.torch_data import MVTecDataset, category_names, make_loader, train_transform

    torch.set_num_threads(1)
    rows = []
    for workers in args.workers:
        for name, kw in (("raw PNG", {"root": root}), ("cache", {"cache": cache})):
            ds = MVTecDataset(manifest, transform=train_transform(args.size), **kw)
            loader = make_loader(ds, args.batch, shuffle=True, num_workers=workers)
            rows.append((f"torch DataLoader ({workers} workers) + Albumentations", name,
                         _throughput(loader, args.seconds)))

    import tensorflow as tf  # noqa: F401

    from helpers.data.tf_data import make_dataset

    cats = category_names(manifest)
    for name, kw in (("raw PNG", {"root": root}), ("cache", {"cache": cache})):
        ds = make_dataset(manifest, cats, size=args.size, batch_size=args.batch, training=True, **kw)
        rows.append(("tf.data (AUTOTUNE)", name, _throughput(ds, args.seconds)))

    print(f"\n{len(manifest)} images of {sizes} → {args.size} px, batch {args.batch}, one training epoch "
          f"(augmentation included), timed over ≥ {args.seconds:.0f}s per row, "
          f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}); "
          f"cache built once in {build_s:.1f}s\n")
    print("| pipeline | source | images/s |\n|---|---|---:|")
    for pipe, src, ips in rows:
        print(f"| {pipe} | {src} | {ips:.0f} |")
    for pipe in dict.fromkeys(r[0] for r in rows):
        raw, cached = (r[2] for r in rows if r[0] == pipe)
        print(f"\n{pipe}: cache / raw = {cached / raw:.1f}×")


if __name__ == "__main__":
    main()
