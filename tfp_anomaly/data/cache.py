"""Columnar event cache in HDF5: the flat-plus-offsets arrays of :class:`Events`, written chunk by chunk.

Reading it back is a handful of contiguous array reads, at least ten times faster than parsing the
CSV (``benchmarks/parse_rate.py``). Layout (group ``/events``, attribute ``format = "tfp-anomaly-events"``):
per-event datasets ``event_id process weight met met_phi [label]``, per-object datasets
``obj_type obj_e obj_pt obj_eta obj_phi``, ``n_objects`` per event (offsets are its cumulative sum),
attributes ``unit``, ``processes`` (JSON list), ``version``, ``source``, ``n_skipped``.

Files are written to a temporary name and renamed at the end, so a failed conversion leaves no
partial cache behind. The temporary name is ``.NAME.XXXXXXXX.HOST-PID.tmp`` beside the target: a
process killed while writing leaves it behind, and :func:`leftover_temporaries` finds such files of
a target (the next ``tfp-anomaly data convert`` to the same output removes those whose writer is gone).
"""
from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..atomic import atomic_path
from .errors import DataFormatError, SkipLog, open_hdf5, read_error
from .events import EVENT_FIELDS, OBJECT_FIELDS, Events

FORMAT_TAG = "tfp-anomaly-events"
VERSION = 1


def _append(group, name: str, values: np.ndarray) -> None:
    if name not in group:
        group.create_dataset(name, data=values, maxshape=(None,), chunks=(max(1, min(len(values), 1 << 16)),)
                             if len(values) else (1 << 16,))
        return
    data = group[name]
    old = data.shape[0]
    data.resize((old + len(values),))
    data[old:] = values


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def temporary_suffix() -> str:
    """The suffix of this process's temporary cache files, ``.HOST-PID.tmp``: it tells a later run
    whether the writer of a leftover file may still be running."""
    return f".{_host()}-{os.getpid()}.tmp"


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user holds the id
        return True
    return True


def leftover_temporaries(path) -> tuple[list[Path], list[Path]]:
    """``(stale, active)`` temporary files of earlier writes of the cache ``path``, in its directory.

    ``stale``: their writer is gone (its process id no longer runs on this host), or the file predates
    tagged names (``.NAME.XXXXXXXX.tmp``): an interrupted ``convert`` left them, and they may be
    deleted. ``active``: written by a process that still runs here, or on another host (it may be
    writing on a shared file system): left alone.
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"[A-Za-z0-9_]{8}(?:\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+))?\.tmp")
    stale, active = [], []
    if not path.parent.is_dir():
        return stale, active
    for candidate in sorted(path.parent.iterdir()):
        match = pattern.fullmatch(candidate.name)
        if match is None or not candidate.is_file():
            continue
        if match["pid"] is None or (match["host"] == _host() and not _writer_alive(int(match["pid"]))):
            stale.append(candidate)
        else:
            active.append(candidate)
    return stale, active


def write_cache(chunks: Iterable[Events], path, *, source: str = "", progress=None,
                skipped: SkipLog | None = None, allow_empty: bool = True) -> dict:
    """Write an iterable of :class:`Events` chunks to an HDF5 cache at ``path`` (atomically).

    ``progress`` is an optional callable ``progress(chunk)`` called after each chunk is written.
    Returns a summary ``{"events": N, "objects": M, "unit": ..., "n_skipped": ...}``. Process tables of
    the chunks are merged (codes remapped); all chunks must share one unit and either all or none carry
    labels. ``skipped``: the reader's :class:`SkipLog`, read once the chunks are exhausted, gives the
    number of malformed records skipped (it counts chunks that lost every line, which yield no events);
    without it the chunks' ``meta["n_skipped"]`` are summed. ``allow_empty=False`` refuses to write a
    cache of no events (:class:`DataFormatError` naming ``source``), leaving nothing at ``path``.
    """
    import h5py

    processes: dict[str, int] = {}
    unit, labelled, n_events, n_objects, n_skipped = None, None, 0, 0, 0
    with atomic_path(path, suffix=temporary_suffix()) as tmp:
        with h5py.File(tmp, "w") as handle:
            group = handle.create_group("events")
            for chunk in chunks:
                if unit is None:
                    unit, labelled = chunk.unit, chunk.labels is not None
                if chunk.unit != unit or (chunk.labels is not None) != labelled:
                    raise ValueError("all chunks written to one cache must share unit and labelling")
                remap = np.array([processes.setdefault(p, len(processes)) for p in chunk.processes], np.int32)
                for name in EVENT_FIELDS:
                    values = getattr(chunk, name)
                    _append(group, name, remap[values] if name == "process" and len(values) else values)
                for name in OBJECT_FIELDS:
                    _append(group, name, getattr(chunk, name))
                _append(group, "n_objects", chunk.n_objects.astype(np.int32))
                if labelled:
                    _append(group, "label", chunk.labels)
                n_events += len(chunk)
                n_objects += int(chunk.offsets[-1])
                n_skipped += int(chunk.meta.get("n_skipped", 0))
                if progress is not None:
                    progress(chunk)
            if skipped is not None:
                n_skipped = skipped.n_skipped
            if n_events == 0 and not allow_empty:
                raise DataFormatError(source or path, _why_empty(skipped))
            if unit is None:
                for name in EVENT_FIELDS + OBJECT_FIELDS + ("n_objects",):
                    group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1024,))
            group.attrs.update(format=FORMAT_TAG, version=VERSION, unit=unit or "MeV", source=str(source),
                               processes=json.dumps(list(processes)), n_skipped=n_skipped)
    return {"events": n_events, "objects": n_objects, "unit": unit or "MeV", "n_skipped": n_skipped}


def _why_empty(skipped: SkipLog | None) -> str:
    if skipped is not None and skipped.n_skipped:
        return (f"no events to convert: all {skipped.n_skipped} non-blank line(s) are malformed and were "
                f"skipped (first: {skipped.messages[0] if skipped.messages else '?'})")
    if skipped is not None and skipped.n_blank:
        return f"no events to convert: the file holds only {skipped.n_blank} blank line(s)"
    return "no events to convert: the file is empty"


def is_cache(path) -> bool:
    """Whether ``path`` is an HDF5 file holding a tfp-anomaly event cache (False for any other file)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return "events" in handle and handle["events"].attrs.get("format") == FORMAT_TAG
    except OSError:
        return False


def _check_layout(path: Path, group) -> int:
    """The number of events of a cache group after checking its datasets exist, are 1-D and agree in length."""
    if group is None or group.attrs.get("format") != FORMAT_TAG:
        raise DataFormatError(path, f"not a {FORMAT_TAG} cache (write one with `tfp-anomaly data convert`)")
    for key in ("version", "unit", "processes"):
        if key not in group.attrs:
            raise DataFormatError(path, f"cache attribute {key!r} is missing", field="events")
    if int(group.attrs["version"]) > VERSION:
        raise DataFormatError(path, f"cache version {group.attrs['version']} is newer than this reader ({VERSION})")
    sizes = {}
    for name in EVENT_FIELDS + OBJECT_FIELDS + ("n_objects",) + (("label",) if "label" in group else ()):
        if name not in group:
            raise DataFormatError(path, "dataset is missing", field=f"events/{name}")
        shape = group[name].shape
        if shape is None or len(shape) != 1:
            raise DataFormatError(path, f"dataset has shape {shape}, expected one dimension", field=f"events/{name}")
        sizes[name] = shape[0]
    for fields, reference in ((EVENT_FIELDS + ("label",), "n_objects"), (OBJECT_FIELDS, "obj_type")):
        for name in fields:
            if name in sizes and sizes[name] != sizes[reference]:
                raise DataFormatError(path, f"{sizes[name]} entries where events/{reference} has {sizes[reference]}",
                                      field=f"events/{name}")
    return sizes["n_objects"]


def iter_cache(path, chunk_size: int = 1_000_000) -> Iterator[Events]:
    """Stream events from a cache in chunks of ``chunk_size`` events (bounded memory)."""
    path = Path(path)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    with open_hdf5(path, "event cache") as handle:
        group = handle.get("events")
        n = _check_layout(path, group)
        n_stored = group["obj_type"].shape[0]
        try:
            processes = tuple(json.loads(group.attrs["processes"]))
        except (TypeError, ValueError) as err:
            raise DataFormatError(path, f"cache attribute 'processes' is not a JSON list ({err})", field="events") from None
        unit = str(group.attrs["unit"])
        counts = group["n_objects"]
        obj_start = 0
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            try:
                n_obj = counts[start:stop].astype(np.int64)
                offsets = np.concatenate([[0], np.cumsum(n_obj)])
                obj = slice(obj_start, obj_start + int(offsets[-1]))
                if n_obj.min(initial=0) < 0 or obj.stop > n_stored:
                    raise DataFormatError(path, f"object counts of events {start}-{stop - 1} exceed the "
                                                f"{n_stored} objects stored", field="events/n_objects")
                obj_start = obj.stop
                kw = {name: group[name][start:stop] for name in EVENT_FIELDS}
                kw.update({name: group[name][obj] for name in OBJECT_FIELDS})
                labels = group["label"][start:stop] if "label" in group else None
            except OSError as err:
                raise read_error(path, err, f"events {start}-{stop - 1}") from None
            try:
                events = Events(**kw, offsets=offsets, processes=processes, labels=labels, unit=unit,
                                meta={"source": str(path), "format": "cache"})
            except ValueError as err:  # codes outside the process table, an unknown unit, ...
                raise DataFormatError(path, f"events {start}-{stop - 1}: {err}") from None
            yield events


def read_cache(path) -> Events:
    """Read a whole cache into one :class:`Events`."""
    parts = list(iter_cache(path, chunk_size=1 << 62))
    return parts[0] if parts else Events.empty()
