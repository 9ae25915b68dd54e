"""torch and tf.data loaders over manifest + cache: shapes, value ranges, augmentation, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.data.cache import build_cache
from helpers.data.scan import scan_mvtec


@pytest.fixture(scope="module")
def prepared(synthetic_root, tmp_path_factory):
    manifest = scan_mvtec(synthetic_root, progress=False).manifest
    cache = build_cache(manifest, synthetic_root, 48, tmp_path_factory.mktemp("cache"), progress=False)
    return manifest, cache


def test_torch_dataset_and_transforms(prepared, synthetic_root):
    import torch

    from helpers.core.config import IMAGENET_MEAN, IMAGENET_STD
    from helpers.data.torch_data import MVTecDataset, TwoViews, eval_transform, make_loader, simclr_transform, train_transform

    manifest, cache = prepared
    ds = MVTecDataset(manifest, cache=cache, transform=eval_transform(40))
    item = ds[0]
    assert item["image"].shape == (3, 40, 40) and item["image"].dtype == torch.float32
    # eval = resize + ImageNet normalisation: undoing it gives back the resized pixels
    raw = ds.image(0).astype(np.float32) / 255
    back = item["image"].permute(1, 2, 0).numpy() * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    import cv2
    assert np.abs(back - cv2.resize(raw, (40, 40), interpolation=cv2.INTER_LINEAR)).max() < 0.02
    assert item["category"] == ds.categories.index(manifest.at[0, "category"])
    # training augmentation changes the image; two SimCLR views differ from each other
    aug = MVTecDataset(manifest, cache=cache, transform=train_transform(40))
    outs = [aug[5]["image"] for _ in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    two = MVTecDataset(manifest, cache=cache, transform=TwoViews(simclr_transform(32)))
    v1, v2 = two[3]["image"]
    assert v1.shape == v2.shape == (3, 32, 32) and not torch.equal(v1, v2)
    # raw decoding gives the same pixels as the cache at the cache's size
    raw_ds = MVTecDataset(manifest, root=synthetic_root, transform=eval_transform(48))
    cached_ds = MVTecDataset(manifest, cache=cache, transform=eval_transform(48))
    assert (raw_ds[0]["image"] - cached_ds[0]["image"]).abs().mean() < 0.05
    # seeded loaders repeat themselves
    a = [b["index"].tolist() for b in make_loader(ds, 8, shuffle=True, seed=1)]
    b = [b["index"].tolist() for b in make_loader(ds, 8, shuffle=True, seed=1)]
    assert a == b and sorted(sum(a, [])) == list(range(len(ds)))


def test_tf_dataset(prepared, synthetic_root):
    import tensorflow as tf

    from helpers.data.tf_data import make_dataset
    from helpers.data.torch_data import category_names

    manifest, cache = prepared
    cats = category_names(manifest)
    ds = make_dataset(manifest, cats, size=32, batch_size=8, training=False, cache=cache)
    x, y = next(iter(ds))
    assert x.shape == (8, 32, 32, 3) and x.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    assert y["category"].numpy().tolist() == [cats.index(c) for c in manifest["category"][:8]]
    assert y["defect"].numpy().tolist() == manifest["label"][:8].astype(float).tolist()
    total = sum(int(b[0].shape[0]) for b in ds)
    assert total == len(manifest)
    train = make_dataset(manifest, cats, size=32, batch_size=8, training=True, cache=cache, seed=3)
    xt, _ = next(iter(train))
    assert 0.0 <= float(tf.reduce_min(xt)) and float(tf.reduce_max(xt)) <= 1.0
    raw = make_dataset(manifest, cats, size=48, batch_size=4, training=False, root=synthetic_root)
    xr, _ = next(iter(raw))
    xc, _ = next(iter(make_dataset(manifest, cats, size=48, batch_size=4, cache=cache)))
    assert float(tf.reduce_mean(tf.abs(xr - xc))) < 0.02
