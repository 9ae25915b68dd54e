"""A model file is untrusted input (a folder others send): each kind checks its file before use, as the card is
checked — the tensors' names, shapes, dtypes and widths against the kind's own network and its backbone — and a
refusal names the file and what is wrong (:func:`refuse_file`); nothing of the file runs."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["refuse_file", "check_state", "torch_blob", "feature_width", "check_patchcore_state"]


def refuse_file(path: str | os.PathLike, what: str) -> Exception:
    """The error for a model file that is not what its kind writes (a folder others send is untrusted input): it
    names the file and what is wrong; nothing of the file has run."""
    from ..errors import ModelFolderError

    return ModelFolderError(f"{path}: refused — {what}. This series never writes such a file; re-create the model with "
                            "its notebook (and load only models you trust).")


def check_state(path: str | os.PathLike, state: Any, expected: dict[str, Any]) -> None:
    """A torch state dict holds exactly the tensors of the kind's own network: names, shapes and dtypes (widths that
    disagree with the backbone, a layer too many or too few), all finite."""
    import torch

    if not isinstance(state, dict):
        raise refuse_file(path, f"its weights are a {type(state).__name__}, not a table of tensors")
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise refuse_file(path, f"its weights do not fit the network ({len(missing)} missing, e.g. "
                                f"{missing[:2]}; {len(extra)} unexpected, e.g. {extra[:2]})")
    for name, want in expected.items():
        got = state[name]
        if not isinstance(got, torch.Tensor) or got.shape != want.shape or got.dtype != want.dtype:
            shown = (f"{tuple(got.shape)} {got.dtype}" if isinstance(got, torch.Tensor) else type(got).__name__)
            raise refuse_file(path, f"weight {name!r} is {shown}, the network's is {tuple(want.shape)} {want.dtype}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise refuse_file(path, f"weight {name!r} holds NaN or infinite values")


def torch_blob(path: str | os.PathLike, kind: Any = None) -> dict[str, Any]:
    """The saved dict of a torch model file (weights only, nothing runs); ``kind`` (a model kind): it must be that kind's."""
    from ..core.files import safe_load

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved model at {path}.")
    blob = safe_load(path, "model file", "Load only models you trust; re-create this one with its notebook.")
    found = blob.get("kind") if isinstance(blob, dict) else None
    if kind is not None and found != kind.name:
        raise ValueError(f"{path} holds a model of kind {found!r}, not {kind.name!r} (written by an older version, or "
                         "another notebook's): re-create it with its notebook.")
    return blob


def feature_width(features: Any) -> int:
    """The width of a backbone's patch features (one tiny forward pass: 64 px)."""
    import torch

    with torch.no_grad():
        feats, _ = features(torch.zeros(1, 3, 64, 64))
    return int(feats.shape[1])


def check_patchcore_state(path: str | os.PathLike, state: Any, categories: list[str], width: int) -> dict[str, Any]:
    """PatchCore's banks and normalisation against its card's categories and its backbone's feature width."""
    import torch

    if not isinstance(state, dict) or not {"banks", "thresholds", "spans"} <= set(state):
        raise refuse_file(path, "it lacks PatchCore's banks, thresholds or spans")
    banks = state["banks"]
    if not isinstance(banks, dict) or not banks or not set(banks) <= set(categories):
        raise refuse_file(path, f"its banks are not one per category of {categories}")
    for name, bank in banks.items():
        if not isinstance(bank, torch.Tensor) or bank.dtype != torch.float32 or bank.ndim != 2 or len(bank) == 0:
            raise refuse_file(path, f"the bank of {name!r} is not a non-empty 2-D float32 tensor")
        if bank.shape[1] != width:
            raise refuse_file(path, f"the bank of {name!r} has width {bank.shape[1]}; its backbone's patch features "
                                    f"have {width}")
        if not bool(torch.isfinite(bank).all()):
            raise refuse_file(path, f"the bank of {name!r} holds NaN or infinite values")
    for key in ("thresholds", "spans"):
        t = state[key]
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float32 or tuple(t.shape) != (len(categories),):
            raise refuse_file(path, f"its {key} are not {len(categories)} float32 values (one per category)")
        if not bool(torch.isfinite(t).all()) or (key == "spans" and not bool((t > 0).all())):
            rule = "finite and > 0" if key == "spans" else "finite"
            raise refuse_file(path, f"its {key} hold values that are not {rule}")
    return state
