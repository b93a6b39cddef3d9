"""Atomic file output: write to a temporary file beside the target, then rename (also for Keras models).

A failure half-way (an exception, a full disk, Ctrl-C) leaves the target untouched: either the old
file or nothing, never a truncated file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, not something to toggle per write


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``target`` on success.

    The temporary file (a unique name ending in ``suffix``) is created in the same directory so that
    :func:`os.replace` is an atomic rename on POSIX file systems. On any exception the temporary file
    is removed and the exception propagates.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file 0600; give the result the permissions a plain open() would
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def save_model(model, target: str | os.PathLike) -> None:
    """``model.save`` to ``target`` atomically (Keras insists on a ``.keras`` suffix, which the
    temporary name keeps)."""
    with atomic_path(target, suffix=".partial.keras") as tmp:
        model.save(tmp)
