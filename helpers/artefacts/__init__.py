"""What a run leaves on disk: the RUNS_DIR layout and every file name, metrics.json, the model card."""
from .._lazy import lazy_getattr, submodules

__all__ = submodules(__path__)
__getattr__ = lazy_getattr(__name__, __all__)
