"""The automatic cache: an event file converted once to the columnar HDF5 cache (:mod:`.cache`) and
reused by every later read, so that a file larger than memory is parsed once, not once per epoch or run.

:func:`ensure_cache` returns the cache of a source file, converting it when there is none or when the one
there no longer fits the source. The cache lives in the cache directory (``cache_dir``, else
``$TFP_ANOMALY_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/tfp-anomaly``), never beside the source (a
data directory may be read-only, shared, or scanned for input files), under the name
``NAME.HASH.h5``: the source file's name, readable, and 16 hex digits of the SHA-256 of its resolved
path (links followed), so two files of one name in different directories get two caches.

**The key.** A cache is reused only if the key stored in its attributes (``source_key``, JSON) equals the
source's key now: its resolved path, size and modification time (``st_mtime_ns``), the format name
(the detected one for ``format="auto"``), ``on_error``, the reader's options (``options``: a ROOT file's
tree and branch mapping, ``data.root``), and the cache layout :data:`~.cache.VERSION`.
Anything else (a source modified or only touched, another ``on_error``, format or mapping, a cache of an older
layout, a cache that is truncated, damaged or has no key) is rebuilt, and the log says why. The content
of the source is not hashed (that costs a read of the whole file, about as much as the conversion): a
file rewritten with the same size and modification time, which only a deliberate ``touch -d`` or
``rsync --times`` of other content does, is not noticed.

**Conversion** is that of ``tfp-anomaly data convert`` (the same readers, :func:`.cache.write_cache`,
chunk by chunk, memory bounded by one chunk), in the reader's own unit (MeV for Dark Machines files;
callers convert with :meth:`~.events.Events.to_unit`), written to a temporary file and renamed, the key
in the same write. A source that yields no event is refused with the converter's
:class:`~.errors.DataFormatError`; one that changes while it is converted is refused and its cache
discarded.

**Locking.** The conversion runs under an exclusive ``fcntl.flock`` on ``NAME.HASH.h5.lock`` beside the
cache: a second process asking for the same cache waits (the log names the process converting) and then
finds the cache made and reuses it. The lock files stay (deleting a lock file races with its next user);
they are empty but for the last converter's ``HOST-PID``. ``flock`` is not reliable on every network file
system: point ``$TFP_ANOMALY_CACHE`` at a local disk when several machines convert at once.

A source that is itself a cache (``.h5`` of the ``cache`` format) is used in place, never copied.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Callable

from . import formats
from .cache import VERSION, CacheReader, _host, _write_columns
from .convert import remove_leftovers
from .darkmachines import DarkMachinesReader
from .errors import DataFormatError, SkipLog, check_file, check_on_error

try:
    import fcntl
except ImportError:  # not POSIX: conversions are not serialised between processes
    fcntl = None

log = logging.getLogger(__name__)

#: the environment variable naming the cache directory
CACHE_ENV = "TFP_ANOMALY_CACHE"
#: the attribute of a cache's ``events`` group holding the JSON key it was converted for
KEY_ATTR = "source_key"
#: the order in which key fields are compared (the first difference is the reason given in the log)
KEY_FIELDS = ("path", "version", "format", "on_error", "options", "size", "mtime_ns")


@dataclasses.dataclass(frozen=True)
class CacheInfo:
    """What :func:`ensure_cache` found or made.

    Attributes:
        path: the cache file (the source itself for a source that is a cache).
        n_events: the events it holds.
        reused: True when an existing cache was used, False when this call converted the source.
        n_skipped: the malformed records the conversion skipped (``on_error="skip"``).
        source: the source file, resolved (links followed).
    """

    path: Path
    n_events: int
    reused: bool
    n_skipped: int
    source: Path


def default_cache_dir() -> Path:
    """``$TFP_ANOMALY_CACHE`` if set, else ``$XDG_CACHE_HOME/tfp-anomaly``, else ``~/.cache/tfp-anomaly``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "tfp-anomaly"


def cache_path(source, cache_dir=None) -> Path:
    """The cache file of ``source`` in ``cache_dir`` (default :func:`default_cache_dir`):
    ``NAME.HASH.h5``, ``NAME`` the resolved source's file name (characters other than letters, digits and
    ``._+-`` replaced by ``_``) and ``HASH`` 16 hex digits of the SHA-256 of its resolved path."""
    resolved = Path(source).resolve()
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", resolved.name)[:120]
    directory = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser().absolute()
    return directory / f"{name}.{digest}.h5"


def source_key(source, format_name: str, on_error: str, options: dict | None = None) -> dict:
    """The key a cache of ``source`` is valid for (see the module): resolved path, size, ``st_mtime_ns``,
    format name, ``on_error``, the reader's ``options`` (None when there are none: the key of a cache
    written before options existed) and the cache layout version."""
    resolved = Path(source).resolve()
    stat = resolved.stat()
    return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "format": format_name,
            "on_error": on_error, "options": _canonical(options) if options else None, "version": VERSION}


def _canonical(options: dict):
    """``options`` as they compare after a JSON round trip (the stored key is JSON)."""
    return json.loads(json.dumps(options, sort_keys=True))


def ensure_cache(source, *, format: str = "auto", on_error: str = "raise", cache_dir=None,
                 chunk_size: int = 100_000, progress: Callable | None = None,
                 options: dict | None = None) -> CacheInfo:
    """The cache of the event file ``source``: the existing one when its key matches, else converted now.

    Args:
        source: an event file of any registered format (a cache is used in place).
        format: its format name, or ``"auto"`` to detect it (from the file as named, so a link keeps
            its suffix).
        on_error: the Dark Machines reader's ``"raise"`` or ``"skip"`` (part of the key).
        cache_dir: where caches live (default :func:`default_cache_dir`); never the source's directory.
        chunk_size: events per chunk while converting (memory is bounded by one chunk).
        progress: ``progress(chunk, position, total)`` after each chunk converted, as for
            :func:`.convert.convert` (``position``/``total`` in bytes of a plain CSV, else None).
        options: keyword options of the format's reader (a ROOT file's ``tree``, ``btag_bit`` and branch
            mapping: :func:`.formats.reader_options` of ``data.root``); part of the key, so a changed
            mapping converts again.

    Returns:
        :class:`CacheInfo`.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        DataFormatError: the source is malformed (its first bad line under ``on_error="raise"``), holds no
            event, holds features rather than events, changed while it was converted, is a damaged cache;
            or the cache directory is the source's directory or cannot be created.
        ValueError: an unknown format or ``on_error``, ``chunk_size < 1``.
    """
    path = check_file(source, "event file")
    check_on_error(on_error)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    resolved = path.resolve()
    fmt = formats.detect(path) if format == "auto" else formats.get(format)
    if fmt.kind != "events":
        raise DataFormatError(path, f"format {fmt.name} holds tabular features, not events; nothing to cache")
    if fmt.name == "cache":
        with CacheReader(path) as reader:
            return CacheInfo(resolved, reader.n_events, True, reader.n_skipped, resolved)
    target = cache_path(resolved, cache_dir)
    _check_directory(path, resolved, target.parent)

    found = _inspect(target, source_key(resolved, fmt.name, on_error, options))
    if found.reason is None:
        return _reuse(found, target, resolved)
    with _locked(target):
        key = source_key(resolved, fmt.name, on_error, options)
        found = _inspect(target, key)
        if found.reason is None:  # another process converted it while this one waited
            return _reuse(found, target, resolved)
        log.log(logging.WARNING if found.damaged else logging.INFO, "%s: converting to the cache %s (%s)",
                path, target, found.reason)
        summary = _convert(path, fmt, on_error, chunk_size, progress, target, key, options or {})
    return CacheInfo(target, summary["events"], False, summary["n_skipped"], resolved)


@dataclasses.dataclass
class _Found:
    reason: str | None  # why the cache cannot be reused; None: it can
    damaged: bool = False
    n_events: int = 0
    n_skipped: int = 0
    skip_messages: tuple = ()


def _inspect(target: Path, key: dict) -> _Found:
    """Whether the cache at ``target`` can be reused for ``key``, and if not, why."""
    if not target.exists():
        return _Found("no cache yet")
    try:
        with CacheReader(target) as reader:
            stored, n_events, n_skipped = reader.attrs.get(KEY_ATTR), reader.n_events, reader.n_skipped
            messages = reader.attrs.get("skip_messages", "[]")
    except (DataFormatError, OSError) as err:
        return _Found(f"the cache is damaged and is rebuilt: {getattr(err, 'reason', err)}", damaged=True)
    try:
        stored = json.loads(stored)
        messages = tuple(json.loads(messages))
    except (TypeError, ValueError):
        return _Found("the cache holds no valid source key (not written by ensure_cache)", damaged=True)
    for field in KEY_FIELDS:
        if stored.get(field) != key[field]:
            return _Found(_difference(field, stored.get(field), key[field]))
    return _Found(None, n_events=n_events, n_skipped=n_skipped, skip_messages=messages)


def _difference(field: str, old, new) -> str:
    if field == "path":
        return f"the cache was made from another file, {old}"
    if field == "version":
        return f"the cache layout changed (version {old}, now {new})"
    if field == "mtime_ns":
        return (f"the source was modified since the conversion (modification time {_when(old)}, "
                f"now {_when(new)})")
    if field == "size":
        return f"the source changed since the conversion (size {old} bytes, now {new})"
    return f"the cache was converted with {field}={old!r}, now {field}={new!r}"


def _when(ns):
    """A modification time in ns as local ISO time (anything else as it is)."""
    return datetime.datetime.fromtimestamp(ns / 1e9).isoformat(timespec="microseconds") if isinstance(ns, int) else ns


def _reuse(found: _Found, target: Path, resolved: Path) -> CacheInfo:
    log.info("%s: reusing the cache %s (%d events)", resolved, target, found.n_events)
    if found.n_skipped:
        first = f" (first: {found.skip_messages[0]})" if found.skip_messages else ""
        log.warning("%s: the cache %s lacks %d malformed record(s) skipped when it was converted%s",
                    resolved, target, found.n_skipped, first)
    return CacheInfo(target, found.n_events, True, found.n_skipped, resolved)


def _check_directory(path: Path, resolved: Path, directory: Path) -> None:
    """Refuse a cache directory beside the source; make it, or say why it cannot be made."""
    for beside in {path.absolute().parent, resolved.parent}:
        if directory.exists() and beside.exists() and os.path.samefile(directory, beside):
            raise DataFormatError(directory, f"is the directory of the source {path}: the automatic cache is "
                                             f"never written beside its source; give another cache directory "
                                             f"(cache_dir, ${CACHE_ENV})")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataFormatError(directory, f"cannot create the cache directory ({err.strerror or err}); "
                                         f"set ${CACHE_ENV} to a writable directory") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DataFormatError(directory, f"the cache directory is not writable; set ${CACHE_ENV} to a writable "
                                         "directory")


@contextlib.contextmanager
def _locked(target: Path):
    """Hold an exclusive ``flock`` on ``TARGET.lock`` (waiting for another holder, and saying so)."""
    lock_path = target.with_name(target.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("ascii", "replace").strip() or "another process"
                log.info("%s: waiting for %s, which is converting it (lock %s)", target, holder, lock_path)
                fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{_host()}-{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _convert(path: Path, fmt, on_error: str, chunk_size: int, progress, target: Path, key: dict,
             options: dict) -> dict:
    """Convert ``path`` to ``target`` in the reader's unit (``options`` to its reader), the key and skip
    messages stored with the columns."""
    if fmt.name == "darkmachines":
        reader = DarkMachinesReader(path, unit="MeV", on_error=on_error)
        chunks, skipped = reader.chunks(chunk_size), reader.skipped
        position, total = (lambda: reader.bytes_read), reader.size
    else:
        chunks, skipped = fmt.iterate(path, chunk_size=chunk_size, **options), SkipLog()
        position, total = None, None
    removed, kept = remove_leftovers(target)
    for leftover in removed:
        log.info("%s: removed %s, left by an interrupted conversion", target, leftover)
    for leftover in kept:
        log.info("%s: left %s alone (its writer may still run)", target, leftover)

    def on_chunk(chunk):
        if progress is not None:
            progress(chunk, position() if position else None, total)

    def attrs():
        return {KEY_ATTR: json.dumps(key, sort_keys=True), "skip_messages": json.dumps(skipped.messages)}

    summary = _write_columns(chunks, target, source=str(path), progress=on_chunk, skipped=skipped,
                             allow_empty=False, attrs=attrs)
    now = source_key(path, fmt.name, on_error, options)
    if (now["size"], now["mtime_ns"]) != (key["size"], key["mtime_ns"]):
        target.unlink()
        raise DataFormatError(path, "changed while it was being converted (size or modification time); the "
                                    "cache was discarded: convert again once the file is complete")
    if summary["n_skipped"]:
        log.warning("%s: %s; the cache %s holds the other %d events", path, skipped.summary(), target,
                    summary["events"])
    log.info("%s: converted %d events to %s", path, summary["events"], target)
    return summary
