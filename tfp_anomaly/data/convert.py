"""``tfp-anomaly data convert``: any registered event file → the columnar HDF5 cache (:mod:`.cache`).

Everything that can be checked before the slow work is checked first, each failure one
:class:`~.errors.DataFormatError` (or ``FileNotFoundError``/``ValueError``) naming the file:

* the input exists, is a file, and its format is known (or the named one);
* the output ends in ``.h5``/``.hdf5``/``.hdf`` (how the cache is recognised), is not a directory,
  its directory can be made, and it is **not the input** (the same file after resolving links,
  hard links included): the cache would replace the file it is read from.

The cache is written to a temporary file beside the output and renamed at the end, so a failure
(a malformed line, no events at all, Ctrl-C) leaves the output as it was. A conversion killed hard
(SIGKILL, a crash, a full disk) leaves its temporary file ``.OUTPUT.XXXXXXXX.HOST-PID.tmp``; the next
conversion to the same output removes such files whose writer no longer runs (and files of the older
untagged form ``.OUTPUT.XXXXXXXX.tmp``) before it writes, and reports them; files of a writer still
running here, or on another host, are left alone and reported.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from . import formats
from .cache import leftover_temporaries, write_cache
from .darkmachines import DarkMachinesReader
from .errors import DataFormatError, SkipLog, check_file, check_on_error

#: file name endings of a cache (what :data:`~.formats.FORMATS` recognises as HDF5)
CACHE_SUFFIXES = (".h5", ".hdf5", ".hdf")


def check_output(input_path, output_path) -> Path:
    """``output_path`` as a Path after checking it may receive the cache converted from ``input_path``."""
    output, source = Path(output_path), Path(input_path)
    if output.is_dir():
        raise DataFormatError(output, "is a directory; give the name of the cache file to write")
    if output.suffix.lower() not in CACHE_SUFFIXES:
        raise DataFormatError(output, f"the output is an HDF5 event cache: its name must end in "
                                      f"{', '.join(CACHE_SUFFIXES)} (so that readers recognise it)")
    if output.exists() and source.exists() and os.path.samefile(source, output):
        raise DataFormatError(output, f"is the input file {source} (the same file after resolving links): "
                                      "refusing to overwrite the input; write the cache to another file")
    for parent in output.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataFormatError(output, f"cannot be created: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise DataFormatError(output, f"cannot be created: directory {parent} is not writable")
            break
    return output


def remove_leftovers(output) -> tuple[list[Path], list[Path]]:
    """Delete the temporary files interrupted conversions to ``output`` left behind (those whose writer
    is gone, :func:`~.cache.leftover_temporaries`); returns ``(removed, kept)``."""
    stale, active = leftover_temporaries(output)
    removed = []
    for path in stale:
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:  # another conversion removed it first
            pass
    return removed, active


def convert(input_path, output_path, *, format: str = "auto", unit: str | None = None, on_error: str = "raise",
            label: int | None = None, chunk_size: int = 100_000,
            progress: Callable | None = None, reader_settings: dict | None = None) -> dict:
    """Convert the event file ``input_path`` to a cache at ``output_path`` (checks first, see the module).

    ``unit`` converts energies (default: the reader's, MeV for Dark Machines files); ``on_error`` is
    the Dark Machines reader's; ``label`` gives every event that truth label; ``progress(chunk, position,
    total)`` is called after each chunk written (``position``/``total`` in bytes of a CSV when known,
    else None); ``reader_settings`` holds the readers' options as a configuration's ``data`` section does
    (``{"root": {...}}``: :func:`.formats.reader_options`). A file that yields no event is refused (nothing is written). Returns
    ``write_cache``'s summary plus ``removed``/``kept``, the leftover temporary files removed or left.
    """
    source = check_file(input_path, "input file")
    output = check_output(source, output_path)
    check_on_error(on_error)
    if chunk_size < 1:
        raise ValueError(f"--chunk-size must be >= 1, got {chunk_size}")
    fmt = formats.detect(source) if format == "auto" else formats.get(format)
    if fmt.kind != "events":
        raise DataFormatError(source, f"format {fmt.name} holds tabular features, not events; nothing to convert")
    if fmt.name == "darkmachines":
        reader = DarkMachinesReader(source, unit=unit or "MeV", on_error=on_error, label=label)
        chunks, skipped = reader.chunks(chunk_size), reader.skipped
        position, total = (lambda: reader.bytes_read), reader.size
    else:
        chunks = fmt.iterate(source, chunk_size=chunk_size, **formats.reader_options(fmt, reader_settings))
        if unit or label is not None:
            chunks = (_adjust(c, unit, label) for c in chunks)
        skipped, position, total = SkipLog(), None, None
    removed, kept = remove_leftovers(output)

    def on_chunk(chunk):
        if progress is not None:
            progress(chunk, position() if position else None, total)

    summary = write_cache(chunks, output, source=str(source), progress=on_chunk, skipped=skipped,
                          allow_empty=False)
    summary.update(removed=removed, kept=kept)
    return summary


def _adjust(chunk, unit, label):
    chunk = chunk.to_unit(unit) if unit else chunk
    return chunk.with_label(label) if label is not None else chunk
