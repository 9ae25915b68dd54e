"""Explanations as arrays: Grad-CAM maps and learned features (arrays in, arrays out; drawing is in viz)."""
from .._lazy import lazy_getattr, submodules

__all__ = submodules(__path__)
__getattr__ = lazy_getattr(__name__, __all__)
