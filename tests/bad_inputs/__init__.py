"""Bad-input cases for ``tests/test_bad_inputs.py``, one table per part of the code.

A case is a :class:`Case`: ``setup(tmp_path)`` writes whatever input it needs under ``tmp_path`` and
returns the command-line arguments; the real CLI (``tfp_anomaly.cli.main``, in process) must then
print exactly one line on stderr, ``tfp-anomaly: error: ...`` containing every string of ``expect``
(the file, line/row and field, or the configuration key), return exit status 2, and leave every file
under ``tmp_path`` as it was (none changed, none added, none removed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple, Sequence


class Case(NamedTuple):
    id: str
    setup: Callable[[Path], Sequence[str]]
    expect: Sequence[str]
