"""Do the recipes learn the built-in data from random weights within a CPU budget? (issue 13's measurements)

    .venv/bin/python benchmarks/builtin_learning.py supervised [--categories bottle hazelnut ...] [--size 64]
        [--n-train-good 40 --n-test-good 10 --n-per-defect 8] [--epoch-scale 0.2] [--batch 16] [--max-lr 1e-3]
    .venv/bin/python benchmarks/builtin_learning.py keras --epochs 20 [--difficulty uniform --defect-scale 4]

Generates built-in data (default: the built-in settings, ``helpers.core.config.BUILTIN_DATASET``) in a temporary
folder, prepares it with the shared split, and runs the notebook's own training code (``supervised.run`` from
random weights, as offline; ``multitask.run``) at the quick profile's size unless told otherwise. Prints the
recipe used (every change from the quick profile's recipe is listed as a deviation), the training history and
the test AUROC, pooled and per category. Nothing is written outside the temporary folder.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.core import config
from helpers.data import prepare, synthetic
from helpers.training.recipes import KerasRecipe, SupervisedRecipe, scaled


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=["supervised", "keras"])
    p.add_argument("--categories", nargs="+", default=None, help="default: all 15")
    p.add_argument("--size", type=int, default=None, help="input px (default: the quick profile's)")
    for name in ("n_train_good", "n_test_good", "n_per_defect"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=config.BUILTIN_DATASET[name])
    p.add_argument("--difficulty", default="mixed", choices=["mixed", "uniform"])
    p.add_argument("--defect-scale", type=float, default=1.0)
    p.add_argument("--epoch-scale", type=float, default=None, help="default: the quick profile's")
    p.add_argument("--epochs", type=int, default=None, help="epochs, overriding --epoch-scale")
    p.add_argument("--batch", type=int, default=None, help="DEVIATION from the recipe's batch size")
    p.add_argument("--max-lr", type=float, default=None, help="DEVIATION from the recipe's max_lr (supervised)")
    a = p.parse_args()

    quick = config.get_profile("quick")
    changes = {k: v for k, v in (("image_size", a.size), ("tf_image_size", a.size), ("epoch_scale", a.epoch_scale))
               if v is not None}
    spec = synthetic.SyntheticSpec(**{**config.BUILTIN_DATASET, "n_train_good": a.n_train_good,
                                      "n_test_good": a.n_test_good, "n_per_defect": a.n_per_defect},
                                   defect_scale=a.defect_scale, difficulty=a.difficulty,
                                   **({"categories": tuple(a.categories)} if a.categories else {}))
    with tempfile.TemporaryDirectory() as tmp:
        root = synthetic.generate_dataset(Path(tmp) / "mvtec", spec, progress=False)
        cfg = config.with_profile(config.get_config("quick", data_dir=root, runs_dir=Path(tmp) / "runs"), **changes)
        prep = prepare.prepare(cfg, progress=False)
        print(f"data: {spec}\nsplit: {prep.split['split'].value_counts().to_dict()}")
        base = scaled(SupervisedRecipe() if a.model == "supervised" else KerasRecipe(), quick)
        recipe = scaled(type(base)(), cfg.profile)
        recipe = replace(recipe, **{k: v for k, v in (("epochs", a.epochs), ("batch_size", a.batch),
                                                      ("max_lr", a.max_lr)) if v is not None})
        quick_values = asdict(base)
        deviations = {k: (quick_values[k], v) for k, v in asdict(recipe).items() if quick_values[k] != v}
        print(f"recipe: {recipe}\nchanged from the quick profile's recipe (quick -> here): {deviations or 'none'}")
        t0 = time.time()
        if a.model == "supervised":
            from helpers.workflows import supervised
            run = supervised.run(prep, recipe, backbone="resnet50:random", write=False, progress=False)
        else:
            from helpers.workflows import multitask
            run = multitask.run(prep, recipe, out_dir=Path(tmp) / "keras", write_metrics=False, verbose=0)
        print(run.history.round(3).to_string())
        print(f"\ntest AUROC {run.test_metrics['roc_auc']:.3f}, F1 {run.test_metrics['f1']:.3f} "
              f"({len(run.history)} epochs, {time.time() - t0:.0f} s)")
        print(run.per_category[["category", "auroc"]].round(2).set_index("category").T.to_string())


if __name__ == "__main__":
    main()
