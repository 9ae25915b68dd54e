"""Inference cost of every exported model: framework eager vs onnxruntime fp32 vs onnxruntime INT8.

    python benchmarks/deploy_latency.py --runs runs [--repeats 30] [--threads 2]

For each model folder under RUNS_DIR that has a model card (notebooks 01, 03, 04 and 06; run ``make run`` first), it
exports ONNX and INT8 when they are missing, scores the folder's own test images on each backend (test AUROC,
decisions changed), and times scoring one preprocessed batch at batch 1 and 32 — each backend in its own
process, so that its peak memory (max RSS) is its own. Everything is measured in one run, so the ratios hold;
the absolute numbers are this machine's. Prints a Markdown table for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(folder: str, backend: str, repeats: int, threads: int) -> None:
    """Child process: time one backend, print its rows and its peak memory as JSON."""
    import dataclasses

    from helpers.artefacts.card import read_card
    from helpers.deploy import checks, latency

    if read_card(folder).framework == "keras":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
    images, _ = checks.run_images(folder, "test")
    rows = [dataclasses.asdict(r) for r in latency.latency(folder, backend, images[:32], batch_sizes=(1, 32),
                                                             repeats=repeats, warmup=3, threads=threads)]
    # VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's over fork + exec)
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next((int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")), float("nan"))
    print(json.dumps({"rows": rows, "peak_rss_mib": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs", help="RUNS_DIR of a finished run (default: runs)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="torch, TensorFlow and onnxruntime threads (default 2)")
    parser.add_argument("--one", nargs=2, metavar=("FOLDER", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(*args.one, args.repeats, args.threads)

    from helpers.artefacts.card import read_card
    from helpers.core import layout
    from helpers.deploy import checks, export, inferencers, latency
    from helpers.workflows.deployment import model_folders

    folders, missing = model_folders(args.runs)
    if not folders:
        sys.exit("no model folders under " + args.runs + ": " + "; ".join(missing))
    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} threads; repeats {args.repeats}\n")
    print("| model | backend | test AUROC | Δ AUROC vs eager | decisions changed | size MiB | batch 1 p50 / p95 ms | "
          "batch 1 img/s | batch 32 p50 / p95 ms | batch 32 img/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for stem, folder in folders.items():
        card = read_card(folder)
        if card.onnx is None or not (folder / layout.ONNX).exists():
            export.export_onnx(folder)
            card = read_card(folder)
        if card.int8 is None or not (folder / layout.ONNX_INT8).exists():
            export.quantize_int8(folder)
        quality = {b: checks.evaluate(folder, b) for b in inferencers.BACKENDS}
        sizes = latency.file_sizes(folder)
        for backend in ("framework", "onnx", "onnx-int8"):
            out = subprocess.run([sys.executable, __file__, "--one", str(folder), backend, "--repeats",
                                  str(args.repeats), "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            b1, b32 = result["rows"]
            q, eager = quality[backend], quality["framework"]
            name = f"eager ({card.framework})" if backend == "framework" else backend
            print(f"| {stem} | {name} | {q.roc_auc:.4f} | {q.roc_auc - eager.roc_auc:+.4f} | "
                  f"{int((q.decisions != eager.decisions).sum())} / {q.n} | {sizes[backend]:.1f} | "
                  f"{b1['p50_ms']:.1f} / {b1['p95_ms']:.1f} | {b1['images_per_s']:.1f} | "
                  f"{b32['p50_ms']:.0f} / {b32['p95_ms']:.0f} | {b32['images_per_s']:.1f} | "
                  f"{result['peak_rss_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
