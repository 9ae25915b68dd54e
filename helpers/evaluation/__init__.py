"""How results are measured: metrics, intervals, localisation against the masks, the published figures."""
from .._lazy import lazy_getattr, submodules

__all__ = submodules(__path__)
__getattr__ = lazy_getattr(__name__, __all__)
