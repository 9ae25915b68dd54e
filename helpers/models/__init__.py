"""What a model is: the registry of model kinds and of backbones, and each model's network."""
from .._lazy import lazy_getattr, submodules

__all__ = submodules(__path__)
__getattr__ = lazy_getattr(__name__, __all__)
