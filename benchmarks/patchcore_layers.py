"""PatchCore's patch features before and after the official per-level dimensions (issue: like-for-like, item 7).

- before: the two levels concatenated, then pooled to ≤ 1024 channels (with WideResNet-50 layer 3 got two thirds
  of the dimensions; with the offline EfficientNet-Lite0, 40 + 112 channels, nothing was pooled: the wider level
  got 74% of them);
- after: each level brought to the same dimension first, then concatenated and pooled
  (:func:`helpers.models.patchcore.patch_features`, as patchcore-inspection does).

Measured with the offline backbone (EfficientNet-Lite0: WideResNet-50 weights cannot be downloaded here) on
(a) the team's real MVTec AD sample (``../shared/mvtec_sample``: the four categories with masks, fitted on the
few good images there are, scored on the rest) and (b) generated data (3 categories, 20 good training images,
10 good and 12 defective test images each, 128 px). Prints a Markdown table for docs/benchmarks.md.

Usage: .venv/bin/python benchmarks/patchcore_layers.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.data import preprocessing  # noqa: E402
from helpers.data.images import load_mask, load_rgb  # noqa: E402
from helpers.evaluation.localisation import au_pro, pixel_auroc  # noqa: E402
from helpers.models import kinds  # noqa: E402
from helpers.models import patchcore as pc  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "mvtec_sample"
AFTER = pc.patch_features


def before(levels, out_channels: int = 1024):
    """The previous features: concatenate the levels, then pool the channels (when more than ``out_channels``)."""
    fine, coarse = (F.avg_pool2d(f, 3, stride=1, padding=1) for f in levels)
    coarse = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
    feats = torch.cat([fine, coarse], dim=1)
    n, c, h, w = feats.shape
    flat = feats.permute(0, 2, 3, 1).reshape(-1, c)
    if c > out_channels:
        flat = F.adaptive_avg_pool1d(flat.unsqueeze(1), out_channels).squeeze(1)
    return flat, (h, w)


def evaluate(backbone, features, fit, scored, masks, labels, size=(256, 224)) -> dict:
    spec = kinds.PATCHCORE.input_spec(size[1], resize=size[0])     # the one preprocessing (resize, centre crop)
    x01 = lambda images: torch.from_numpy(preprocessing.batch(spec, images))  # noqa: E731
    pc.patch_features = features
    try:
        model = pc.PatchCore(backbone, ["c"], coreset_fraction=0.1)
        model.fit("c", x01(fit))
        scores, maps = model.raw_scores(x01(scored), "c")
    finally:
        pc.patch_features = AFTER
    small = preprocessing.crop_masks(spec, masks)
    y = np.asarray(labels)
    from sklearn.metrics import roc_auc_score

    return {"image_auroc": roc_auc_score(y, scores) if 0 < y.sum() < len(y) else np.nan,
            "pixel_auroc": pixel_auroc(list(maps), list(small)), "au_pro": au_pro(list(maps), list(small)),
            "dim": model.bank("c").shape[1]}


def real_sample() -> list[tuple[str, list, list, list, list]]:
    """Per category with masks: fit on train/good (else test/good), score the rest of test."""
    out = []
    for cat in sorted(p.name for p in SAMPLE.iterdir() if (p / "ground_truth").is_dir()):
        d = SAMPLE / cat
        train = sorted((d / "train" / "good").glob("*.png")) if (d / "train").is_dir() else []
        test_good = sorted((d / "test" / "good").glob("*.png"))
        bad = sorted(p for p in (d / "test").glob("*/*.png") if p.parent.name != "good")
        fit = train or test_good
        scored_good = test_good if train else []
        scored = scored_good + bad
        masks = [np.zeros(load_rgb(p).shape[:2], bool) for p in scored_good] + \
                [load_mask(d / "ground_truth" / p.parent.name / f"{p.stem}_mask.png").astype(bool) for p in bad]
        out.append((f"real {cat} (fit {len(fit)}, score {len(scored)})", [load_rgb(p) for p in fit],
                    [load_rgb(p) for p in scored], masks, [0] * len(scored_good) + [1] * len(bad)))
    return out


def generated() -> list[tuple[str, list, list, list, list]]:
    from helpers.data.synthetic import DEFECTS, render_image

    out = []
    rgb = lambda a: np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a  # noqa: E731
    for cat in ("bottle", "carpet", "screw"):
        fit = [rgb(render_image(cat, np.random.default_rng([1, i]), 128)[0]) for i in range(20)]
        good = [rgb(render_image(cat, np.random.default_rng([2, i]), 128)[0]) for i in range(10)]
        kinds = list(DEFECTS[cat])
        bad = [render_image(cat, np.random.default_rng([3, i]), 128, defect=kinds[i % len(kinds)], defect_scale=2.0,
                           difficulty="uniform")
               for i in range(12)]
        out.append((f"generated {cat} (fit 20, score 22)", fit, good + [rgb(b[0]) for b in bad],
                    [np.zeros((128, 128), bool)] * 10 + [b[1].astype(bool) for b in bad], [0] * 10 + [1] * 12))
    return out


def main() -> None:
    torch.manual_seed(0)
    backbone = pc.PatchFeatures("efficientnet_lite0")
    cases = (real_sample() if SAMPLE.is_dir() else []) + generated()
    print("| data | features | dim | image AUROC | pixel AUROC | AU-PRO (FPR ≤ 0.3) |\n|---|---|---|---|---|---|")
    for name, fit, scored, masks, labels in cases:
        sizes = (256, 224) if name.startswith("real") else (128, 112)
        for label, features in (("before: concat, then pool", before), ("after: per level, then pool", AFTER)):
            r = evaluate(backbone, features, fit, scored, masks, labels, sizes)
            print(f"| {name} | {label} | {r['dim']} | {r['image_auroc']:.3f} | {r['pixel_auroc']:.3f} | {r['au_pro']:.3f} |")


if __name__ == "__main__":
    main()
