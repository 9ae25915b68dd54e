"""How a non-square photo should become the networks' square input: squash (the series' choice) vs letterbox.

Data: the generated product (:mod:`helpers.data.product`: grayscale JPEG strips, 2:1 to 3:1, every image its own
size, half the defects within the outer 12% of the part — where a centre crop would cut them off, so cropping is
not a candidate). Method: PatchCore on the series' own split (``python -m helpers prepare`` then ``oneclass``,
the quick profile's 128 px, offline EfficientNet-Lite0 features), once per fit, each in a fresh RUNS_DIR. Prints
test image AUROC and pixel AUROC with their 95% intervals for both.

Usage: .venv/bin/python benchmarks/aspect_fit.py [--good 100] [--per-defect 20] [--seed 7]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Run in a child process: the letterbox variant (aspect ratio kept, padded with black to the square) replaces the
#: one resize every path goes through (images and masks alike).
LETTERBOX = """
import sys
import numpy as np
from PIL import Image
from helpers.data import cache
def letterbox(arr, size, resample=Image.Resampling.BILINEAR):
    img = Image.fromarray(arr)
    if img.size == (size, size):
        return np.asarray(img)
    scale = size / max(img.size)
    w, h = max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))
    canvas = Image.new(img.mode, (size, size), 0)
    canvas.paste(img.resize((w, h), resample), ((size - w) // 2, (size - h) // 2))
    return np.asarray(canvas)
cache._resize = letterbox
from helpers.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run(fit: str, data: Path, runs: Path) -> dict:
    env = {**os.environ, "DEFECTS_PROFILE": "quick", "RUNS_DIR": str(runs)}
    entry = ["-c", LETTERBOX] if fit == "letterbox" else ["-m", "helpers"]
    for args in (["prepare", "--data", str(data), "--runs", str(runs)],
                 ["oneclass", "--data", str(data), "--runs", str(runs)]):
        subprocess.run([sys.executable, *entry, *args], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    m = json.loads((runs / "06_patchcore_one_class" / "metrics.json").read_text())
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--good", type=int, default=100)
    ap.add_argument("--per-defect", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    from helpers.data.product import ProductSpec, generate_product

    with tempfile.TemporaryDirectory() as tmp:
        data = generate_product(Path(tmp) / "data", ProductSpec(n_good=args.good, n_per_defect=args.per_defect,
                                                                seed=args.seed))
        for fit in ("squash", "letterbox"):
            m = run(fit, data, Path(tmp) / f"runs_{fit}")
            test, spans = m["metrics"], m["intervals"]["values"]
            row = next(r for r in m["per_category"] if r.get("category") != "(mean over categories)")
            loc = "  ".join(f"{k} {row[k]:.3f} [{row[k + '_low']:.3f}, {row[k + '_high']:.3f}]"
                            for k in ("pixel_auroc", "au_pro") if k in row)
            print(f"{fit:9s}  test AUROC {test['roc_auc']:.3f} [{spans['roc_auc'][0]:.3f}, {spans['roc_auc'][1]:.3f}]  "
                  f"{loc}  ({test['n']} test images, {test['tp'] + test['fn']} defective)", flush=True)


if __name__ == "__main__":
    main()
