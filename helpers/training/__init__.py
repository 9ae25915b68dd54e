"""How models learn: the PyTorch loop, checkpoints, schedules, Keras fitting and the published recipes."""
from .._lazy import lazy_getattr, submodules

__all__ = submodules(__path__)
__getattr__ = lazy_getattr(__name__, __all__)
