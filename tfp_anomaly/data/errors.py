"""Errors for malformed input, and the skip log used by ``on_error="skip"``."""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path


class DataFormatError(ValueError):
    """Malformed input, located precisely.

    Attributes
    ----------
    path : str
        The file.
    line : int or None
        1-based line number (text formats) or 0-based row/event index (array formats), see ``where``.
    field : str or None
        The field, e.g. ``"field 7 (object 2 'pt')"`` or ``"Particles[:, 3, 0] (muon pT)"``.
    reason : str
        What is wrong.
    """

    def __init__(self, path, reason, line=None, field=None, where="line"):
        self.path = os.fspath(path)
        self.line = line
        self.field = field
        self.reason = reason
        self.where = where
        parts = [self.path]
        if line is not None:
            parts.append(f"{where} {line}")
        if field is not None:
            parts.append(field)
        super().__init__(", ".join(parts) + f": {reason}")


@dataclasses.dataclass
class SkipLog:
    """Counts what a reader skipped under ``on_error="skip"``, and keeps the first messages.

    ``n_skipped`` counts malformed records; ``n_blank`` counts empty lines, which every text
    reader ignores silently (they carry no event).
    """

    keep: int = 20
    n_skipped: int = 0
    n_blank: int = 0
    messages: list = dataclasses.field(default_factory=list)

    def add(self, error: DataFormatError) -> None:
        self.n_skipped += 1
        if len(self.messages) < self.keep:
            self.messages.append(str(error))

    def merge(self, other: "SkipLog") -> None:
        self.n_skipped += other.n_skipped
        self.n_blank += other.n_blank
        room = self.keep - len(self.messages)
        self.messages.extend(other.messages[: max(room, 0)])

    def summary(self) -> str:
        text = f"{self.n_skipped} malformed record(s) skipped, {self.n_blank} blank line(s) ignored"
        if self.messages:
            text += "; first: " + self.messages[0]
        return text


ON_ERROR = ("raise", "skip")


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error


def check_file(path, what: str = "file") -> Path:
    """``path`` as a :class:`~pathlib.Path` after checking that it names a readable regular file.

    A missing path raises :class:`FileNotFoundError` (``"<what> not found: <path>"``); a directory or an
    unreadable file raises :class:`DataFormatError` naming it, before any reader touches it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise DataFormatError(path, "is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise DataFormatError(path, "cannot be read (permission denied)")
    return path


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def open_hdf5(path, what: str = "HDF5 file"):
    """``h5py.File(path, "r")`` as a context manager; a file HDF5 cannot open (truncated, corrupt, not
    HDF5 at all) raises :class:`DataFormatError` saying so, instead of h5py's ``OSError``."""
    import h5py

    path = check_file(path, what)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        try:
            signed = h5py.is_hdf5(path)
        except OSError:
            signed = False
        wrong = "truncated or corrupt HDF5 file" if signed else "not an HDF5 file (no HDF5 signature), or truncated"
        raise DataFormatError(path, f"cannot be read as HDF5: {wrong} ({_first_line(err)})") from None
    with handle:
        yield handle


def read_error(path, error: BaseException, where: str) -> DataFormatError:
    """The :class:`DataFormatError` for an I/O failure part-way through a file (a truncated or damaged
    HDF5 dataset): ``where`` says what was being read."""
    return DataFormatError(path, f"cannot read {where}: truncated or corrupt file ({_first_line(error)})")
