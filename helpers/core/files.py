"""Files written safely, and names shown safely.

- Every output is written **atomically**: to a uniquely named temporary file in the same folder, flushed,
  then renamed over the target (``os.replace``). A crash or a kill mid-write leaves the previous file (or
  none), never half a file; two processes writing the same file never share a temporary name.
- :func:`ensure_writable_dir` turns a ``RUNS_DIR`` that is a file, or on a read-only disk, into a message
  that says what was found and what to do, instead of a traceback from the first write.
- :func:`safe_load` opens a torch file with ``weights_only=True``: no code in a model file or checkpoint runs.
- :func:`printable_name` shows a file name that is not valid UTF-8 with escapes, so it can be listed in a
  CSV (the raw name cannot be encoded there).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import RunsDirError, UnsafeFileError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once at import: files get the permissions a plain open() would give them

__all__ = ["atomic_path", "write_text", "write_json", "write_csv", "ensure_writable_dir",
           "printable_name", "is_valid_utf8_name", "safe_load"]



@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; on success it replaces ``path`` in one rename.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)     # mkstemp makes 0600; an output should look like any other file
        yield tmp
        with open(tmp, "rb+") as fh:       # the bytes reach the disk before the rename makes them visible
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_with(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return _write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj: Any, **kwargs: Any) -> Path:
    """Write ``obj`` as JSON (``indent=2`` unless given) to ``path`` atomically."""
    kwargs.setdefault("indent", 2)
    return write_text(path, json.dumps(obj, **kwargs))


def write_csv(frame: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """``frame.to_csv(path, **kwargs)`` atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    return _write_with(path, lambda tmp: frame.to_csv(tmp, **kwargs))


def ensure_writable_dir(path: str | os.PathLike, what: str = "RUNS_DIR") -> Path:
    """Create ``path`` if needed and prove it can be written; raise :class:`RunsDirError` saying why not.

    A folder that cannot be created (a file in the way, no permission, read-only disk) or written is
    reported with what was found there and what to do, before any work starts.
    """
    path = Path(path)
    remedy = f"Set {what} to a folder you can write (e.g. RUNS_DIR=runs, or a folder on Google Drive)."
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        shown = "it" if blocker == path else f"{blocker}, on its way,"
        raise RunsDirError(f"{what}={path} cannot be used: {shown} is a file, not a folder. {remedy}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise RunsDirError(f"{what}={path} cannot be written ({type(err).__name__}: {err.strerror or err}). "
                           f"{remedy}") from err
    return path


def is_valid_utf8_name(name: str) -> bool:
    """False for a name decoded with surrogate escapes (bytes that are not UTF-8 on a POSIX disk)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(name: str) -> str:
    """``name`` with any byte that is not UTF-8 shown as ``\\xNN`` (safe to write in a CSV or a message)."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def safe_load(path: str | os.PathLike, what: str, remedy: str) -> Any:
    """``torch.load(path, weights_only=True)``: no code in the file runs. A file that needs more than
    tensors and plain containers, or a damaged one, raises :class:`helpers.errors.UnsafeFileError` (a
    ``ValueError``) naming it and ``remedy``."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0][:300]
        raise UnsafeFileError(f"Refusing to load {what} {path}: it holds more than weights ({first}). Loading it "
                         f"fully could run code from the file; only weights are loaded here. {remedy}") from err
    except (EOFError, RuntimeError, OSError, ValueError) as err:
        raise UnsafeFileError(f"{what.capitalize()} {path} is damaged or not a torch file ({type(err).__name__}: "
                         f"{str(err)[:200]}). {remedy}") from err
