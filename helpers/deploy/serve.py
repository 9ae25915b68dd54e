"""The inspector page: ``python -m helpers serve --model DIR`` — drop photos, see each one's score, decision and where
the model looks, with the model card in words beside it.

The page is a Gradio app (Colab's runtime ships Gradio; elsewhere ``pip install gradio``). It scores with the same
:class:`helpers.deploy.predict.Predictor` and the same checks as ``predict`` (:func:`inspect_uploads`), so a file
gets the same score on the page as in ``predict``'s table. Uploads are untrusted: each file is checked (header size
first, then a full decode) before it is scored; a bad one is listed with its reason and the page keeps serving. The
threshold slider re-decides the scored images without scoring them again. The app listens on 127.0.0.1 unless told
otherwise; a public link (Gradio's ``share``) only when asked.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..models import kinds
from .inputs import Problem, batches, vet
from .predict import Predictor

__all__ = ["PAGE_COLUMNS", "FROM_NAME", "Inspection", "card_in_words", "category_in_name", "inspect_uploads",
           "redecide", "build_app", "launch", "in_notebook", "GRADIO_HINT"]

#: The results table of the page, one row per uploaded file.
PAGE_COLUMNS = ["file", "score", "decision", "problem", "predicted category", "category used"]
#: The category choice that reads the category from each file's name (per-category models).
FROM_NAME = "(from the file name)"
GRADIO_HINT = ("The inspector page needs Gradio, which Colab's runtime ships; elsewhere: pip install gradio "
               "(tested with 6.24).")
#: An uploaded file larger than this is refused by the page before it reaches the model (MVTec AD's PNGs are ≤ 1.5 MB).
MAX_UPLOAD = "50mb"


def card_in_words(predictor: Predictor) -> str:
    """The card as a reader wants it (Markdown): what the model is, what it was trained and tested on, its test
    metrics, how it decides, its backend, and its limits."""
    card = predictor.card
    data = card.data or {}
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in card.test_metrics.items() if v is not None) or "not recorded"
    backbone = f"{card.backbone} ({card.weights})" if card.backbone else "its own network"
    per = card.threshold.per_category
    decide = (f"a threshold per category, chosen on each category's val images (scores normalised so that each is "
              f"{card.threshold.value:g})" if per else
              f"score ≥ {card.threshold.value:.4g} means defective ({card.threshold.method} on {card.threshold.chosen_on})")
    lines = [f"### {card.approach}", "",
             f"- **Model:** {kinds.get(card.kind).title}, backbone {backbone}; notebook {card.notebook}, "
             f"profile {card.profile or '?'}; input {card.input.image_size} px.",
             f"- **Trained on:** {data.get('name', '?')} (split {data.get('split_hash', '?')}).",
             f"- **Test metrics** (its held-out test images): {metrics}.",
             f"- **Decision:** {decide}.",
             f"- **Backend:** {predictor.inferencer.backend}.",
             ]
    if card.categories:
        lines.append(f"- **Categories:** {', '.join(card.categories)}.")
    lines += ["", "**Limits**", "", *[f"- {text}" for text in card.limits]]
    return "\n".join(lines)


def category_in_name(path: str | os.PathLike, known: Sequence[str]) -> str:
    """A category named in the file's path — ``bottle_000.png``, ``metal_nut-scratch.png``, ``bottle/000.png`` — or ''
    when none is: the longest known name standing as a whole word (between non-alphanumerics) of the path."""
    text = str(Path(path).with_suffix(""))
    hits = [c for c in known if re.search(rf"(^|[^A-Za-z0-9]){re.escape(c)}($|[^A-Za-z0-9])", text)]
    return max(hits, key=len) if hits else ""


class Inspection:
    """One batch of uploads scored: the page's table (scores and decisions at the card's threshold) and, per
    scored file, the image as the model saw it under its map."""

    def __init__(self, table: pd.DataFrame, overlays: list[tuple[np.ndarray, str]]):
        self.table, self.overlays = table, overlays


def inspect_uploads(predictor: Predictor, paths: Sequence[str | os.PathLike], category: str | None = None,
                    batch_size: int = 16) -> Inspection:
    """Score uploaded files as ``predict`` does (the same checks, batches and :meth:`Predictor.score`), with maps.

    ``category`` (per-category models): one of the card's categories for every file, or None / :data:`FROM_NAME` to
    read it from each file's name. A file that cannot be scored gets its reason in ``problem``."""
    from ..viz.maps import blend

    card = predictor.card
    per_category = kinds.get(card.kind).per_category
    chosen = None if category in (None, "", FROM_NAME) else category
    if per_category and chosen is None and len(card.categories) == 1:
        chosen = card.categories[0]                     # one product, one bank: nothing to choose
    problems: list[Problem] = []
    files = [Path(p) for p in paths]
    if per_category and chosen is None:
        named = {str(p): category_in_name(Path(p).name, card.categories) for p in files}
        missing = [p for p in files if not named[str(p)]]
        problems += [{"path": str(p), "problem": "no category in its name: choose the category above (this model "
                      f"has a memory bank per category: {', '.join(card.categories)})"} for p in missing]
        files = [p for p in files if named[str(p)]]
        good, cats = [], []
        for cat in sorted({named[str(p)] for p in files}):
            g, _ = vet([p for p in files if named[str(p)] == cat], problems, card, cat)
            good += g
            cats += [cat] * len(g)
    else:
        good, cats = vet(files, problems, card, chosen)
    rows: list[dict[str, Any]] = []
    overlays: list[tuple[np.ndarray, str]] = []
    for chunk, index in batches(card, good, batch_size, cats if per_category else None):
        scored = predictor.score(chunk, index, maps=True)
        for j, path in enumerate(chunk):
            rows.append({"file": Path(path).name, "score": float(scored.scores[j]), "decision": scored.decisions[j],
                         "predicted category": scored.predicted[j],
                         "category used": card.categories[index] if index is not None else "", "problem": ""})
            if scored.maps is not None:
                overlays.append((blend(predictor.display(path), scored.maps[j]),
                                 f"{Path(path).name}: {scored.decisions[j]} ({scored.scores[j]:.3f})"))
    rows += [{"file": Path(p["path"]).name, "score": np.nan, "decision": "", "predicted category": "",
              "category used": "", "problem": p["problem"]} for p in problems]
    return Inspection(pd.DataFrame(rows, columns=PAGE_COLUMNS), overlays)


def redecide(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The table's decisions at another threshold (nothing is scored again)."""
    out = table.copy()
    scored = out["problem"] == ""
    out.loc[scored, "decision"] = np.where(out.loc[scored, "score"].to_numpy(float) >= threshold, "defective", "good")
    return out


def _slider_range(predictor: Predictor) -> tuple[float, float]:
    """Probabilities live in [0, 1]; normalised distances (PatchCore) around the threshold, about ±1."""
    t = predictor.card.threshold.value
    return (min(0.0, t - 1.0), max(1.0, t + 1.0)) if kinds.get(predictor.card.kind).per_category else (0.0, 1.0)


def build_app(model_dir: str | os.PathLike, backend: str = "auto") -> Any:
    """The Gradio Blocks app of a model folder (not launched). ``backend``: ``auto`` (ONNX when the folder was
    exported, else the framework), or one of :data:`helpers.deploy.inferencers.BACKENDS`."""
    try:
        import gradio as gr
    except ImportError as err:
        raise UserError(GRADIO_HINT) from err
    from ..artefacts.card import read_card

    if backend == "auto":
        backend = "onnx" if read_card(model_dir).onnx is not None else "framework"
    predictor = Predictor(model_dir, backend)
    card = predictor.card
    low, high = _slider_range(predictor)

    def score(files: list[Any] | None, category: str | None, threshold: float) -> tuple[Any, Any, Any, str]:
        paths = [getattr(f, "name", f) for f in (files or [])]
        if not paths:
            return pd.DataFrame(columns=PAGE_COLUMNS), [], None, "Upload one or more images first."
        try:
            done = inspect_uploads(predictor, paths, category)
        except UserError as err:                     # e.g. a category this model has no bank for
            return pd.DataFrame(columns=PAGE_COLUMNS), [], None, f"Not scored: {err}"
        table = redecide(done.table, threshold)
        n_bad = int((table["problem"] != "").sum())
        note = f"{len(table) - n_bad} scored" + (f", {n_bad} not scored (see 'problem')" if n_bad else "")
        return table, done.overlays, done.table, note

    def again(table: pd.DataFrame | None, threshold: float) -> Any:
        return redecide(table, threshold) if table is not None and len(table) else pd.DataFrame(columns=PAGE_COLUMNS)

    with gr.Blocks(title=f"Inspector — {card.approach}") as app:
        gr.Markdown(f"# Defect inspector\nDrop photos of parts: each gets a score, a decision at the threshold, "
                    f"and a map of where the model looks. Model folder: `{Path(model_dir).name}`.")
        with gr.Row():
            with gr.Column(scale=3):
                files = gr.File(file_count="multiple", label="images", elem_id="uploads")
                category = (gr.Dropdown([FROM_NAME, *card.categories], value=FROM_NAME, label="category",
                                        elem_id="category") if kinds.get(card.kind).per_category else
                            gr.State(None))
                threshold = gr.Slider(low, high, value=card.threshold.value, step=0.001, label="threshold (re-decides "
                                      "the uploaded images; the card's value is where it starts)", elem_id="threshold")
                button = gr.Button("Score", variant="primary", elem_id="score")
                note = gr.Markdown(elem_id="note")
                table = gr.Dataframe(headers=PAGE_COLUMNS, label="results", elem_id="results", interactive=False)
                gallery = gr.Gallery(label="where the model looks", elem_id="maps", columns=3)
            with gr.Column(scale=2):
                gr.Markdown(card_in_words(predictor), elem_id="card")
        scored = gr.State(None)
        button.click(score, [files, category, threshold], [table, gallery, scored, note])
        threshold.change(again, [scored, threshold], [table])
    return app


def launch(model_dir: str | os.PathLike, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           backend: str = "auto", inline: bool = False, block: bool = True) -> Any:
    """Build and launch the page; returns the app (``block=False`` returns at once, e.g. in a notebook: call
    ``app.close()`` when done)."""
    app = build_app(model_dir, backend)
    app.launch(server_name=host, server_port=port, share=share, inline=inline, prevent_thread_lock=not block,
               max_file_size=MAX_UPLOAD, quiet=not block, show_error=True)
    return app


def in_notebook(model_dir: str | os.PathLike) -> Any:
    """Notebook 08's page: launched inline and left running for the reader; in a headless run (papermill, CI) it is
    served, checked to answer, and closed. Without Gradio it says how to get it instead of failing the notebook."""
    from ..viz.widgets import widgets_wanted

    try:
        app = launch(model_dir, inline=True, block=False)
    except UserError as err:
        print(err)
        return None
    if not widgets_wanted():
        import urllib.request

        with urllib.request.urlopen(app.local_url, timeout=30) as response:   # the page answers
            print(f"served {model_dir} at {app.local_url} (HTTP {response.status}); closed (headless run)")
        app.close()
    return app
