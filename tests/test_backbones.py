"""The backbone registry: every network cut into the same stages, and BACKBONE resolved the way the notebooks say —
the study's network when its ImageNet weights can be had (downloaded, or from torch's hub cache), else, loudly, the
offline stand-in; random weights only when asked for by name."""
from __future__ import annotations

import socket

import pytest
import torch

from helpers.errors import BackboneError
from helpers.models import backbones as B


@pytest.fixture()
def offline(monkeypatch):
    """No network at all (as in CI): any connection attempt fails at once."""
    def refuse(*args, **kwargs):
        raise OSError("network unreachable (test)")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("key", sorted(B.BACKBONES))
def test_every_backbone_has_the_same_stages_and_its_declared_width(key):
    net = B.build(key, "random")
    x = torch.zeros(2, 3, 64, 64)
    outs = net.stage_outputs(x, B.stage_names())
    assert [64 // o.shape[-1] for o in outs] == [4 if key != "efficientnet_lite0" else 2, 4, 8, 16, 32]
    with torch.no_grad():
        assert net.eval()(x).shape == (2, B.get(key).feature_dim)
    entry = B.get(key)
    assert set(entry.gradcam_stages) <= set(B.stage_names()) and set(entry.patchcore_stages) <= set(B.stage_names())


def test_frozen_stages_keep_weights_and_statistics():
    net = B.build("efficientnet_lite0", "random").freeze(["stem", "stride4", "stride8"])
    assert all(not p.requires_grad for s in ("stem", "stride4", "stride8") for p in net.stages[s].parameters())
    assert all(p.requires_grad for p in net.stages["stride16"].parameters())
    net.train()
    assert not net.stages["stride8"].training and net.stages["stride16"].training
    with pytest.raises(ValueError, match="unknown stages"):
        net.freeze(["layer3"])


def test_frozen_statistics_stay_put_while_the_batchnorm_scale_trains():
    """The supervised recipe's ``batchnorm="frozen"`` (EfficientNet-Lite0): a training step leaves every running
    statistic as it was and still trains BatchNorm's scale and shift; ``train`` statistics move."""
    from helpers.models.classifiers import Classifier

    torch.manual_seed(0)
    model = Classifier(B.build("efficientnet_lite0", "random"), batchnorm="frozen").train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in bns]
    model(torch.randn(4, 3, 64, 64)).sum().backward()
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, bns))
    assert bns[-1].weight.grad is not None and bns[-1].weight.grad.abs().sum() > 0
    moving = Classifier(B.build("efficientnet_lite0", "random")).train()
    last = [m for m in moving.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    start = last.running_mean.clone()
    moving(torch.randn(4, 3, 64, 64))
    assert not torch.equal(start, last.running_mean)
    with pytest.raises(ValueError, match="batchnorm"):
        Classifier(B.build("efficientnet_lite0", "random"), batchnorm="off")


def test_auto_offline_falls_back_loudly_to_the_stand_in_never_to_random(offline, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))          # an empty hub cache
    with pytest.warns(RuntimeWarning, match="OFFLINE STAND-IN"):
        choice, net = B.resolve("auto", "resnet50")
    assert choice.key == B.OFFLINE and choice.stand_in and choice.weights.startswith("ImageNet-1k")
    assert "ResNet-50" in choice.note and str(tmp_path) in choice.note and "resnet50-" in choice.note
    assert "!!!" in capsys.readouterr().out                     # the banner, in the notebook's output
    assert isinstance(net, B.StagedNet) and net.key == B.OFFLINE
    assert choice.as_dict()["study"] == "resnet50" and "EfficientNet-Lite0" in choice.describe()


def test_a_named_network_without_its_weights_is_an_error_that_says_how(offline, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BackboneError, match=r"(?s)BACKBONE='resnet18'.*resnet18-.*pth into .*hub.*checkpoints.*'auto'"):
        B.resolve("resnet18", "resnet50")
    with pytest.raises(BackboneError, match="expected 'auto' or one of"):
        B.resolve("vgg16", "resnet50")
    with pytest.raises(BackboneError, match="<key>:random"):
        B.resolve("resnet18:pretrained", "resnet50")


def test_the_hub_cache_provides_the_studys_weights_without_internet(offline, monkeypatch, tmp_path):
    """A factory network without internet: the weights file copied into torch's hub cache is used as it is."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import torchvision.models as tvm

    torch.manual_seed(3)
    source = tvm.resnet18(weights=None)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(source.state_dict(), cache / B.get("resnet18").weights_file)
    choice, net = B.resolve("auto", "resnet18")
    assert choice.key == "resnet18" and not choice.stand_in and choice.note == ""
    assert torch.equal(net.stages["stem"][0].weight, source.conv1.weight)      # the cached weights, loaded


def test_random_weights_only_when_asked_by_name():
    with pytest.warns(RuntimeWarning, match="RANDOM weights, as asked"):
        choice, net = B.resolve("resnet18:random", "resnet50")
    assert choice.key == "resnet18" and choice.weights.startswith("random")
