"""Every figure: data, training curves, test results, maps over images, features."""
from .._lazy import lazy_getattr, submodules

__all__ = submodules(__path__)
__getattr__ = lazy_getattr(__name__, __all__)
