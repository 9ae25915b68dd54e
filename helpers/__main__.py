"""Command line: ``python -m helpers prepare|run-notebooks``.

- ``prepare --data DIR --runs DIR``: notebook 00's steps; writes manifest.csv, split.csv,
  quarantine.csv, warnings.csv, dataset.json and the cache under RUNS_DIR; prints a summary.
  Exits non-zero only when nothing usable was found.
- ``oneclass --data DIR --runs DIR [--categories ...]``: PatchCore (notebook 06) under both protocols;
  writes notebook 06's ``metrics.json``, ``scores.csv`` and the per-category tables.
- ``run-notebooks``: executes every notebook in ``notebooks/`` in order (papermill) into
  ``RUNS_DIR/executed/``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["NOTEBOOK_DIR", "main"]

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def _prepare(args: argparse.Namespace) -> int:
    from .config import get_config
    from .data import DatasetLayoutError
    from .prepare import describe_source, prepare

    cfg = get_config(profile=args.profile, data_dir=args.data, runs_dir=args.runs)
    try:
        prepared = prepare(cfg, cache_sizes=tuple(args.size) if args.size else None)
    except DatasetLayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(describe_source(prepared.source))
    print(f"manifest:   {len(prepared.manifest)} images -> {cfg.runs_dir / 'manifest.csv'}")
    print(f"split:      {prepared.split['split'].value_counts().to_dict()} -> {cfg.runs_dir / 'split.csv'}")
    print(f"quarantine: {len(prepared.quarantine)} files -> {cfg.runs_dir / 'quarantine.csv'}")
    for _, row in prepared.quarantine.head(20).iterrows():
        print(f"    {row['path']}: {row['reason']}")
    print(f"warnings:   {len(prepared.warnings)} -> {cfg.runs_dir / 'warnings.csv'}")
    return 0


def _oneclass(args: argparse.Namespace) -> int:
    from . import oneclass
    from .config import get_config
    from .data import DatasetLayoutError
    from .patchcore import load_backbone
    from .prepare import describe_source, prepare
    from .recipes import PatchCoreRecipe, scaled

    started = time.time()
    cfg = get_config(profile=args.profile, data_dir=args.data, runs_dir=args.runs)
    try:
        prepared = prepare(cfg, progress=False)
    except DatasetLayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(describe_source(prepared.source))
    recipe = scaled(PatchCoreRecipe(coreset_fraction=args.coreset), cfg.profile)
    backbone = load_backbone(recipe.backbone)
    print(f"backbone: {backbone.name}\nrecipe: {recipe}")
    try:
        standard = oneclass.run_protocol(prepared, "mvtec-standard", recipe, args.categories, backbone)
        shared = oneclass.run_protocol(prepared, "shared-split", recipe, args.categories, backbone)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run = oneclass.write_shared(prepared, shared, standard, started)
    cols = ["category", "n_fit", "n_scored", "image_auroc", "pixel_auroc", "bank", "fit_s", "score_s"]
    for title, result in (("MVTec standard protocol", standard), ("Shared split (test)", shared)):
        table = result.per_category[[c for c in cols if c in result.per_category]]
        print(f"\n{title}:\n" + table.round(3).to_string(index=False))
    print(f"\nshared split, all categories: ROC-AUC {run.test_metrics['roc_auc']:.3f}, F1 {run.test_metrics['f1']:.3f} "
          f"at threshold {run.threshold:.3f} (chosen on val)\nwritten: {run.out_dir / 'metrics.json'}")
    return 0


def _run_notebooks(args: argparse.Namespace) -> int:
    import papermill as pm

    from .runs import EXECUTED_DIR, REPORT_DIR

    runs = Path(args.runs or os.environ.get("RUNS_DIR") or "runs").resolve()
    out_dir = runs / EXECUTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(o) for o in args.only)]
    env_note = (f"profile={os.environ.get('DEFECTS_PROFILE') or 'default'}, "
                f"MVTEC_DIR={os.environ.get('MVTEC_DIR') or '(built-in sample data)'}, RUNS_DIR={runs}")
    print(f"Running {len(notebooks)} notebooks ({env_note})")
    os.environ["RUNS_DIR"] = str(runs)
    os.environ["DEFECTS_HEADLESS"] = "1"  # widgets → static figures (see helpers.viz.widgets_wanted)
    for nb in notebooks:
        t0 = time.time()
        print(f"==> {nb.name}", flush=True)
        pm.execute_notebook(str(nb), str(out_dir / nb.name), cwd=str(NOTEBOOK_DIR), kernel_name="python3",
                            progress_bar=False, log_output=False)
        print(f"    done in {time.time() - t0:.0f}s -> {out_dir / nb.name}", flush=True)
    report = runs / REPORT_DIR / "comparison.md"
    if any(nb.name.startswith("07") for nb in notebooks) and report.exists():
        print("\n" + report.read_text())
    print(f"\nResults are under {runs}: executed notebooks in {out_dir}, "
          "metrics.json per notebook, manifest.csv/split.csv/quarantine.csv at the top.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="scan, validate, split and cache the dataset")
    p.add_argument("--data", help="MVTec AD root (default: MVTEC_DIR, known places, else built-in data)")
    p.add_argument("--runs", help="output folder (default: RUNS_DIR or ./runs)")
    p.add_argument("--profile", help="full | quick | smoke (default: DEFECTS_PROFILE)")
    p.add_argument("--size", type=int, nargs="*", help="cache sizes in px (default: the profile's)")
    p.set_defaults(func=_prepare)
    o = sub.add_parser("oneclass", help="PatchCore one-class baseline under both protocols (notebook 06)")
    o.add_argument("--data", help="MVTec AD root (default: MVTEC_DIR, known places, else built-in data)")
    o.add_argument("--runs", help="output folder (default: RUNS_DIR or ./runs)")
    o.add_argument("--profile", help="full | quick | smoke (default: DEFECTS_PROFILE)")
    o.add_argument("--categories", nargs="*", help="categories to run (default: all)")
    o.add_argument("--coreset", type=float, default=0.1, help="coreset fraction (default 0.1; the paper also uses 0.01)")
    o.set_defaults(func=_oneclass)
    r = sub.add_parser("run-notebooks", help="execute every notebook in order into RUNS_DIR/executed")
    r.add_argument("--runs", help="output folder (default: RUNS_DIR or ./runs)")
    r.add_argument("--only", nargs="*", help="notebook number prefixes to run, e.g. 00 01")
    r.set_defaults(func=_run_notebooks)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
