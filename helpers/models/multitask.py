"""Study 001's multi-task CNN (notebook 04), in Keras: one network, two heads — object category and defective/good.

Trained from scratch, as the study built it. Stable layer names for explainability (notebook 05): :data:`LAST_CONV`
(Grad-CAM) and :data:`SHARED_DENSE` (t-SNE features). Input: NHWC float32 in [0, 1].
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..core.env import load_torch_before_tensorflow

__all__ = ["LAST_CONV", "SHARED_DENSE", "MULTITASK_LAYERS", "build_multitask", "predict_multitask"]

LAST_CONV = "last_conv"
SHARED_DENSE = "shared_dense"
#: The layer types :func:`build_multitask` uses: a saved file with any other is not a model this series wrote
#: (``helpers.models.kinds`` refuses it).
MULTITASK_LAYERS = frozenset({"InputLayer", "Conv2D", "MaxPooling2D", "GlobalAveragePooling2D", "Dense", "Dropout"})


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
    x = layers.Dense(512, activation="relu", name=SHARED_DENSE)(x)
    shared = layers.Dropout(0.5, name="shared_dropout")(x)
    c = layers.Dense(256, activation="relu", name="category_dense")(shared)
    c = layers.Dropout(0.3, name="category_dropout")(c)
    category = layers.Dense(n_categories, activation="softmax", name="category")(c)
    d = layers.Dense(128, activation="relu", name="defect_dense")(shared)
    d = layers.Dropout(0.3, name="defect_dropout")(d)
    defect = layers.Dense(1, activation="sigmoid", name="defect")(d)
    return keras.Model(inputs, {"category": category, "defect": defect}, name="multitask_cnn")


def predict_multitask(model: Any, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(category probabilities N×C, defect probabilities N) for a batched dataset or an N×H×W×3 array, in order."""
    out = model.predict(data, verbose=0) if not isinstance(data, np.ndarray) else model(data, training=False)
    return np.asarray(out["category"]), np.asarray(out["defect"]).reshape(-1)
