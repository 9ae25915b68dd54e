"""The images: find, fetch, validate, split, generate and cache them, and turn them into model inputs."""
from .._lazy import lazy_getattr, submodules

__all__ = submodules(__path__)
__getattr__ = lazy_getattr(__name__, __all__)
