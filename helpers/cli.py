"""Command line: ``python -m helpers prepare|oneclass|train|labels|export|predict|serve|run-notebooks``.

- ``prepare --data DIR --runs DIR``: notebook 00's steps; writes manifest.csv, split.csv,
  quarantine.csv, warnings.csv, dataset.json and the cache under RUNS_DIR; prints a summary.
  Exits non-zero only when nothing usable was found.
- ``oneclass --data DIR --runs DIR [--categories ...]``: PatchCore (notebook 06) under both protocols;
  writes notebook 06's ``metrics.json``, ``scores.csv`` and the per-category tables.
- ``train supervised|simclr|probe|multitask``: a model notebook's training and scoring (01, 02, 03, 04), writing
  what the notebook writes. The torch ones also run under ``torchrun --nproc_per_node N`` (one process per
  GPU: DistributedDataParallel, each global batch split over the processes, rank 0 writes); ``multitask --mirrored``
  uses tf.distribute.MirroredStrategy over every GPU of the machine.
- ``labels``: notebook 09, how many labels: the supervised classifier and the probe on nested label budgets, several
  seeds each, against kNN and PatchCore (needs notebooks 01, 02, 03 and 06's outputs); prints the plan with its
  estimated time before it starts, then the answer in words.
- ``export --model DIR [--int8]``: writes ``model.onnx`` into a model folder (a model notebook's) and checks it against the
  framework on the folder's own test images (max |Δ| and decisions at the card's threshold); ``--int8`` adds
  ``model.int8.onnx`` (calibrated on val good images) and prints the test AUROC change.
- ``predict --model DIR IMAGES_OR_FOLDERS... --out predictions.csv [--backend onnx|onnx-int8|framework]
  [--heatmaps DIR] [--category C]``: one row per file (path, category when the path names one, score, decision at
  the stored threshold, the overlay written, and why a file was not scored). ``--heatmaps``: PatchCore's anomaly
  map or the classifiers' Grad-CAM over each image. Exits 1 only when nothing could be scored.
- ``serve --model DIR [--host 127.0.0.1] [--port N] [--share] [--backend auto|onnx|framework]``: the inspector page
  (Gradio): drop images, see each one's score, decision, predicted category and map, a threshold slider, and the model
  card in words. Scores with ``predict``'s code. Listens on 127.0.0.1 unless told otherwise; a public link only
  with ``--share``.
- ``run-notebooks``: executes every notebook in ``notebooks/`` in order (papermill) into
  ``RUNS_DIR/executed/``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from .core import layout
from .errors import UserError

__all__ = ["NOTEBOOK_DIR", "main"]

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def _prepare(args: argparse.Namespace) -> int:
    from .core.config import get_config
    from .data.prepare import describe_source, prepare

    cfg = get_config(profile=args.profile, data_dir=args.data, runs_dir=args.runs)
    prepared = prepare(cfg, cache_sizes=tuple(args.size) if args.size else None)
    print(describe_source(prepared.source))
    print(f"manifest:   {len(prepared.manifest)} images -> {cfg.runs_dir / layout.MANIFEST}")
    print(f"split:      {prepared.split['split'].value_counts().to_dict()} -> {cfg.runs_dir / layout.SPLIT}")
    print(f"quarantine: {len(prepared.quarantine)} files -> {cfg.runs_dir / layout.QUARANTINE}")
    for _, row in prepared.quarantine.head(20).iterrows():
        print(f"    {row['path']}: {row['reason']}")
    print(f"warnings:   {len(prepared.warnings)} -> {cfg.runs_dir / layout.WARNINGS}")
    return 0


def _oneclass(args: argparse.Namespace) -> int:
    from .core.config import get_config
    from .data.prepare import describe_source, prepare
    from .models.patchcore import load_features
    from .training.recipes import PatchCoreRecipe, scaled
    from .workflows import oneclass

    started = time.time()
    cfg = get_config(profile=args.profile, data_dir=args.data, runs_dir=args.runs)
    prepared = prepare(cfg, progress=False)
    print(describe_source(prepared.source))
    recipe = scaled(PatchCoreRecipe(coreset_fraction=args.coreset), cfg.profile)
    features = load_features(args.backbone, recipe.backbone)
    print(f"backbone: {features.name}\nrecipe: {recipe}")
    try:
        standard = oneclass.run_protocol(prepared, "mvtec-standard", recipe, args.categories, features)
        shared = oneclass.run_protocol(prepared, "shared-split", recipe, args.categories, features)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run = oneclass.write_shared(prepared, shared, standard, started)
    cols = ["category", "n_fit", "n_scored", "image_auroc", "pixel_auroc", "bank", "fit_s", "score_s"]
    for title, result in (("MVTec standard protocol", standard), ("Shared split (test)", shared)):
        table = result.per_category[[c for c in cols if c in result.per_category]]
        print(f"\n{title}:\n" + table.round(3).to_string(index=False))
    print(f"\nshared split, all categories: ROC-AUC {run.test_metrics['roc_auc']:.3f}, F1 {run.test_metrics['f1']:.3f} "
          f"at threshold {run.threshold:.3f} (chosen on val)\nwritten: {run.out_dir / layout.METRICS}")
    return 0


def _run_notebooks(args: argparse.Namespace) -> int:
    import papermill as pm


    runs = Path(args.runs or os.environ.get("RUNS_DIR") or "runs").resolve()
    out_dir = runs / layout.EXECUTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    # the report (07) last: it reads every other notebook's results, 09's answer included
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"), key=lambda nb: (nb.name.startswith("07"), nb.name))
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
    report = runs / layout.REPORT_DIR / layout.COMPARISON_MD
    if any(nb.name.startswith("07") for nb in notebooks) and report.exists():
        print("\n" + report.read_text())
    print(f"\nResults are under {runs}: executed notebooks in {out_dir}, "
          "metrics.json per notebook, manifest.csv/split.csv/quarantine.csv at the top.")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .core import distributed
    from .core.config import get_config
    from .data.prepare import load_prepared
    from .models import kinds
    from .workflows import commands

    several = distributed.init_from_env()
    if several and kinds.get(args.model).framework != "torch":
        raise SystemExit(f"error: the {kinds.get(args.model).title} does not run under torchrun; run it as one process "
                         f"(`python -m helpers train {args.model}`).")
    try:
        cfg = get_config(profile=args.profile, data_dir=args.data, runs_dir=args.runs)
        prepared = load_prepared(cfg)
        summary = commands.train(args.model, prepared, distributed.is_main(), mirrored=args.mirrored,
                                 backbone=args.backbone)
        if distributed.is_main():
            size = distributed.world()[1]
            print(f"{summary} ({size} process{'es' if size > 1 else ''})")
    finally:
        distributed.cleanup()
    return 0


def _labels(args: argparse.Namespace) -> int:
    from .core.config import get_config
    from .data.prepare import load_prepared
    from .models import backbones
    from .training.recipes import LabelBudgetRecipe, scaled
    from .workflows import labels

    started = time.time()
    cfg = get_config(profile=args.profile, data_dir=args.data, runs_dir=args.runs)
    prepared = load_prepared(cfg)
    recipe = scaled(LabelBudgetRecipe(), cfg.profile)
    todo = labels.plan(prepared, recipe)
    seconds, measured = labels.estimate_seconds(prepared, todo)
    print(f"{len(todo)} fits; the supervised ones estimated at {seconds / 60:.1f} min ({measured})")
    choice, _ = backbones.resolve(args.backbone, "resnet50")
    result = labels.run(prepared, recipe, backbone=choice, progress=True)
    labels.write_outputs(prepared, result, started)
    print("\n".join(result.summary["in words"]) or "no reference to compare with: run notebooks 03 and 06 first")
    print(f"written: {layout.artefact(cfg.runs_dir, layout.LABELS, layout.LABEL_RUNS)}")
    return 0


def _int8(folder: Path) -> None:
    from .deploy.checks import record_int8_quality
    from .deploy.export import quantize_int8

    path = quantize_int8(folder)
    q = record_int8_quality(folder)
    auroc = "undefined (one class)" if q.change is None else \
        f"fp32 {q.test_roc_auc_fp32:.4f} -> int8 {q.test_roc_auc_int8:.4f} ({q.change:+.4f})"
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB); test AUROC {auroc}, decisions changed on "
          f"{q.decisions_changed} of {q.test_images} test images")
    if q.within_budget is False:
        print(f"INT8 loses more than {q.budget} test AUROC here: deploy {layout.ONNX} (--backend onnx) instead. "
              "(Recorded in the card's int8.quality.)", file=sys.stderr)


def _export(args: argparse.Namespace) -> int:
    from .deploy.checks import parity, run_images
    from .deploy.export import export_onnx
    from .errors import ModelFolderError

    folder = Path(args.model)
    path = export_onnx(folder)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    try:
        images, _ = run_images(folder, "test")
    except ModelFolderError as err:
        print(f"parity not checked: {err}")
        if args.int8:   # calibration needs the run's val images: say it was not done, and fail
            print("INT8 not made: it is calibrated on the run's good val images, which are not here either.",
                  file=sys.stderr)
            return 1
        return 0
    check = parity(folder, images[:: max(1, len(images) // max(1, args.check))][: args.check])   # spread over categories
    maps = f", anomaly maps {check.map_max_abs_diff:.2e} (largest |map| {check.map_scale:.3g})" if check.map_scale else ""
    print(f"parity on {check.n} test images: max |onnx - framework| = {check.max_abs_diff:.2e}{maps}, "
          f"same decisions: {check.same_decisions}" + ("" if check.ok else " -- PARITY FAILED"))
    if args.int8:
        _int8(folder)
    return 0 if check.ok else 1


def _predict(args: argparse.Namespace) -> int:
    from .core import files
    from .deploy.predict import predict

    table = predict(args.model, args.inputs, backend=args.backend, batch_size=args.batch_size, progress=True,
                    heatmaps=args.heatmaps, category=args.category)
    files.write_csv(table, args.out, index=False)
    scored, skipped = table[table["problem"] == ""], table[table["problem"] != ""]
    print(f"scored {len(scored)} image(s), {int((scored['decision'] == 'defective').sum())} defective at the "
          f"stored threshold -> {args.out}" + (f"; overlays in {args.heatmaps}" if args.heatmaps else ""))
    for row in skipped.itertuples():
        print(f"not scored: {row.path}: {row.problem}", file=sys.stderr)
    return 0 if len(scored) else 1


def _serve(args: argparse.Namespace) -> int:
    from .deploy.serve import launch

    if args.share:
        print("--share: Gradio makes a public link to this page; anyone with it can upload images to this machine.")
    launch(args.model, host=args.host, port=args.port, share=args.share, backend=args.backend)
    return 0


def _backbone_help() -> str:
    from .models.backbones import BACKBONES

    return ("auto (default: the study's network with ImageNet weights, downloaded or in torch's hub cache; offline, "
            f"loudly, EfficientNet-Lite0), a network's name ({', '.join(BACKBONES)}), or NAME:random")


def _deploy_commands(sub: Any) -> None:
    """The commands that use a model folder: export, predict, serve."""
    from .models.kinds import deployable_notebooks

    SUPERVISED, folders = layout.SUPERVISED, deployable_notebooks()
    e = sub.add_parser("export", help=f"ONNX export of a model folder ({folders}) with a parity check")
    e.add_argument("--model", required=True, help=f"a model notebook's folder ({folders}), e.g. runs/{SUPERVISED}")
    e.add_argument("--check", type=int, default=64, help="test images for the parity check (default 64)")
    e.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx (static quantisation calibrated on the val good images)")
    e.set_defaults(func=_export)
    d = sub.add_parser("predict", help="score image files and folders with a model folder")
    d.add_argument("--model", required=True, help=f"a model notebook's folder ({folders}), e.g. runs/{SUPERVISED}")
    d.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    d.add_argument("--out", default="predictions.csv", help="CSV to write (default predictions.csv)")
    d.add_argument("--backend", choices=["onnx", "onnx-int8", "framework"], default="onnx",
                   help="onnx (needs `export` first; default), onnx-int8 (`export --int8`) or framework (torch/Keras)")
    d.add_argument("--batch-size", type=int, default=32)
    d.add_argument("--heatmaps", metavar="DIR", help="write an overlay PNG per scored image into DIR: PatchCore's "
                                                     "anomaly map, or Grad-CAM toward 'defective' for the classifiers")
    d.add_argument("--category", help="PatchCore: the category of every input (default: from each path's folders)")
    d.set_defaults(func=_predict)
    s = sub.add_parser("serve", help="the inspector page: a model folder in the browser (Gradio)")
    s.add_argument("--model", required=True, help=f"a model notebook's folder ({folders}), e.g. runs/{SUPERVISED}")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=None, help="port (default: Gradio's first free one from 7860)")
    s.add_argument("--share", action="store_true", help="also a public Gradio link (off unless asked)")
    s.add_argument("--backend", choices=["auto", "onnx", "onnx-int8", "framework"], default="auto",
                   help="auto (default): ONNX when the folder was exported, else the framework")
    s.set_defaults(func=_serve)


def main(argv: list[str] | None = None) -> int:
    from .workflows.commands import trainable

    trainable_kinds = trainable()

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
    o.add_argument("--backbone", default="auto", help=_backbone_help())
    o.set_defaults(func=_oneclass)
    t = sub.add_parser("train", help="a model notebook's training as a command (torch ones also under torchrun)")
    t.add_argument("model", choices=trainable_kinds, help="the kind of model to train: " + ", ".join(trainable_kinds))
    t.add_argument("--data", help="MVTec AD root (default: what notebook 00 prepared under RUNS_DIR)")
    t.add_argument("--runs", help="output folder (default: RUNS_DIR or ./runs)")
    t.add_argument("--profile", help="full | quick | smoke (default: DEFECTS_PROFILE)")
    t.add_argument("--backbone", default="auto", help=_backbone_help() + " (supervised and simclr; the probe uses 02's)")
    t.add_argument("--mirrored", action="store_true",
                   help="multitask: tf.distribute.MirroredStrategy over every GPU (each batch split over them)")
    t.set_defaults(func=_train)
    lb = sub.add_parser("labels", help="how many labels: supervised and probe on nested label budgets (notebook 09)")
    lb.add_argument("--data", help="MVTec AD root (default: what notebook 00 prepared under RUNS_DIR)")
    lb.add_argument("--runs", help="output folder (default: RUNS_DIR or ./runs)")
    lb.add_argument("--profile", help="full | quick | smoke (default: DEFECTS_PROFILE)")
    lb.add_argument("--backbone", default="auto", help=_backbone_help() + " (the supervised model's; the probe uses 02's)")
    lb.set_defaults(func=_labels)
    _deploy_commands(sub)
    r = sub.add_parser("run-notebooks", help="execute every notebook in order into RUNS_DIR/executed")
    r.add_argument("--runs", help="output folder (default: RUNS_DIR or ./runs)")
    r.add_argument("--only", nargs="*", help="notebook number prefixes to run, e.g. 00 01")
    r.set_defaults(func=_run_notebooks)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:   # a message written for the user: no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
