"""The registry of model kinds: each kind says once how it is saved and loaded, what its input is, how it scores,
where Grad-CAM looks, which features it shows and how it exports. Everything else dispatches through it.

A kind's name is written into its model file and model card; it appears in this module and nowhere else
(``tests/test_layers.py`` checks it). The kinds:

=================  =========  =========================================================================
kind               framework  the model
=================  =========  =========================================================================
``supervised``     torch      a backbone + study 000's head, fine-tuned on the labels (notebook 01)
``simclr``         torch      an encoder + projection head, pretrained with NT-Xent (notebook 02; not scored)
``probe``          torch      SimCLR's frozen encoder + Linear(feature_dim, 2) (notebook 03)
``multitask``      keras      study 001's CNN: category and defect heads (notebook 04)
``patchcore``      torch      per-category memory banks on an ImageNet backbone (notebook 06)
=================  =========  =========================================================================
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..data.preprocessing import InputSpec

if TYPE_CHECKING:
    from ..explain.gradcam import CamSetting

__all__ = ["Scores", "ModelKind", "KINDS", "SUPERVISED", "SIMCLR", "PROBE", "MULTITASK", "PATCHCORE", "get",
           "recorded_backbone", "refuse_file"]


@dataclass
class Scores:
    """What a model says about a batch: defect scores (N), category probabilities (N×C, models with a category head)
    and anomaly maps (N×H×W, models that localise)."""

    defect: np.ndarray
    categories: np.ndarray | None = None
    maps: np.ndarray | None = None


class ModelKind:
    """How one kind of model is saved, loaded, fed, scored, explained and exported. Subclasses fill it in."""

    name: ClassVar[str]
    title: ClassVar[str]
    framework: ClassVar[str] = "torch"
    #: whether it gives a defect score (SimCLR's encoder does not)
    scored: ClassVar[bool] = True
    #: one model per category (PatchCore): every image needs its category
    per_category: ClassVar[bool] = False
    #: whether it also predicts the object category (the Keras model)
    category_head: ClassVar[bool] = False
    #: what the ONNX graph outputs, in order
    onnx_outputs: ClassVar[tuple[str, ...]] = ("score",)

    def input_spec(self, image_size: int, mean: Any = None, std: Any = None, resize: int | None = None) -> InputSpec:
        """The model's input (:mod:`helpers.data.preprocessing`): NCHW, normalised with the backbone's mean/std."""
        return InputSpec(image_size, resize or image_size, "NCHW", (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]))

    # --- files ---------------------------------------------------------------------------------------------------
    def save(self, model: Any, path: str | os.PathLike, **meta: Any) -> Path:
        """A torch model's weights and what rebuilds them (``meta``: ``backbone``, ``image_size``, ...)."""
        import torch

        from ..core import files

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with files.atomic_path(path) as tmp:
            torch.save({"kind": self.name, "state_dict": model.state_dict(), **meta}, tmp)
        return path

    def load(self, path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
        """The model saved at ``path`` (weights only: no code in the file runs; nothing is downloaded) and its
        metadata, in eval mode on the CPU."""
        blob = _torch_blob(path, self)
        try:
            model = self.build(blob)
        except (KeyError, ValueError, TypeError) as err:
            raise refuse_file(path, f"it does not describe a {self.title} this version can build ({err})") from None
        _check_state(path, blob.get("state_dict"), model.state_dict())
        model.load_state_dict(blob["state_dict"])
        return model.eval(), {k: v for k, v in blob.items() if k != "state_dict"}

    def build(self, meta: dict[str, Any]) -> Any:
        """An untrained model of the shape ``meta`` describes, to load weights into."""
        raise NotImplementedError

    # --- scoring ---------------------------------------------------------------------------------------------------
    def score(self, model: Any, batch: np.ndarray, category: int | None = None) -> Scores:
        """The framework's scores of a preprocessed batch (``category``: its index, for per-category models)."""
        import torch

        from .classifiers import defect_probability

        with torch.no_grad():
            return Scores(defect_probability(model(torch.from_numpy(batch))).numpy().astype(np.float64))

    def onnx_feeds(self, batch: np.ndarray, category: int | None = None) -> dict[str, np.ndarray]:
        """The ONNX graph's inputs for a preprocessed batch."""
        return {"image": batch}

    def from_onnx(self, outputs: list[np.ndarray]) -> Scores:
        """:class:`Scores` from the ONNX graph's outputs (:attr:`onnx_outputs`)."""
        return Scores(np.asarray(outputs[0]).reshape(-1).astype(np.float64))

    def export(self, model: Any, path: Path, spec: InputSpec, opset: int = 18) -> str:
        """Write the model as ONNX (input: the preprocessed batch; output: the defect probability); returns how."""
        import torch
        from torch import nn

        from .classifiers import defect_probability

        class Probability(nn.Module):
            def __init__(self, inner: nn.Module):
                super().__init__()
                self.inner = inner

            def forward(self, image: torch.Tensor) -> torch.Tensor:
                return defect_probability(self.inner(image))

        with torch.no_grad():
            torch.onnx.export(Probability(model).eval(), (torch.zeros(2, *spec.shape),), str(path), dynamo=True,
                              external_data=False, opset_version=opset, input_names=["image"], output_names=["score"],
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False)
        return f"torch.onnx.export(dynamo=True, opset {opset}), torch {torch.__version__}"

    # --- explaining ------------------------------------------------------------------------------------------------
    def gradcam(self, model: Any, batch: np.ndarray, setting: CamSetting | None = None) -> np.ndarray | None:
        """Class-activation maps toward "defective" (N×H×W in [0, 1]; ``setting``: how, default the series'
        :class:`helpers.explain.gradcam.CamSetting`); None for a model without a classifier."""
        return None

    def features(self, model: Any, batch: np.ndarray) -> np.ndarray | None:
        """The features t-SNE shows (N×D); None for a model whose features are shown elsewhere."""
        return None

    def weights_outside_file(self, model: Any) -> int:
        """Bytes of weights the model uses that its file does not hold (they come with a package)."""
        return 0


def refuse_file(path: str | os.PathLike, what: str) -> Exception:
    """The error for a model file that is not what its kind writes (a folder others send is untrusted input): it
    names the file and what is wrong; nothing of the file has run."""
    from ..errors import ModelFolderError

    return ModelFolderError(f"{path}: refused — {what}. This series never writes such a file; re-create the model with "
                            "its notebook (and load only models you trust).")


def _check_state(path: str | os.PathLike, state: Any, expected: dict[str, Any]) -> None:
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


def _torch_blob(path: str | os.PathLike, kind: ModelKind | None = None) -> dict[str, Any]:
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


def _torch_gradcam(model: Any, net: Any, batch: np.ndarray, setting: CamSetting | None) -> np.ndarray:
    """``setting``'s maps of a torch classifier whose backbone is ``net`` (a :class:`~.backbones.StagedNet`)."""
    import torch

    from ..explain.gradcam import CamSetting, torch_gradcam

    s = setting or CamSetting()
    return torch_gradcam(model, torch.from_numpy(batch), _cam_layers(net, s.stages), target_class=1, method=s.method,
                         views=s.views, target=s.target)


def _torch_features(module: Any, batch: np.ndarray) -> np.ndarray:
    import torch

    from ..explain.features import torch_features

    return torch_features(module, torch.from_numpy(batch))


def _bank_index(category: int | None) -> int:
    """A per-category model's bank for a batch: never a silent default (category 0's bank would score every other
    category's images against the wrong good patches)."""
    if category is None:
        raise ValueError("PatchCore keeps one memory bank per category: scoring needs the batch's category index "
                         "(helpers.deploy.inputs.batches gives one per batch); none was given")
    return int(category)


def recorded_backbone(meta: dict[str, Any]) -> str:
    """The backbone a model file records (its network and normalisation follow from it): never assumed."""
    key = meta.get("backbone")
    if not isinstance(key, str) or not key:
        raise ValueError(f"the model file records no backbone (found keys: {', '.join(sorted(meta)) or 'none'}): "
                         "it was not written by this series; train and save the model again")
    return key


def _backbone(meta: dict[str, Any]) -> Any:
    from . import backbones

    return backbones.build(recorded_backbone(meta), "random")     # weights come from the file


def _cam_layers(net: Any, stages: tuple[str, ...] | None = None) -> list[Any]:
    """The layers a backbone's class-activation maps are taken at (default: its registry entry's ``gradcam_stages``)."""
    from . import backbones

    return [net.stages[s] for s in stages or backbones.get(net.key).gradcam_stages]


class _Supervised(ModelKind):
    name, title = "supervised", "supervised classifier"

    def build(self, meta: dict[str, Any]) -> Any:
        from .classifiers import Classifier

        return Classifier(_backbone(meta))

    def gradcam(self, model: Any, batch: np.ndarray, setting: CamSetting | None = None) -> np.ndarray:
        return _torch_gradcam(model, model.backbone, batch, setting)

    def features(self, model: Any, batch: np.ndarray) -> np.ndarray:
        """The head's hidden layer (Linear → ReLU → BatchNorm: what its last layer separates), our choice over the
        pooled backbone features, which a classifier is not trained to arrange."""
        from torch import nn

        return _torch_features(nn.Sequential(model.backbone, *list(model.head)[:4]), batch)


class _SimCLR(ModelKind):
    name, title, scored = "simclr", "SimCLR encoder", False

    def build(self, meta: dict[str, Any]) -> Any:
        from .simclr import SimCLR

        return SimCLR(_backbone(meta))

    def features(self, model: Any, batch: np.ndarray) -> np.ndarray:
        return _torch_features(model.encoder, batch)


class _Probe(ModelKind):
    name, title = "probe", "linear probe"

    def build(self, meta: dict[str, Any]) -> Any:
        from .classifiers import LinearProbe

        return LinearProbe(_backbone(meta))

    def gradcam(self, model: Any, batch: np.ndarray, setting: CamSetting | None = None) -> np.ndarray:
        return _torch_gradcam(model, model.encoder, batch, setting)


class _Multitask(ModelKind):
    name, title, framework, category_head = "multitask", "Keras multi-task CNN", "keras", True
    onnx_outputs = ("defect", "category")

    def input_spec(self, image_size: int, mean: Any = None, std: Any = None, resize: int | None = None) -> InputSpec:
        return InputSpec(image_size, image_size, "NHWC")

    def save(self, model: Any, path: str | os.PathLike, **meta: Any) -> Path:
        model.save(path)
        return Path(path)

    def load(self, path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
        from ..core.env import load_torch_before_tensorflow

        load_torch_before_tensorflow()
        import keras

        try:       # safe_mode (the default): no lambda or custom code runs
            model = keras.models.load_model(path)
        except (ValueError, TypeError, KeyError, OSError) as err:      # what Keras raises for a file it refuses
            reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            raise refuse_file(path, f"Keras would not load it ({reason})") from None
        from .multitask import MULTITASK_LAYERS

        layers = {type(layer).__name__ for layer in model.layers}
        if not layers <= MULTITASK_LAYERS:
            unknown = ", ".join(sorted(layers - MULTITASK_LAYERS))
            raise refuse_file(path, f"it holds layers the study's network does not ({unknown})")
        if set(model.output_names if hasattr(model, "output_names") else []) - {"category", "defect"}:
            raise refuse_file(path, f"its outputs are {model.output_names}, not 'category' and 'defect'")
        return model, {}

    def score(self, model: Any, batch: np.ndarray, category: int | None = None) -> Scores:
        out = model(batch, training=False)
        return Scores(np.asarray(out["defect"]).reshape(-1).astype(np.float64), np.asarray(out["category"]))

    def from_onnx(self, outputs: list[np.ndarray]) -> Scores:
        return Scores(np.asarray(outputs[0]).reshape(-1).astype(np.float64), np.asarray(outputs[1]))

    def export(self, model: Any, path: Path, spec: InputSpec, opset: int = 18) -> str:
        import keras

        model(np.zeros((1, *spec.shape), np.float32), training=False)    # export needs a model that has been called
        with warnings.catch_warnings():       # keras's tf2onnx shim probes np.object: NumPy's FutureWarning, not ours
            warnings.filterwarnings("ignore", message=r"In the future `np.object`", category=FutureWarning)
            model.export(str(path), format="onnx", verbose=False)
        return f"keras Model.export(format='onnx') (tf2onnx), keras {keras.__version__}"

    def gradcam(self, model: Any, batch: np.ndarray, setting: CamSetting | None = None) -> np.ndarray:
        from ..explain.gradcam import CamSetting, keras_gradcam
        from .multitask import LAST_CONV

        return keras_gradcam(model, batch, conv_layer=LAST_CONV, method=(setting or CamSetting()).method)

    def features(self, model: Any, batch: np.ndarray) -> np.ndarray:
        from ..explain.features import keras_features
        from .multitask import SHARED_DENSE

        return keras_features(model, batch, layer=SHARED_DENSE)


def _feature_width(features: Any) -> int:
    """The width of a backbone's patch features (one tiny forward pass: 64 px)."""
    import torch

    with torch.no_grad():
        feats, _ = features(torch.zeros(1, 3, 64, 64))
    return int(feats.shape[1])


def _check_patchcore_state(path: str | os.PathLike, state: Any, categories: list[str], width: int) -> dict[str, Any]:
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


class _PatchCore(ModelKind):
    name, title, per_category = "patchcore", "PatchCore", True
    onnx_outputs = ("score", "map")

    def input_spec(self, image_size: int, mean: Any = None, std: Any = None, resize: int | None = None) -> InputSpec:
        return InputSpec(image_size, resize or image_size, "NCHW")      # [0, 1]: the backbone normalises inside

    def save(self, model: Any, path: str | os.PathLike, **meta: Any) -> Path:
        """The banks and each category's normalisation (not the backbone: its weights come with torchvision or a
        package, and are rebuilt exactly as named — never another backbone)."""
        import torch

        from ..core import files

        state = {"banks": {c: model.bank(c).cpu().contiguous() for c in model.categories if model.bank_rows[model.index(c)]},
                 "thresholds": model.thresholds.cpu(), "spans": model.spans.cpu()}
        with files.atomic_path(path) as tmp:
            torch.save({"kind": self.name, "backbone": model.features.key, "categories": list(model.categories),
                        "state": state, **meta}, tmp)
        return Path(path)

    def load(self, path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
        from .patchcore import PatchCore, PatchFeatures

        blob = _torch_blob(path, self)
        recipe = blob.get("recipe", {})
        categories = blob.get("categories")
        if (not isinstance(categories, list) or not categories or len(set(categories)) != len(categories)
                or not all(isinstance(c, str) and c for c in categories)):
            raise refuse_file(path, "its categories are not a list of distinct names")
        try:
            features = PatchFeatures(recorded_backbone(blob))
        except ValueError as err:
            raise refuse_file(path, str(err)) from None
        model = PatchCore(features, categories, recipe.get("coreset_fraction", 0.1),
                          recipe.get("num_neighbors", 9), recipe.get("blur_sigma", 4.0))
        state = _check_patchcore_state(path, blob.get("state"), categories, _feature_width(features))
        for category, bank in state["banks"].items():
            model.set_bank(category, bank)
        model.thresholds.copy_(state["thresholds"])
        model.spans.copy_(state["spans"])
        return model.eval(), {k: v for k, v in blob.items() if k != "state"}

    def weights_outside_file(self, model: Any) -> int:
        return sum(t.numel() * t.element_size() for t in model.features.net.state_dict().values())

    def score(self, model: Any, batch: np.ndarray, category: int | None = None) -> Scores:
        import torch

        score, maps = model(torch.from_numpy(batch), torch.tensor([_bank_index(category)]))
        return Scores(score.numpy().astype(np.float64), maps=maps.numpy())

    def onnx_feeds(self, batch: np.ndarray, category: int | None = None) -> dict[str, np.ndarray]:
        return {"image": batch, "category": np.array([_bank_index(category)], np.int64)}

    def from_onnx(self, outputs: list[np.ndarray]) -> Scores:
        return Scores(np.asarray(outputs[0]).astype(np.float64), maps=np.asarray(outputs[1]))

    def export(self, model: Any, path: Path, spec: InputSpec, opset: int = 18) -> str:
        import torch

        from ..core.layout import onnx_data

        big = model.banks.numel() * 4 > EXTERNAL_DATA_BYTES
        with torch.no_grad():
            torch.onnx.export(model.eval(), (torch.zeros(2, *spec.shape), torch.zeros(1, dtype=torch.int64)), str(path),
                              dynamo=True, external_data=big, opset_version=opset, input_names=["image", "category"],
                              output_names=list(self.onnx_outputs),
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1)}, None), verbose=False)
        where = f"; weights in {onnx_data(path.name)}" if big else ""
        return (f"torch.onnx.export(dynamo=True, opset {opset}) of helpers.models.patchcore.PatchCore, "
                f"torch {torch.__version__}{where}")


#: Above this many bytes of weights an ONNX file keeps them in ``<file>.data`` beside it (protobuf's 2 GB limit):
#: PatchCore's banks in the full profile can pass it.
EXTERNAL_DATA_BYTES = int(1.5 * 2**30)

SUPERVISED, SIMCLR, PROBE, MULTITASK, PATCHCORE = _Supervised(), _SimCLR(), _Probe(), _Multitask(), _PatchCore()
#: Every kind, by name.
KINDS: dict[str, ModelKind] = {k.name: k for k in (SUPERVISED, SIMCLR, PROBE, MULTITASK, PATCHCORE)}


def get(name: str) -> ModelKind:
    """The kind called ``name``; an unknown one is refused, naming the known ones."""
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}: this version knows {', '.join(KINDS)}")
    return KINDS[name]
