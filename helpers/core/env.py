"""The runtime: Colab or not, library versions, seeds, and how torch and TensorFlow share a machine.

torch and TensorFlow can live in one kernel (notebook 05 uses both). Left alone, TensorFlow maps all
GPU memory at start-up and both frameworks start one thread per core each. :func:`configure_frameworks`
turns on TensorFlow's GPU memory growth and caps both frameworks' CPU threads to the cores available.
"""
from __future__ import annotations

import importlib
import os
import platform
import random
import sys
from typing import Any

import numpy as np

__all__ = ["IS_COLAB", "LIBRARIES", "versions", "print_versions", "seed_everything", "cpu_threads", "io_workers",
           "code_version", "device_info", "runtime_notice",
           "load_torch_before_tensorflow", "configure_frameworks", "torch_device", "loud_warning"]

IS_COLAB = "google.colab" in sys.modules

#: Distribution name -> import name of every library the series reports.
LIBRARIES: dict[str, str] = {
    "numpy": "numpy", "pandas": "pandas", "scikit-learn": "sklearn", "matplotlib": "matplotlib",
    "seaborn": "seaborn", "pillow": "PIL", "albumentations": "albumentations", "torch": "torch",
    "torchvision": "torchvision", "tensorflow": "tensorflow", "keras": "keras", "grad-cam": "pytorch_grad_cam",
    "ipywidgets": "ipywidgets", "tqdm": "tqdm",
}


def versions(names: list[str] | None = None, import_missing: bool = False) -> dict[str, str]:
    """Versions of the reported libraries.

    Args:
        names: distribution names to report (default: all of :data:`LIBRARIES`).
        import_missing: import libraries not yet imported (slow for torch/TF); otherwise a library
            not yet imported is reported from its installed metadata.
    """
    from importlib import metadata

    out: dict[str, str] = {"python": platform.python_version()}
    for dist in names or list(LIBRARIES):
        module = LIBRARIES.get(dist, dist)
        if module in sys.modules or import_missing:
            try:
                mod = importlib.import_module(module)
                out[dist] = str(getattr(mod, "__version__", "?"))
                continue
            except ImportError:
                pass
        try:
            out[dist] = metadata.version(dist if dist != "tensorflow" else _tf_dist())
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _tf_dist() -> str:
    from importlib import metadata

    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            metadata.version(dist)
            return dist
        except metadata.PackageNotFoundError:
            continue
    return "tensorflow"


def print_versions(names: list[str] | None = None) -> dict[str, str]:
    """Print (and return) the runtime: Colab or not, Python and library versions."""
    info = versions(names)
    where = "Google Colab" if IS_COLAB else f"{platform.system()} {platform.machine()}"
    print(f"Running on {where}; {os.cpu_count()} CPU cores")
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"  {key:<{width}}  {value}")
    return info


def runtime_notice(profile: str, colab: bool | None = None, cuda: bool | None = None) -> str:
    """One line on the accelerator and the profile; on Colab without a GPU, a banner saying how to get one.

    ``colab`` and ``cuda`` default to this runtime (tests pass them).
    """
    colab = IS_COLAB if colab is None else colab
    if cuda is not False:
        import torch

        if torch.cuda.is_available() if cuda is None else cuda:
            return f"GPU: {torch.cuda.get_device_name(0)} | profile: {profile}"
    if colab:
        bar = "!" * 100
        return (f"{bar}\nNO GPU on this Colab runtime: the profile fell back to '{profile}' (sizes and epochs cut "
                "for a CPU), not the published recipes.\nFor a GPU: Runtime → Change runtime type → T4 GPU → Save, "
                f"then run the notebook again from the top.\n{bar}")
    return f"No CUDA GPU: profile {profile!r} (set DEFECTS_PROFILE=full on a GPU for the published recipes)"


def seed_everything(seed: int = 42) -> None:
    """Seed Python, NumPy, and torch/TensorFlow when they are already imported."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)


def cpu_threads() -> int:
    """Cores this process may use (respects affinity masks and cgroup-limited containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS/Windows
        return max(1, os.cpu_count() or 1)


def load_torch_before_tensorflow() -> None:
    """Import torch's compiled stack (torchvision.ops → triton) before TensorFlow is imported.

    With torch 2.14 (CUDA build, which ships triton) and TensorFlow 2.21 in one process, importing
    triton *after* TensorFlow crashes the interpreter (segmentation fault); in the other order both work.
    Every helpers module that imports TensorFlow calls this first (it also sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless set:
    TensorFlow's C++ INFO and WARNING lines are noise in a notebook; its errors still show). No-op without torch.
    """
    # TensorFlow's C++ logs INFO and WARNING lines (oneDNN, CPU features, device lookups, "Starting new session")
    # from the moment it is imported: set before the import, errors still show
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        return  # too late to fix the order here; torch-free TF use still works
    try:
        import torchvision.ops  # noqa: F401 - loads torch, torch._dynamo and triton
    except ImportError:
        pass


def configure_frameworks(threads: int | None = None) -> dict[str, Any]:
    """Make torch and TensorFlow good neighbours in one process; returns what was set.

    - TensorFlow: GPU memory growth on (no grabbing all GPU memory), intra/inter-op threads capped.
    - torch: intra-op threads capped; TF32 matmuls/convolutions on for Ampere+ GPUs.
    Call it before either framework does any work; calling it again is harmless.
    """
    threads = threads or cpu_threads()
    done: dict[str, Any] = {"threads": threads}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import torch

        torch.set_num_threads(threads)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        done["torch"] = {"num_threads": torch.get_num_threads(), "tf32": True}
    except ImportError:
        pass
    load_torch_before_tensorflow()
    try:
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # already initialised: setting can no longer change
                pass
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
        except RuntimeError:
            pass
        done["tensorflow"] = {"memory_growth": True,
                              "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                              "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    except ImportError:
        pass
    return done


def code_version() -> dict[str, Any]:
    """The code that produced a result: the package version and the git commit when the checkout has one."""
    import subprocess
    from pathlib import Path

    from .. import __version__

    commit, root = None, Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
            commit = (out.stdout.strip() or None) if out.returncode == 0 else None
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            commit = f"{commit}+local-changes" if commit and dirty else commit
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"package": __version__, "commit": commit}


def device_info() -> dict[str, Any]:
    """The machine that produced a result: GPU name (torch's view) or CPU, and the cores."""
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count(),
                            "gpu": None, "colab": IS_COLAB}
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def io_workers() -> int:
    """Threads for file I/O and decoding (scanning, cache building): twice the cores, at most 8."""
    return min(8, (os.cpu_count() or 1) * 2)


def torch_device():
    """The ``torch.device`` every PyTorch model runs on: ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def loud_warning(message: str) -> None:
    """A fallback nobody can miss: a ``RuntimeWarning`` and a banner in the output."""
    import warnings

    warnings.warn(message, RuntimeWarning, stacklevel=3)
    print("!" * 100 + f"\nWARNING: {message}\n" + "!" * 100)
