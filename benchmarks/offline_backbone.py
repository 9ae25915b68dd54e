"""What each approach learns offline on the stand-in backbone, against its shuffled-label control, over training
seeds (issues 22 and 23's measurements).

    .venv/bin/python benchmarks/offline_backbone.py [--seeds 3] [--data DIR] [--profile quick] [--keras]

Prepares the data (default: the built-in data exactly as ``make run`` generates it; ``--data``: an MVTec AD tree,
e.g. ``../shared/mvtec_sample``) in a temporary folder and runs the notebooks' own code at the profile's recipe with
``BACKBONE="auto"`` (offline: EfficientNet-Lite0):

- the supervised classifier (01) at each training seed, and once with shuffled training labels;
- SimCLR (02) once, then the linear probe (03) at each seed and once with shuffled labels, and kNN (no labels);
- PatchCore (06, no labels); the Keras CNN (04) with ``--keras`` (real, and with shuffled defect labels).

Each test AUROC is printed with its bootstrap 95% interval (test images resampled) and the seeds' spread beside
it: two different uncertainties. Prints Markdown rows for docs/benchmarks.md. Nothing is written outside the
temporary folder.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.core import config
from helpers.data import prepare
from helpers.evaluation import intervals as I


def _auc(frame) -> I.Interval:
    return I.image_intervals(frame)["roc_auc"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data", default=None, help="an MVTec AD tree (default: the built-in data)")
    p.add_argument("--profile", default="quick")
    p.add_argument("--keras", action="store_true", help="also the Keras multi-task CNN (real and shuffled)")
    a = p.parse_args()
    rows: list[tuple[str, str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config.get_config(a.profile, data_dir=a.data, runs_dir=Path(tmp) / "runs")
        prep = prepare.prepare(cfg, progress=False)
        print(prepare.describe_source(prep.source), prep.split["split"].value_counts().to_dict())
        from helpers.models import backbones
        from helpers.workflows import oneclass, probe, simclr, supervised

        choice, _ = backbones.resolve("auto", "resnet50")
        print("backbone:", choice.describe())

        def timed(name: str, seed: str, fn, test_of) -> None:
            t0 = time.time()
            out = fn()
            rows.append((name, seed, str(_auc(test_of(out))), time.time() - t0))
            print(rows[-1], flush=True)

        for s in range(a.seeds):
            timed("supervised (01)", str(cfg.seed + s), lambda s=s: supervised.run(
                prep, backbone=choice, write=False, progress=False, seed=cfg.seed + s), lambda r: r.split_scores("test"))
        timed("supervised (01)", "shuffled labels", lambda: supervised.run(
            prep, backbone=choice, write=False, progress=False, shuffled_labels=True), lambda r: r.split_scores("test"))
        sim = simclr.run(prep, backbone=choice, progress=False)
        encoder, meta = simclr.load_encoder(cfg.runs_dir)
        knn = None
        for s in range(a.seeds):
            t0 = time.time()
            run = probe.run(prep, encoder, write=False, progress=False, seed=cfg.seed + s)
            rows.append(("probe (03)", str(cfg.seed + s), str(_auc(run.split_scores("test"))), time.time() - t0))
            print(rows[-1], flush=True)
            knn = run.knn
        timed("probe (03)", "shuffled labels", lambda: probe.run(prep, encoder, write=False, progress=False,
                                                                 shuffled_labels=True), lambda r: r.split_scores("test"))
        for k, v in (knn or {}).items():
            test = v["scores"][v["scores"]["split"] == "test"]
            rows.append((f"kNN k={k} (03, no defect labels)", "—", str(_auc(test)), 0.0))
        timed("PatchCore (06, no defect labels)", "—", lambda: oneclass.write_shared(
            prep, oneclass.run_protocol(prep, "shared-split", progress=False), None, time.time()),
            lambda r: r.split_scores("test"))
        if a.keras:
            from helpers.workflows import multitask

            for shuffled in (False, True):
                timed("Keras multi-task (04)", "shuffled labels" if shuffled else str(cfg.seed), lambda sh=shuffled:
                      multitask.run(prep, out_dir=Path(tmp) / f"keras{sh}", write_metrics=False, verbose=0,
                                    shuffled_defect=sh), lambda r: r.split_scores("test"))
        del sim, meta
    print("\n| approach | seed | test AUROC [95% bootstrap interval] | time |\n|---|---|---|---:|")
    for name, seed, auc, secs in rows:
        print(f"| {name} | {seed} | {auc} | {secs:.0f} s |")
    for name in ("supervised (01)", "probe (03)"):
        vals = [float(r[2].split()[0]) for r in rows if r[0] == name and r[1][0].isdigit()]
        if vals:
            print(f"{name}: seeds {len(vals)}, mean {np.mean(vals):.3f}, range {min(vals):.3f}–{max(vals):.3f}")


if __name__ == "__main__":
    main()
