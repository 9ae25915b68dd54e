"""Learned features as arrays: a torch module's or a Keras layer's outputs, their t-SNE, their silhouettes.

- :func:`torch_features` (e.g. the pooled features of a backbone) and :func:`keras_features` (a layer's outputs,
  e.g. the multi-task model's shared Dense(512)); which features each model shows is its kind's choice
  (:meth:`helpers.models.kinds.ModelKind.features`).
- :func:`tsne_2d` (scikit-learn, perplexity 30, PCA init, random_state 42) and :func:`silhouettes`
  (in the original feature space, by category and by defect label).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn import metrics as skm
from torch import nn

from ..core.env import load_torch_before_tensorflow

__all__ = ["TSNE_PARAMS", "torch_features", "keras_features", "tsne_2d", "effective_perplexity", "silhouettes"]

TSNE_PARAMS: dict[str, Any] = {"perplexity": 30.0, "random_state": 42, "init": "pca"}
_PERPLEXITY = 30.0


@torch.no_grad()
def torch_features(encoder: nn.Module, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Run ``encoder`` (eval mode) over a normalised N×3×H×W tensor in batches; N×D numpy features."""
    encoder.eval()
    device = next(encoder.parameters()).device
    out = [encoder(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).flatten(1).numpy()


def keras_features(model, images: np.ndarray, layer: str = "shared_dense", batch_size: int = 64) -> np.ndarray:
    """Outputs of ``layer`` (default: the shared Dense(512)) for N×H×W×3 images in [0, 1]."""
    load_torch_before_tensorflow()
    import keras

    sub = keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(sub.predict(images, batch_size=batch_size, verbose=0))


def tsne_2d(features: np.ndarray, **overrides: Any) -> np.ndarray:
    """2-D t-SNE (perplexity 30, PCA init, random_state 42). Perplexity is capped below the sample count
    (sklearn requires perplexity < n); the value used is what the notebook prints."""
    from sklearn.manifold import TSNE

    params = {**TSNE_PARAMS, **overrides}
    params["perplexity"] = effective_perplexity(len(features), params["perplexity"])
    return TSNE(n_components=2, **params).fit_transform(np.asarray(features, dtype=np.float32))


def effective_perplexity(n: int, perplexity: float = _PERPLEXITY) -> float:
    """The perplexity :func:`tsne_2d` uses for ``n`` samples."""
    return float(min(perplexity, max(1.0, n - 1.0)))


def silhouettes(features: np.ndarray, categories: Sequence, labels: Sequence[int]) -> dict[str, float]:
    """Silhouette scores in the original feature space: by category and by defect label (NaN if undefined)."""
    out = {}
    for name, values in (("by_category", categories), ("by_defect", labels)):
        groups = np.asarray(values)
        k = len(np.unique(groups))
        out[name] = float(skm.silhouette_score(features, groups)) if 1 < k < len(groups) else math.nan
    return out


