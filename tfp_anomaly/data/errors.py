"""Errors for malformed input, and the skip log used by ``on_error="skip"``."""
from __future__ import annotations

import dataclasses
import os


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
