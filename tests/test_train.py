"""The shared training loop and the PyTorch building blocks: values, not just shapes."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers.models import backbones, kinds
from helpers.models.classifiers import Classifier, LinearProbe, inverse_frequency_weights, supervised_head
from helpers.models.simclr import nt_xent
from helpers.training.loop import Resuming, Stepping, Stopping, fit

WORKER = Path(__file__).with_name("_resume_worker.py")


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """Direct computation: for each of the 2N views, -log(exp(s_pos/t) / sum over the 2N-1 others)."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2, n = len(z), len(z1)
    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        denom = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[pos]) / t) / denom)
    return total / n2


@pytest.mark.parametrize("t", [0.07, 0.5])
def test_nt_xent_matches_reference(t):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    assert float(nt_xent(z1, z2, t)) == pytest.approx(nt_xent_reference(z1, z2, t), rel=1e-5)
    # identical views give a lower loss than unrelated ones
    assert float(nt_xent(z1, z1 + 0.01, t)) < float(nt_xent(z1, z2, t))


def test_nt_xent_known_value():
    # two orthogonal pairs, t=1: each view's positive has cos 1, its two negatives cos 0
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = -math.log(math.e / (math.e + 2))
    assert float(nt_xent(z1, z1.clone(), 1.0)) == pytest.approx(expected, rel=1e-6)


def test_class_weights_and_head():
    w = inverse_frequency_weights([0, 0, 0, 1])
    assert w.tolist() == pytest.approx([4 / 6, 2.0])
    with pytest.raises(ValueError, match="no examples"):
        inverse_frequency_weights([0, 0])
    head = supervised_head(2048)
    layers = [type(m).__name__ for m in head]
    assert layers == ["Dropout", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear"]
    assert (head[1].in_features, head[1].out_features, head[5].out_features) == (2048, 512, 2)
    assert (head[0].p, head[4].p) == (0.5, 0.3)


def test_linear_probe_keeps_encoder_frozen():
    enc = nn.Sequential(nn.Linear(4, 2048), nn.BatchNorm1d(2048))
    enc.feature_dim = 2048
    probe = LinearProbe(enc)
    before = [p.clone() for p in enc.parameters()]
    opt = torch.optim.Adam([p for p in probe.parameters() if p.requires_grad], lr=0.1)
    probe.train()
    loss = nn.functional.cross_entropy(probe(torch.randn(16, 4)), torch.randint(0, 2, (16,)))
    loss.backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, enc.parameters()))
    assert not enc.training  # BatchNorm statistics are not updated


def _toy_loaders(n=256, shuffled=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    if shuffled:
        y = y[torch.randperm(n, generator=g)]
    ds = [{"image": xi, "label": yi} for xi, yi in zip(x, y)]
    return torch.utils.data.DataLoader(ds[:192], batch_size=16, shuffle=True, generator=torch.Generator()), ds[192:]


def test_fit_learns_early_stops_and_restores_best():
    torch.manual_seed(0)
    loader, val = _toy_loaders()
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    xs = torch.stack([v["image"] for v in val]); ys = torch.stack([v["label"] for v in val])
    ce = nn.CrossEntropyLoss()
    res = fit(model, opt, loader, lambda m, b: ce(m(b["image"]), b["label"]),
              lambda m: {"val_loss": float(ce(m(xs), ys))}, epochs=40, stopping=Stopping(patience=3), progress=False)
    h = res.history
    assert h["val_loss"].iloc[0] > 2 * h["val_loss"].min()           # it learned
    assert res.stopped_early and len(h) < 40
    with torch.no_grad():
        assert float(ce(model(xs), ys)) == pytest.approx(h["val_loss"].min(), rel=1e-6)  # best weights restored
    assert res.best_epoch == int(h["val_loss"].idxmin()) + 1


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(synthetic_root, tmp_path):
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1")
    epochs = 6
    straight = tmp_path / "straight"
    straight.mkdir()
    subprocess.run([sys.executable, str(WORKER), str(synthetic_root), str(straight), str(epochs)],
                   check=True, env=env, timeout=600)
    killed = tmp_path / "killed"
    killed.mkdir()
    proc = subprocess.Popen([sys.executable, str(WORKER), str(synthetic_root), str(killed), str(epochs)], env=env)
    ckpt, k = killed / "ckpt.pt", None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                k = torch.load(ckpt, weights_only=False)["epoch"]
            except Exception:  # noqa: BLE001 - being replaced right now
                k = None
            if k is not None and k >= 1:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the worker finished before it could be killed"
    assert not (killed / "result.json").exists()
    k = torch.load(ckpt, weights_only=False)["epoch"]
    assert k < epochs - 1
    # reopened on a "fresh runtime": only the checkpoint's folder survives; the image cache is rebuilt elsewhere
    subprocess.run([sys.executable, str(WORKER), str(synthetic_root), str(killed), str(epochs),
                    str(tmp_path / "fresh-runtime-cache")], check=True, env=env, timeout=600)
    assert any((tmp_path / "fresh-runtime-cache").iterdir())
    a = json.loads((straight / "result.json").read_text())
    b = json.loads((killed / "result.json").read_text())
    assert b["resumed_from"] == k            # continued at k+1, not from scratch
    assert a["resumed_from"] is None
    assert a["history"] == b["history"]       # identical epochs, losses and learning rates
    assert a["auroc"] == b["auroc"] and a["best_epoch"] == b["best_epoch"]
    assert len(a["history"]["epoch"]) == epochs and np.isfinite(a["history"]["train_loss"]).all()


def test_saved_model_reloads_and_scores_the_same(tmp_path):
    from helpers.data import preprocessing
    from helpers.models import backbones

    torch.manual_seed(0)
    model = Classifier(backbones.build("resnet50", "random"))
    trainable = {".".join(n.split(".")[:3]) if n.startswith("backbone") else n.split(".")[0]
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"backbone.stages.stride16", "backbone.stages.stride32", "head"}   # ResNet's layer3, layer4
    model.eval()
    entry = backbones.get("resnet50")
    spec = kinds.SUPERVISED.input_spec(32, entry.mean, entry.std)
    rng = np.random.default_rng(0)
    batch = preprocessing.batch(spec, [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(3)])
    direct = kinds.SUPERVISED.score(model, batch).defect
    path = kinds.SUPERVISED.save(model, tmp_path / "m.pt", backbone="resnet50", image_size=32)
    again = kinds.SUPERVISED.score(kinds.SUPERVISED.load(path)[0], batch).defect
    assert direct.shape == (3,) and ((direct > 0) & (direct < 1)).all()
    np.testing.assert_allclose(again, direct, rtol=1e-5)


class _Payload:
    """What a crafted .pt carries: unpickling it calls ``open(marker, "w")`` — code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_no_code_runs_from_a_model_file_or_a_checkpoint(tmp_path):
    model = Classifier(backbones.build("resnet50", "random"))
    good = kinds.SUPERVISED.save(model, tmp_path / "model.pt", backbone="resnet50", image_size=64, weights="none")
    kinds.SUPERVISED.load(good)                                            # a real model still loads
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"kind": kinds.SUPERVISED.name, "state_dict": model.state_dict(), "image_size": 64,
                "note": _Payload(marker)}, evil)
    with pytest.raises(ValueError, match="Refusing to load model file .*evil.pt: it holds more than weights"):
        kinds.SUPERVISED.load(evil)
    assert not marker.exists()                                             # the payload did not run
    head = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": head.state_dict(), "optimizer": opt.state_dict(), "epoch": 0, "x": _Payload(marker)}, ckpt)
    loader = torch.utils.data.DataLoader([{"image": torch.randn(8, 4), "label": torch.randint(0, 2, (8,))}],
                                         batch_size=None)
    with pytest.raises(ValueError, match="Refusing to load checkpoint .*ckpt.pt.*Move it aside"):
        fit(head, opt, loader, lambda m, b: torch.nn.functional.cross_entropy(m(b["image"]), b["label"]),
            lambda m: {"val_loss": 0.0}, 2, resuming=Resuming(ckpt), stepping=Stepping(clip_grad=None), progress=False)
    assert not marker.exists()


def _linear_fit(ckpt, epochs: int, **kwargs):
    """A one-batch linear model trained by :func:`fit` with a checkpoint (the same model each call)."""
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 2)
    loader = torch.utils.data.DataLoader([{"image": torch.randn(8, 4), "label": torch.randint(0, 2, (8,))}],
                                         batch_size=None)
    step = lambda m, b: torch.nn.functional.cross_entropy(m(b["image"]), b["label"])  # noqa: E731
    fingerprint = kwargs.pop("fingerprint", None)
    return fit(head, torch.optim.SGD(head.parameters(), lr=0.1), loader, step, lambda m: {"val_loss": 0.0}, epochs,
               resuming=Resuming(ckpt, fingerprint), stepping=Stepping(clip_grad=None), **{"progress": False, **kwargs})


def test_a_checkpoint_of_another_recipe_is_not_resumed_and_a_finished_one_is_reused(tmp_path, capsys):
    ckpt = tmp_path / "ckpt.pt"
    run = lambda fp, **kw: _linear_fit(ckpt, 3, progress=True, fingerprint=fp, **kw)  # noqa: E731
    run("recipe-a", stop_after=1)                                             # interrupted after epoch 1
    other = run("recipe-b", stop_after=1)
    assert other.resumed_from is None and "another recipe or split" in capsys.readouterr().out
    same = run("recipe-b")                                                    # resumes its own, finishes
    assert same.resumed_from == 0 and len(same.history) == 3
    capsys.readouterr()
    reused = run("recipe-b")
    assert reused.resumed_from == 2 and len(reused.history) == 3
    assert "already finished" in capsys.readouterr().out


def test_a_damaged_checkpoint_is_named_with_the_way_out(tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    _linear_fit(ckpt, 1)
    assert _linear_fit(ckpt, 2).resumed_from == 0                          # a real checkpoint loads weights-only
    ckpt.write_bytes(ckpt.read_bytes()[:200])                              # truncated
    with pytest.raises(ValueError, match=r"Checkpoint .*ckpt.pt is damaged.*Move it aside"):
        _linear_fit(ckpt, 3)


def test_frozen_stages_keep_their_batchnorm_statistics():
    """01 freezes the stem and the stride-4 and stride-8 stages (ResNet's conv1/bn1/layer1/layer2): their running
    statistics must not move while the rest trains."""
    torch.manual_seed(0)
    model = Classifier(backbones.build("resnet50", "random"))
    stages = model.backbone.stages
    frozen = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(tuple(f"backbone.stages.{s}." for s in ("stem", "stride4", "stride8")))}
    trained = {k: v.clone() for k, v in model.state_dict().items()
               if k.startswith("backbone.stages.stride16.") and "running" in k}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model.train()
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32) * 3 + 1), torch.tensor([0, 1, 0, 1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in frozen.items())                    # frozen means frozen
    assert not all(torch.equal(v, state[k]) for k, v in trained.items())               # layer3 does learn
    assert model.training and stages["stride16"].training and not stages["stride4"].training


def test_out_of_gpu_memory_says_what_to_change(tmp_path):
    """Simulated (no GPU here): the step raises torch's CUDA out-of-memory error, as on a too-small GPU."""
    from helpers.errors import OutOfMemoryError

    def step(m, b):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    head = torch.nn.Linear(4, 2)
    loader = torch.utils.data.DataLoader([{"image": torch.randn(8, 3, 4, 4), "label": torch.zeros(8, dtype=torch.long)}],
                                         batch_size=None)
    with pytest.raises(OutOfMemoryError, match=r"(?s)batch 1 of epoch 1/2 \(a batch of 8×3×4×4 per process.*"
                                               r"not shrunk silently.*PROFILE = 'quick'.*torchrun"):
        fit(head, torch.optim.SGD(head.parameters(), lr=0.1), loader, step, lambda m: {"val_loss": 0.0}, 2,
            progress=False)


def test_mixed_precision_steps_learn_with_the_loss_scale_and_clipping_and_stay_off_on_a_cpu():
    """The float16 path a CUDA GPU takes (autocast + GradScaler, gradients unscaled before clipping), run on the CPU:
    it learns a separable problem as float32 does; the workflows ask for it on a CUDA device only."""
    from helpers.training.loop import mixed_precision_on

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = (x[:, 0] > 0).long()
    loader = torch.utils.data.DataLoader([{"image": x, "label": y}], batch_size=None)
    ce = nn.CrossEntropyLoss()
    losses = {}
    for amp in (False, True):
        torch.manual_seed(0)
        head = nn.Linear(8, 2)
        res = fit(head, torch.optim.SGD(head.parameters(), lr=0.5), loader, lambda m, b: ce(m(b["image"]), b["label"]),
                  lambda m: {"val_loss": float(ce(m(x), y))}, 30, stepping=Stepping(clip_grad=1.0, mixed_precision=amp),
                  progress=False)
        losses[amp] = res.history["val_loss"]
    assert losses[True].iloc[-1] < 0.5 * losses[True].iloc[0]                 # it learns under the loss scale
    assert abs(losses[True].iloc[-1] - losses[False].iloc[-1]) < 0.05         # as float32 does
    assert not mixed_precision_on(torch.device("cpu"), True) and not mixed_precision_on(torch.device("cuda"), False)
    assert mixed_precision_on(torch.device("cuda"), True)
