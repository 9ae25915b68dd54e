"""Which class-activation maps point at the defects: method × target × stages × mirror views, chosen on images the
test never sees (issue 22's Grad-CAM measurements; notebook 05 shows the chosen setting against the studies').

    RUNS_DIR=runs .venv/bin/python benchmarks/cam_choice.py [--splits train val] [--methods hirescam]

Reads the models a ``make run`` saved under ``RUNS_DIR`` (01's supervised classifier, 03's linear probe) and the
split notebook 00 wrote, and scores every setting's maps against the masks with the series' one localisation metric
(:func:`helpers.evaluation.localisation.score_maps`: pixel AUROC, AU-PRO, pointing game, each the mean over
categories), per split. Choose on ``train`` + ``val`` (on the built-in data ``val`` alone has 15 defective images,
one per category: settings a single image apart cannot be told apart); run ``--splits test`` only to report the
choice. Writes nothing.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.core import config
from helpers.evaluation.localisation import MEAN_ROW
from helpers.explain.gradcam import METHODS, TARGETS, VIEWS, CamSetting
from helpers.workflows import common, explain

STAGE_SETS = (("stride32",), ("stride16",), ("stride8",), ("stride8", "stride16"), ("stride16", "stride32"),
              ("stride4", "stride8", "stride16"))
VIEW_SETS = (("identity",), ("identity", "hflip"), VIEWS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--splits", nargs="+", default=["train", "val"])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--targets", nargs="+", default=list(TARGETS))
    p.add_argument("--views", type=int, nargs="+", default=[1, 3], help="1: the image alone, 2: + its horizontal "
                   "mirror, 3: + its vertical mirror")
    a = p.parse_args()
    cfg = config.get_config()
    prep = common.start_notebook(cfg)
    models, missing = explain.load_trained_models(cfg.runs_dir)
    print("\n".join(missing))
    rows = []
    for split in a.splits:
        frame = prep.frame(split)
        masks = explain.load_masks(prep, frame)
        for m in models:
            if m.kind.framework != "torch" or not m.kind.scored:
                continue
            batch = m.inputs(prep, frame)
            for method, target, stages, n in itertools.product(a.methods, a.targets, STAGE_SETS, a.views):
                setting = CamSetting(method, stages, target, VIEW_SETS[n - 1])
                t0 = time.time()
                maps = m.kind.gradcam(m.model, batch, setting)
                secs = time.time() - t0
                summary, _ = explain.localise({m.name: maps}, masks, frame)
                mean = summary[summary["category"] == MEAN_ROW].iloc[0]
                rows.append({"split": split, "defective": int(mean["n_defective"]), "model": m.name, "method": method,
                             "target": target, "stages": "+".join(s.removeprefix("stride") for s in stages),
                             "views": n, "pixel_auroc": mean["pixel_auroc"], "au_pro": mean["au_pro"],
                             "pointing": mean["pointing_game"],
                             "pointing 95%": f"[{mean['pointing_game_low']:.2f}, {mean['pointing_game_high']:.2f}]",
                             "seconds": round(secs, 1)})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_rows", 1000):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
