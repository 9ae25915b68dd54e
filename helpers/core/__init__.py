"""Settings and the runtime: profiles, locations, Colab, atomic files, torchrun."""
from .._lazy import lazy_getattr, submodules

__all__ = submodules(__path__)
__getattr__ = lazy_getattr(__name__, __all__)
