"""A T4 budget on paper for each training notebook's full recipe (issue 33), measured on the CPU.

For each notebook's full recipe (network, image size, batch size, trainable stages, optimiser), with the study's
networks at random weights (weights do not change cost) built exactly as the workflows build them:

- **memory of one training step**, the parts a GPU holds: parameters, gradients of the trainable ones, AdamW's two
  moments per trainable parameter, and the activations autograd saves for the backward pass — *measured* here with
  ``torch.autograd.graph.saved_tensors_hooks`` (the bytes of every tensor saved, deduplicated by storage) at a small
  batch and scaled linearly to the recipe's batch (activations are per image); plus a stated allowance for the CUDA
  context and cuDNN workspace. Keras (notebook 04): the same parts counted from the layers' output shapes.
- **FLOPs per training image**, measured with ``torch.utils.flop_counter.FlopCounterMode`` over forward + backward
  (frozen stages get no weight-gradient FLOPs) — Keras: counted from its convolution and dense shapes (×3 for
  forward + backward).
- **T4 time per epoch** = train images × FLOPs per image ÷ a stated sustained throughput.
- **with mixed precision** (the torch recipes' ``mixed_precision``, float16 autocast on a CUDA GPU): the activations
  measured again under ``torch.autocast("cpu", dtype=torch.float16)`` (what autocast stores in float16 there:
  convolution and matmul outputs), plus a float16 copy of the weights autocast caches; weights, gradients and AdamW's
  moments stay float32. Time: the float32 estimate ÷ :data:`T4_AMP_SPEEDUP`.

    .venv/bin/python benchmarks/t4_budget.py            # prints the table docs/benchmarks.md shows
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.utils.flop_counter import FlopCounterMode

#: NVIDIA T4 datasheet: 8.1 TFLOPS FP32 peak (65 FP16 with tensor cores). The series trains in FP32 (no AMP); a
#: T4 is Turing, so TF32 (Ampere and later) does not apply. Planned at half of peak: convolutions under cuDNN
#: usually sustain 40–60% of FP32 peak on mid-size batches.
T4_PEAK_FP32 = 8.1e12
T4_SUSTAINED = 0.5 * T4_PEAK_FP32
#: NVIDIA DeepLearningExamples, ResNet-50 v1.5 for PyTorch (README, "Inference performance: NVIDIA T4", batch 64–256):
#: 428 img/s in FP32, 1,165–1,198 img/s with mixed precision on one T4 — a ratio of about 2.8. That FP32 figure is
#: 428 × 8.2 GFLOPs = 3.5 TFLOPS, 43% of peak: the 50% planned above is of the same order.
T4_AMP_SPEEDUP = 2.8
T4_MEMORY = 15.0e9            # what the T4's 16 GB leaves to a process (nvidia-smi shows about 15.1 GiB usable)
CUDA_OVERHEAD = 0.8e9         # our allowance: CUDA context (~0.3–0.5 GB) + cuDNN workspace + allocator slack
MVTEC_TRAIN = 3426            # MVTec AD's images in the series' train split (docs/benchmarks.md, data pipeline)
MVTEC_TRAIN_GOOD = 2612       # its good ones (SimCLR's pretraining set: train's good images)
SMALL_BATCH = 4               # measured at this batch, scaled to the recipe's


def _saved_bytes(step) -> int:
    """Bytes of the tensors autograd saves during ``step()`` (deduplicated by storage)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            key = t.untyped_storage().data_ptr()
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except RuntimeError:
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


def _torch_case(name: str, model: torch.nn.Module, batch: int, size: int, views: int, loss_fn) -> dict:
    params = sum(p.numel() for p in model.parameters()) * 4
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) * 4
    model.train()

    def step(n: int = SMALL_BATCH) -> None:
        x = torch.randn(n * views, 3, size, size)
        loss_fn(model, x).backward()

    saved = _saved_bytes(step) / SMALL_BATCH
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.float16):
        saved_amp = _saved_bytes(step) / SMALL_BATCH
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops() / (SMALL_BATCH * views)      # per image seen (SimCLR: per view)
    t0 = time.time()
    step()
    cpu_s = (time.time() - t0) / (SMALL_BATCH * views)
    activations = saved * batch
    total = params + trainable + 2 * trainable + activations + CUDA_OVERHEAD
    total_amp = params * 1.5 + trainable + 2 * trainable + saved_amp * batch + CUDA_OVERHEAD
    return {"notebook": name, "batch": batch * views, "size": size, "params_gb": params / 1e9,
            "grads_gb": trainable / 1e9, "adam_gb": 2 * trainable / 1e9, "activations_gb": activations / 1e9,
            "peak_gb": total / 1e9, "activations_amp_gb": saved_amp * batch / 1e9, "peak_amp_gb": total_amp / 1e9,
            "gflops_per_image": flops / 1e9, "cpu_s_per_image": cpu_s}


def supervised() -> dict:
    from helpers.models import backbones
    from helpers.models.classifiers import Classifier
    from helpers.training.recipes import SupervisedRecipe

    r = SupervisedRecipe()
    model = Classifier(backbones.build("resnet50", "random"), batchnorm=r.batchnorm)
    loss = torch.nn.CrossEntropyLoss()
    return _torch_case("01 supervised (ResNet-50, stem–stride 8 frozen)", model, r.batch_size, r.image_size, 1,
                       lambda m, x: loss(m(x), torch.zeros(len(x), dtype=torch.long)))


def simclr() -> dict:
    from helpers.models import backbones
    from helpers.models.simclr import SimCLR, nt_xent
    from helpers.training.recipes import SimCLRRecipe

    r = SimCLRRecipe()
    model = SimCLR(backbones.build("resnet50", "random"))

    def loss(m, x):
        z = m(x)
        half = len(z) // 2
        return nt_xent(z[:half], z[half:], r.temperature)

    return _torch_case("02 SimCLR (ResNet-50, all trainable, 2 views)", model, r.batch_size, r.image_size, 2, loss)


def probe() -> dict:
    """Notebook 03 trains Linear(2048, 2) on features computed once under no_grad: memory is one forward batch."""
    from helpers.models import backbones
    from helpers.training.recipes import ProbeRecipe

    r = ProbeRecipe()
    net = backbones.build("resnet50", "random").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.randn(SMALL_BATCH, 3, r.image_size, r.image_size))
    params = sum(p.numel() for p in net.parameters()) * 4
    return {"notebook": "03 probe (frozen ResNet-50 features, then a linear layer)", "batch": r.batch_size,
            "size": r.image_size, "params_gb": params / 1e9, "grads_gb": 0.0, "adam_gb": 0.0,
            "activations_gb": 0.0, "peak_gb": (params + CUDA_OVERHEAD) / 1e9 + 0.5,
            "gflops_per_image": counter.get_total_flops() / SMALL_BATCH / 1e9, "cpu_s_per_image": float("nan")}


def keras_cnn() -> dict:
    """Study 001's CNN, counted from its layers (the same parts as the torch rows)."""
    from helpers.training.recipes import KerasRecipe

    r = KerasRecipe()
    from helpers.models.multitask import build_multitask

    model = build_multitask(15, r.image_size)
    params = model.count_params() * 4
    act, flops = 0, 0
    for layer in model.layers:
        shape = layer.output.shape if hasattr(layer, "output") else None
        if shape is None or isinstance(shape, list):
            continue
        n = 1
        for d in shape[1:]:
            n *= int(d)
        act += n * 4
        kind = type(layer).__name__
        if kind == "Conv2D":
            k, cin = layer.kernel.shape[0] * layer.kernel.shape[1], layer.kernel.shape[2]
            flops += 2 * k * cin * n
        elif kind == "Dense":
            flops += 2 * layer.kernel.shape[0] * n
    activations = act * r.batch_size
    total = 4 * params + activations + CUDA_OVERHEAD
    return {"notebook": "04 Keras multi-task CNN (study 001, from scratch)", "batch": r.batch_size,
            "size": r.image_size, "params_gb": params / 1e9, "grads_gb": params / 1e9, "adam_gb": 2 * params / 1e9,
            "activations_gb": activations / 1e9, "peak_gb": total / 1e9, "gflops_per_image": 3 * flops / 1e9,
            "cpu_s_per_image": float("nan")}


def main() -> None:
    import pandas as pd

    torch.manual_seed(0)
    torch.set_num_threads(2)
    rows = [supervised(), simclr(), probe(), keras_cnn()]
    table = pd.DataFrame(rows)
    images = {"01": MVTEC_TRAIN, "02": MVTEC_TRAIN_GOOD * 2, "03": MVTEC_TRAIN, "04": MVTEC_TRAIN}
    table["t4_s_per_epoch"] = [images[r["notebook"][:2]] * r["gflops_per_image"] * 1e9 / T4_SUSTAINED for r in rows]
    amp = table["peak_amp_gb"].notna()              # 03 and 04 train in float32 (the probe's step is a linear layer)
    table["t4_s_per_epoch_amp"] = (table["t4_s_per_epoch"] / T4_AMP_SPEEDUP).where(amp)
    table["fits_t4"] = table["peak_gb"] * 1e9 < T4_MEMORY
    pd.set_option("display.width", 250)
    print(table.round(3).to_string(index=False))
    print(f"\nT4: {T4_PEAK_FP32 / 1e12:.1f} TFLOPS FP32 peak, planned at {T4_SUSTAINED / 1e12:.2f} sustained; "
          f"{T4_MEMORY / 1e9:.0f} GB usable; CUDA allowance {CUDA_OVERHEAD / 1e9:.1f} GB. Activations measured at batch "
          f"{SMALL_BATCH} and scaled.")


if __name__ == "__main__":
    main()
