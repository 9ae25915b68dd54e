"""PatchCore fit + score time and peak memory for one category at full size (256 → 224 px).

MVTec AD is not available offline, so the category is generated with MVTec bottle's counts: 209 good
training images, 83 test images (20 good, 63 defective), rendered at 256 px. Each configuration runs in
its own process so that its peak resident memory (ru_maxrss) is its own.

Usage: .venv/bin/python benchmarks/patchcore_cpu.py [--coreset 0.1 0.01] [--category bottle]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(coreset: float, category: str, n_train: int, n_good: int, n_bad: int) -> dict:
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from helpers.core.env import cpu_threads
    from helpers.data import preprocessing
    from helpers.data.synthetic import DEFECTS, render_image
    from helpers.models import kinds
    from helpers.models import patchcore as pc

    torch.set_num_threads(cpu_threads())
    defects = list(DEFECTS[category])
    train = [render_image(category, np.random.default_rng([1, i]), 256)[0] for i in range(n_train)]
    test = [render_image(category, np.random.default_rng([2, i]), 256)[0] for i in range(n_good)]
    bad = [render_image(category, np.random.default_rng([3, i]), 256, defect=defects[i % len(defects)], difficulty="uniform")
           for i in range(n_bad)]
    rgb = lambda a: np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a  # noqa: E731
    spec = kinds.PATCHCORE.input_spec(224, resize=256)       # the recipe's 256 → 224, the one preprocessing
    x01 = lambda images: torch.from_numpy(preprocessing.batch(spec, [rgb(x) for x in images]))  # noqa: E731
    model = pc.PatchCore(pc.PatchFeatures("efficientnet_lite0"), [category], coreset_fraction=coreset)
    t0 = time.time()
    info = model.fit(category, x01(train))
    fit_s = time.time() - t0
    t0 = time.time()
    scores, maps = model.raw_scores(x01(test + [b[0] for b in bad]), category)
    score_s = time.time() - t0
    y = [0] * n_good + [1] * n_bad
    masks = preprocessing.crop_masks(spec, [np.zeros((256, 256), bool)] * n_good + [b[1] for b in bad])
    return {"coreset": coreset, "category": category, "train_images": n_train, "test_images": n_good + n_bad,
            "patches": info["patches"], "bank": info["bank"], "fit_s": round(fit_s, 1),
            "score_s": round(score_s, 1), "ms_per_test_image": round(1000 * score_s / (n_good + n_bad), 1),
            "image_auroc": round(float(roc_auc_score(y, scores)), 4),
            "pixel_auroc": round(float(roc_auc_score(masks.ravel(), maps.ravel())), 4),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coreset", type=float, nargs="*", default=[0.1, 0.01])
    p.add_argument("--category", default="bottle")
    p.add_argument("--train", type=int, default=209)
    p.add_argument("--good", type=int, default=20)
    p.add_argument("--bad", type=int, default=63)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.coreset[0], a.category, a.train, a.good, a.bad)))
        return
    for c in a.coreset:
        out = subprocess.run([sys.executable, __file__, "--one", "--coreset", str(c), "--category", a.category,
                              "--train", str(a.train), "--good", str(a.good), "--bad", str(a.bad)],
                             capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
