"""The registry of model kinds: each kind says once how it is saved and loaded, what its input is, how it scores,
where Grad-CAM looks, which features it shows and how it exports. Everything else dispatches through it.

A kind's name is written into its model file and model card; it appears in this module and nowhere else
(``tests/test_layers.py`` checks it). The kinds:

======================  =========  ===================================================================
kind                    framework  the model
======================  =========  ===================================================================
``supervised``          torch      a backbone + study 000's head, fine-tuned on the labels (notebook 01)
``simclr``              torch      an encoder + projection head, pretrained with NT-Xent (notebook 02; not scored)
``probe``               torch      SimCLR's frozen encoder + Linear(feature_dim, 2) (notebook 03)
``multitask``           keras      study 001's CNN: category and defect heads (notebook 04)
``multitask_imagenet``  keras      the same heads on a frozen ImageNet EfficientNet-Lite0 (notebook 04, ``imagenet/``)
``patchcore``           torch      per-category memory banks on an ImageNet backbone (notebook 06)
======================  =========  ===================================================================
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

import numpy as np

from ..core import layout
from ..data.preprocessing import InputSpec
from .model_files import check_patchcore_state, check_state, feature_width, refuse_file, torch_blob

if TYPE_CHECKING:
    from torch import nn

    from ..explain.gradcam import CamSetting
    from .classifiers import Classifier, LinearProbe
    from .patchcore import PatchCore
    from .simclr import SimCLR

#: The model a kind holds (a torch module of its class; a Keras model, which the type checker sees as Any).
M = TypeVar("M")

__all__ = ["ModelOutput", "ReportRow", "ModelKind", "KINDS", "SUPERVISED", "SIMCLR", "PROBE", "MULTITASK",
           "MULTITASK_IMAGENET", "PATCHCORE",
           "get", "register", "deployable", "deployable_notebooks", "recorded_backbone", "refuse_file"]


@dataclass(frozen=True)
class ReportRow:
    """One row a kind's notebook gives the comparison report (07): the scores file it reads, the row's label, how the
    approach was trained, whether its scores are distances on a scale of their own per category (then it gets a
    threshold per category and its scores are normalised per category) and whether it learnt from no defect label
    (a one-class reference for notebook 09's label budgets)."""

    file: str
    label: str
    trained_with: str
    per_category: bool = False
    one_class: bool = False


@dataclass
class ModelOutput:
    """What a model says about a batch: defect scores (N), category probabilities (N×C, models with a category head)
    and anomaly maps (N×H×W, models that localise)."""

    defect: np.ndarray
    categories: np.ndarray | None = None
    maps: np.ndarray | None = None


class ModelKind(Generic[M]):
    """How one kind of model (``M``) is saved, loaded, fed, scored, explained and exported. Subclasses fill it in;
    the defaults are a torch classifier's."""

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
    #: the notebook that trains it (its stem, :mod:`helpers.core.layout`), and the file it saves there
    notebook: ClassVar[str]
    model_file: ClassVar[str] = "model.pt"
    #: its folder when its notebook trains more than one model (one of :data:`helpers.core.layout.SUBFOLDERS`)
    subfolder: ClassVar[str | None] = None
    #: its folder is a model folder (model + card): ``export``, ``predict``, ``serve`` and notebook 08 take it
    deployable: ClassVar[bool] = True
    #: notebook 05 shows its features (t-SNE) and, where it has :meth:`gradcam`, its class-activation maps
    explained: ClassVar[bool] = True
    #: the rows of the comparison report (07) its notebook's outputs give
    report_rows: ClassVar[tuple[ReportRow, ...]] = ()
    #: the module of :mod:`helpers.workflows` whose ``command(prepared, progress, mirrored, backbone) -> str`` trains
    #: it (``python -m helpers train <name>``; ``module:function`` names another function); None: not trained by a
    #: command
    workflow: ClassVar[str | None] = None

    @property
    def folder(self) -> str:
        """Its model folder under ``RUNS_DIR`` (a :mod:`helpers.core.layout` stem): its notebook's, or its own."""
        return self.subfolder or self.notebook

    def input_spec(self, image_size: int, mean: Any = None, std: Any = None, resize: int | None = None) -> InputSpec:
        """The model's input (:mod:`helpers.data.preprocessing`): NCHW, normalised with the backbone's mean/std."""
        return InputSpec(image_size, resize or image_size, "NCHW", (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]))

    # --- files ---------------------------------------------------------------------------------------------------
    def save(self, model: M, path: str | os.PathLike, **meta: Any) -> Path:
        """A torch model's weights and what rebuilds them (``meta``: ``backbone``, ``image_size``, ...)."""
        import torch

        from ..core import files

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with files.atomic_path(path) as tmp:
            torch.save({"kind": self.name, "state_dict": _module(model).state_dict(), **meta}, tmp)
        return path

    def load(self, path: str | os.PathLike) -> tuple[M, dict[str, Any]]:
        """The model saved at ``path`` (weights only: no code in the file runs; nothing is downloaded) and its
        metadata, in eval mode on the CPU."""
        blob = torch_blob(path, self)
        try:
            model = self.build(blob)
        except (KeyError, ValueError, TypeError) as err:
            raise refuse_file(path, f"it does not describe a {self.title} this version can build ({err})") from None
        check_state(path, blob.get("state_dict"), _module(model).state_dict())
        _module(model).load_state_dict(blob["state_dict"])
        _module(model).eval()
        return model, {k: v for k, v in blob.items() if k != "state_dict"}

    def build(self, meta: dict[str, Any]) -> M:
        """An untrained model of the shape ``meta`` describes, to load weights into."""
        raise NotImplementedError

    # --- scoring ---------------------------------------------------------------------------------------------------
    def score(self, model: M, batch: np.ndarray, category: int | None = None) -> ModelOutput:
        """The framework's scores of a preprocessed batch (``category``: its index, for per-category models)."""
        import torch

        from .classifiers import defect_probability

        with torch.no_grad():
            return ModelOutput(defect_probability(_module(model)(torch.from_numpy(batch))).numpy().astype(np.float64))

    def onnx_feeds(self, batch: np.ndarray, category: int | None = None) -> dict[str, np.ndarray]:
        """The ONNX graph's inputs for a preprocessed batch."""
        return {"image": batch}

    def from_onnx(self, outputs: list[np.ndarray]) -> ModelOutput:
        """:class:`ModelOutput` from the ONNX graph's outputs (:attr:`onnx_outputs`)."""
        return ModelOutput(np.asarray(outputs[0]).reshape(-1).astype(np.float64))

    def export(self, model: M, path: Path, spec: InputSpec, opset: int = 18) -> str:
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
            torch.onnx.export(Probability(_module(model)).eval(), (torch.zeros(2, *spec.shape),), str(path), dynamo=True,
                              external_data=False, opset_version=opset, input_names=["image"], output_names=["score"],
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False)
        return f"torch.onnx.export(dynamo=True, opset {opset}), torch {torch.__version__}"

    # --- explaining ------------------------------------------------------------------------------------------------
    def gradcam(self, model: M, batch: np.ndarray, setting: CamSetting | None = None) -> np.ndarray | None:
        """Class-activation maps toward "defective" (N×H×W in [0, 1]; ``setting``: how, default the series'
        :class:`helpers.explain.gradcam.CamSetting`); None for a model without a classifier."""
        return None

    def features(self, model: M, batch: np.ndarray) -> np.ndarray | None:
        """The features t-SNE shows (N×D); None for a model whose features are shown elsewhere."""
        return None

    def weights_outside_file(self, model: M) -> int:
        """Bytes of weights the model uses that its file does not hold (they come with a package)."""
        return 0


def _module(model: Any) -> nn.Module:
    """A torch kind's model, for the defaults of :class:`ModelKind` (which a Keras kind overrides)."""
    return cast("nn.Module", model)


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


class _Supervised(ModelKind["Classifier"]):
    name, title = "supervised", "supervised classifier"
    notebook, workflow = layout.SUPERVISED, "supervised"
    report_rows = (ReportRow(layout.SCORES, "Supervised classifier", "supervised on every train label"),)

    def build(self, meta: dict[str, Any]) -> Classifier:
        from .classifiers import Classifier

        return Classifier(_backbone(meta))

    def gradcam(self, model: Classifier, batch: np.ndarray, setting: CamSetting | None = None) -> np.ndarray:
        return _torch_gradcam(model, model.backbone, batch, setting)

    def features(self, model: Classifier, batch: np.ndarray) -> np.ndarray:
        """The head's hidden layer (Linear → ReLU → BatchNorm: what its last layer separates), our choice over the
        pooled backbone features, which a classifier is not trained to arrange."""
        from torch import nn

        return _torch_features(nn.Sequential(model.backbone, *list(model.head)[:4]), batch)


class _SimCLR(ModelKind["SimCLR"]):
    name, title, scored = "simclr", "SimCLR encoder", False
    notebook, model_file, workflow, deployable = layout.SIMCLR, "simclr.pt", "simclr", False

    def build(self, meta: dict[str, Any]) -> SimCLR:
        from .simclr import SimCLR

        return SimCLR(_backbone(meta))

    def features(self, model: SimCLR, batch: np.ndarray) -> np.ndarray:
        return _torch_features(model.encoder, batch)


class _Probe(ModelKind["LinearProbe"]):
    name, title = "probe", "linear probe"
    notebook, workflow = layout.PROBE, "probe"
    report_rows = (
        ReportRow(layout.SCORES, "SimCLR + linear probe",
                  "SimCLR on train's good images (picked by label), probe on 10% of train labels"),
        *(ReportRow(layout.knn_scores(k), f"SimCLR kNN (k={k})", "SimCLR; bank of train's good images (picked by label)",
                    per_category=True, one_class=True) for k in (1, 5)))

    def build(self, meta: dict[str, Any]) -> LinearProbe:
        from .classifiers import LinearProbe

        return LinearProbe(_backbone(meta))

    def gradcam(self, model: LinearProbe, batch: np.ndarray, setting: CamSetting | None = None) -> np.ndarray:
        return _torch_gradcam(model, model.encoder, batch, setting)


class _Multitask(ModelKind[Any]):        # a keras.Model (Any to the type checker)
    name, title, framework, category_head = "multitask", "Keras multi-task CNN", "keras", True
    notebook, model_file, workflow = layout.MULTITASK, "model.keras", "multitask"
    report_rows = (ReportRow(layout.SCORES, "Keras multi-task CNN", "supervised on every train label (defect and category)"),)
    onnx_outputs = ("defect", "category")
    #: the network it holds (:data:`helpers.models.multitask.NETWORKS`)
    network: ClassVar[str] = "study"

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
        from .multitask import network

        allowed = network(self.network).layers
        layers = {type(layer).__name__ for layer in model.layers}
        if not layers <= allowed:
            unknown = ", ".join(sorted(layers - allowed))
            raise refuse_file(path, f"it holds layers the {self.title}'s network does not ({unknown})")
        if set(model.output_names if hasattr(model, "output_names") else []) - {"category", "defect"}:
            raise refuse_file(path, f"its outputs are {model.output_names}, not 'category' and 'defect'")
        return model, {}

    def score(self, model: Any, batch: np.ndarray, category: int | None = None) -> ModelOutput:
        out = model(batch, training=False)
        return ModelOutput(np.asarray(out["defect"]).reshape(-1).astype(np.float64), np.asarray(out["category"]))

    def from_onnx(self, outputs: list[np.ndarray]) -> ModelOutput:
        return ModelOutput(np.asarray(outputs[0]).reshape(-1).astype(np.float64), np.asarray(outputs[1]))

    def export(self, model: Any, path: Path, spec: InputSpec, opset: int = 18) -> str:
        import keras

        model(np.zeros((1, *spec.shape), np.float32), training=False)    # export needs a model that has been called
        with warnings.catch_warnings():       # keras's tf2onnx shim probes np.object: NumPy's FutureWarning, not ours
            warnings.filterwarnings("ignore", message=r"In the future `np.object`", category=FutureWarning)
            model.export(str(path), format="onnx", verbose=False)
        return f"keras Model.export(format='onnx') (tf2onnx), keras {keras.__version__}"

    def gradcam(self, model: Any, batch: np.ndarray, setting: CamSetting | None = None) -> np.ndarray:
        from ..explain.gradcam import CamSetting, keras_gradcam
        from .multitask import network

        setting = setting or CamSetting()
        return keras_gradcam(model, batch, conv_layer=network(self.network).cam_layers, method=setting.method,
                             views=setting.views)

    def features(self, model: Any, batch: np.ndarray) -> np.ndarray:
        from ..explain.features import keras_features
        from .multitask import SHARED_DENSE

        return keras_features(model, batch, layer=SHARED_DENSE)


class _MultitaskImageNet(_Multitask):
    name, title, network = "multitask_imagenet", "Keras multi-task, ImageNet backbone", "imagenet"
    subfolder, workflow = layout.MULTITASK_IMAGENET, "multitask:command_imagenet"
    report_rows = (ReportRow(layout.SCORES, "Keras multi-task (ImageNet backbone)",
                             "supervised on every train label (defect and category); backbone frozen"),)


class _PatchCore(ModelKind["PatchCore"]):
    name, title, per_category = "patchcore", "PatchCore", True
    notebook, explained = layout.PATCHCORE, False
    report_rows = (ReportRow(layout.SCORES, "PatchCore", "one-class; bank of train's good images (picked by label)",
                             per_category=True, one_class=True),)
    onnx_outputs = ("score", "map")

    def input_spec(self, image_size: int, mean: Any = None, std: Any = None, resize: int | None = None) -> InputSpec:
        return InputSpec(image_size, resize or image_size, "NCHW")      # [0, 1]: the backbone normalises inside

    def save(self, model: PatchCore, path: str | os.PathLike, **meta: Any) -> Path:
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

    def load(self, path: str | os.PathLike) -> tuple[PatchCore, dict[str, Any]]:
        from .patchcore import PatchCore, PatchFeatures

        blob = torch_blob(path, self)
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
        state = check_patchcore_state(path, blob.get("state"), categories, feature_width(features))
        for category, bank in state["banks"].items():
            model.set_bank(category, bank)
        model.thresholds.copy_(state["thresholds"])
        model.spans.copy_(state["spans"])
        return model.eval(), {k: v for k, v in blob.items() if k != "state"}

    def weights_outside_file(self, model: PatchCore) -> int:
        return sum(t.numel() * t.element_size() for t in model.features.net.state_dict().values())

    def score(self, model: PatchCore, batch: np.ndarray, category: int | None = None) -> ModelOutput:
        import torch

        score, maps = model(torch.from_numpy(batch), torch.tensor([_bank_index(category)]))
        return ModelOutput(score.numpy().astype(np.float64), maps=maps.numpy())

    def onnx_feeds(self, batch: np.ndarray, category: int | None = None) -> dict[str, np.ndarray]:
        return {"image": batch, "category": np.array([_bank_index(category)], np.int64)}

    def from_onnx(self, outputs: list[np.ndarray]) -> ModelOutput:
        return ModelOutput(np.asarray(outputs[0]).astype(np.float64), maps=np.asarray(outputs[1]))

    def export(self, model: PatchCore, path: Path, spec: InputSpec, opset: int = 18) -> str:
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

SUPERVISED, SIMCLR, PROBE, PATCHCORE = _Supervised(), _SimCLR(), _Probe(), _PatchCore()
MULTITASK, MULTITASK_IMAGENET = _Multitask(), _MultitaskImageNet()
#: Every kind, by name.
KINDS: dict[str, ModelKind] = {k.name: k for k in (SUPERVISED, SIMCLR, PROBE, MULTITASK, MULTITASK_IMAGENET, PATCHCORE)}


def register(kind: ModelKind) -> ModelKind:
    """Add a kind to the registry (:data:`KINDS`): every list of kinds — the report's rows, the model folders, the
    models notebook 05 explains, ``train``'s choices, the CLI's help — is read from here. A name is registered once."""
    if kind.name in KINDS:
        raise ValueError(f"model kind {kind.name!r} is registered already")
    KINDS[kind.name] = kind
    return kind


def deployable() -> tuple[ModelKind, ...]:
    """The kinds whose notebook folder is a model folder (a model and its card), in notebook order."""
    return tuple(sorted((k for k in KINDS.values() if k.deployable), key=lambda k: k.folder))


def deployable_notebooks() -> str:
    """``01, 03, 04 or 06``: the notebooks that leave a model folder, for messages and help."""
    numbers = list(dict.fromkeys(k.notebook[:2] for k in deployable()))
    return ", ".join(numbers[:-1]) + f" or {numbers[-1]}" if len(numbers) > 1 else "".join(numbers)


def get(name: str) -> ModelKind:
    """The kind called ``name``; an unknown one is refused, naming the known ones."""
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}: this version knows {', '.join(KINDS)}")
    return KINDS[name]
