"""Models outside the notebooks: ONNX export, one inferencer per backend, predict, checks, the inspector page."""
from .._lazy import lazy_getattr, submodules

__all__ = submodules(__path__)
__getattr__ = lazy_getattr(__name__, __all__)
