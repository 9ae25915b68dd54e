"""Every error written for a person: what was found, what was expected, and what to do next.

They all derive from :class:`UserError`, so ``python -m helpers`` prints any of them as one message without a
traceback, and a notebook shows the message that matters. Each keeps the built-in type it behaves as
(a bad value, a failed download, a file-system problem), so ``except ValueError`` and the like still work.
"""
from __future__ import annotations

__all__ = ["UserError", "RunsDirError", "UnsafeFileError", "InstallError", "DatasetLayoutError", "ChecksumError",
           "IncompleteDownloadError", "DownloadError", "UnsafeArchiveError", "LeakageError", "SplitMismatchError",
           "PreparedStateError", "OutOfMemoryError", "NonFiniteLossError", "BackboneError", "ModelFolderError", "ModelCardError"]


class UserError(Exception):
    """An error whose message says what was found, what was expected and what to do (no traceback needed)."""


# core ------------------------------------------------------------------------------------------------------------
class RunsDirError(UserError, OSError):
    """The output folder cannot be used (it is a file, or it cannot be written)."""


class UnsafeFileError(UserError, ValueError):
    """A model file or checkpoint that holds more than weights (it could run code) or is damaged: not loaded."""


class InstallError(UserError, RuntimeError):
    """pip could not install the project without changing a package the runtime already has."""


# data ------------------------------------------------------------------------------------------------------------
class DatasetLayoutError(UserError, ValueError):
    """The folder given as dataset root does not have the MVTec AD layout."""


class ChecksumError(UserError, RuntimeError):
    """A downloaded file's sha256 differs from the expected one."""


class IncompleteDownloadError(UserError, OSError):
    """The connection dropped before the whole file arrived; the partial file is kept for a resume."""


class DownloadError(UserError, RuntimeError):
    """No address gave a good copy of the archive; the message lists each try and what to do next."""


class UnsafeArchiveError(UserError, RuntimeError):
    """An archive member would be written outside the target folder (or is a link/device)."""


class LeakageError(UserError, AssertionError):
    """A path or a content hash appears in more than one split."""


class SplitMismatchError(UserError, RuntimeError):
    """The split on disk was written for other data, edited, or is not a split file at all."""


class PreparedStateError(UserError, ValueError):
    """What notebook 00 wrote is damaged or inconsistent (the message names the file and the way out)."""


# training --------------------------------------------------------------------------------------------------------
class OutOfMemoryError(UserError, RuntimeError):
    """A batch did not fit in GPU memory; the message says what to change."""


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN or infinite: training stops (the message names the checkpoint it resumed from)."""


class BackboneError(UserError, ValueError):
    """A ``BACKBONE`` that cannot be used: unknown, or its ImageNet weights cannot be had (the message says how)."""


# model folders ---------------------------------------------------------------------------------------------------
class ModelFolderError(UserError, ValueError):
    """A model folder that is missing, incomplete or of an unknown kind; the message says what to do."""


class ModelCardError(ModelFolderError):
    """A model card field that is missing, of the wrong type or out of bounds; the message names the field."""
