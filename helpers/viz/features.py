"""t-SNE maps of learned features, coloured by category and by good / defective."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_tsne"]


def plot_tsne(embeddings: dict[str, np.ndarray], categories: Sequence, labels: Sequence[int],
              scores: dict[str, dict[str, float]] | None = None):
    """One row per colouring (category, good/defective), one column per model."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    n = len(embeddings)
    fig, axes = plt.subplots(2, n, figsize=(5 * n, 9), squeeze=False)
    names = np.where(np.asarray(labels) == 1, "defective", "good")
    for j, (model, xy) in enumerate(embeddings.items()):
        for i, (hue, title) in enumerate(((np.asarray(categories), "by category"), (names, "good / defective"))):
            ax = axes[i, j]
            sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=hue, ax=ax, s=18, legend=(j == n - 1),
                            palette="tab20" if i == 0 else {"good": "#4c9a5b", "defective": "#c0504d"})
            sil = (scores or {}).get(model, {}).get("by_category" if i == 0 else "by_defect")
            ax.set(title=f"{model} — {title}" + (f"\nsilhouette {sil:.3f}" if sil is not None and np.isfinite(sil) else ""),
                   xticks=[], yticks=[])
            if j == n - 1:
                ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=7)
    fig.tight_layout()
    return fig
