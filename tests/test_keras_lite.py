"""EfficientNet-Lite0 rebuilt in Keras from the PyTorch package's ImageNet weights (issue 32) gives the package's
logits on real photos: every weight copied, the same padding, nothing retrained — never random weights."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import REAL_SAMPLE
from PIL import Image

pytest.importorskip("keras")


@pytest.mark.skipif(not REAL_SAMPLE.is_dir(), reason=f"{REAL_SAMPLE} (the team's real photos) is absent")
def test_the_keras_rebuild_gives_the_packages_imagenet_logits_on_real_photos():
    from helpers.models.keras_lite import parity

    paths = sorted(REAL_SAMPLE.rglob("*.png"))
    paths = [p for p in paths if "ground_truth" not in p.parts][:16]
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((256, 256))) for p in paths])
    result = parity(images, image_size=224)
    assert result["n"] == len(paths) >= 8
    assert result["max_abs_diff"] <= 1e-4 and result["same_top1"] == 1.0, result
    assert result["max_abs_logit"] > 1.0           # real logits, not a network that outputs zeros


def test_the_features_layer_is_what_the_heads_sit_on():
    from helpers.models.keras_lite import FEATURES, build_lite0

    model = build_lite0(96)
    assert model.output_shape == (None, 1280) and model.layers[-1].name == FEATURES
    assert all(np.isfinite(w).all() for w in model.get_weights()) and model.count_params() > 3_000_000
