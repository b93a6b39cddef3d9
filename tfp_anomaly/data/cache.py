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

:class:`CacheReader` reads any range of events of a cache (random access, the file kept open);
:func:`.store.ensure_cache` converts an event file to a cache once and reuses it.
"""
from __future__ import annotations

import contextlib
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
    return _write_columns(chunks, path, source=source, progress=progress, skipped=skipped, allow_empty=allow_empty)


def _write_columns(chunks: Iterable[Events], path, *, source: str = "", progress=None, skipped: SkipLog | None = None,
                   allow_empty: bool = True, attrs=None) -> dict:
    """:func:`write_cache`, with ``attrs`` (a dict, or a callable returning one, called once the chunks are
    exhausted) added to the group's attributes in the same atomic write
    (:func:`.store.ensure_cache` stores its key there, so a cache never exists without the key it was made for)."""
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
            group.attrs.update((attrs() if callable(attrs) else attrs) or {})
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


class CacheReader:
    """Random access to the events of a cache by event range, with the file kept open.

    At open the layout is checked (as by :func:`iter_cache`) and the per-event object counts
    ``n_objects`` are streamed once, ``block`` events at a time, keeping only the object offset at every
    ``block``-th event: memory ``O(n_events / block)``. :meth:`read` then finds the objects of any event
    range from the nearest block boundary, reading at most ``block + (stop - start)`` counts, not the
    whole column. Counts that are negative or do not add up to the objects stored raise
    :class:`DataFormatError` at open, so a reader that opened reads every range it is asked for.

    Energies are in the unit the cache was written in (:attr:`unit`; convert with
    :meth:`Events.to_unit`). Use as a context manager, or call :meth:`close`.

    Args:
        path: the cache file.
        block: events per block of the offset index (the spacing of the kept offsets).

    Attributes:
        path: the file.
        n_events: the number of events.
        unit: ``"MeV"`` or ``"GeV"``.
        processes: the process names the events' ``process`` codes index.
        has_labels: whether the cache holds truth labels.
        n_objects_total: the number of objects of all events.
        n_skipped: the malformed records the conversion skipped (attribute ``n_skipped``, 0 if absent).
        attrs: every attribute of the cache's ``events`` group, as a dict.
    """

    def __init__(self, path, *, block: int = 1 << 16):
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.path = Path(path)
        self.block = int(block)
        self._stack = contextlib.ExitStack()
        try:
            handle = self._stack.enter_context(open_hdf5(self.path, "event cache"))
            self._group = group = handle.get("events")
            self.n_events = _check_layout(self.path, group)
            try:
                self.processes = tuple(json.loads(group.attrs["processes"]))
            except (TypeError, ValueError) as err:
                raise DataFormatError(self.path, f"cache attribute 'processes' is not a JSON list ({err})",
                                      field="events") from None
            self.unit = str(group.attrs["unit"])
            self.has_labels = "label" in group
            self.n_skipped = int(group.attrs.get("n_skipped", 0))
            self.attrs = dict(group.attrs)
            self._counts = group["n_objects"]
            self._boundaries = self._index()
            self.n_objects_total = int(self._boundaries[-1])
        except BaseException:
            self._stack.close()
            raise

    def _index(self) -> np.ndarray:
        """The object offset of events ``0, block, 2 block, ...`` and of the end, checking the counts."""
        n_stored = self._group["obj_type"].shape[0]
        boundaries = np.zeros(-(-self.n_events // self.block) + 1, np.int64)
        for k, start in enumerate(range(0, self.n_events, self.block)):
            stop = min(self.n_events, start + self.block)
            counts = self._read(self._counts, start, stop, "events/n_objects")
            if counts.min(initial=0) < 0:
                raise DataFormatError(self.path, f"negative object count among events {start}-{stop - 1}",
                                      field="events/n_objects")
            boundaries[k + 1] = boundaries[k] + int(counts.sum(dtype=np.int64))
        if boundaries[-1] != n_stored:
            raise DataFormatError(self.path, f"the object counts add up to {boundaries[-1]} objects but "
                                             f"{n_stored} are stored", field="events/n_objects")
        return boundaries

    def _read(self, dataset, start: int, stop: int, what: str) -> np.ndarray:
        try:
            return dataset[start:stop]
        except OSError as err:
            raise read_error(self.path, err, f"{what} [{start}:{stop}]") from None

    def _range(self, start: int, stop: int | None) -> tuple[int, int]:
        stop = self.n_events if stop is None else stop
        if not (0 <= int(start) <= int(stop) <= self.n_events):
            raise IndexError(f"{self.path}: event range {start}:{stop} outside 0:{self.n_events}")
        return int(start), int(stop)

    def __len__(self) -> int:
        return self.n_events

    def read(self, start: int = 0, stop: int | None = None) -> Events:
        """Events ``start`` to ``stop - 1`` (``stop`` None: to the end) as :class:`Events`, exactly as
        written; an empty range gives no events. A range outside ``0:n_events`` raises IndexError."""
        start, stop = self._range(start, stop)
        first = (start // self.block) * self.block
        counts = self._read(self._counts, first, stop, "events/n_objects").astype(np.int64)
        obj_start = int(self._boundaries[start // self.block] + counts[: start - first].sum())
        offsets = np.concatenate([[0], np.cumsum(counts[start - first:])])
        objects = slice(obj_start, obj_start + int(offsets[-1]))
        fields = {name: self._read(self._group[name], start, stop, f"events/{name}") for name in EVENT_FIELDS}
        fields.update({name: self._read(self._group[name], objects.start, objects.stop, f"events/{name}")
                       for name in OBJECT_FIELDS})
        labels = self.labels(start, stop)
        try:
            return Events(**fields, offsets=offsets, processes=self.processes, labels=labels, unit=self.unit,
                          meta={"source": str(self.path), "format": "cache", "start": start})
        except ValueError as err:  # codes outside the process table, an unknown unit, ...
            raise DataFormatError(self.path, f"events {start}-{stop - 1}: {err}") from None

    def labels(self, start: int = 0, stop: int | None = None) -> np.ndarray | None:
        """The truth labels (int8, 1 = signal) of events ``start:stop``, or None for an unlabelled cache."""
        start, stop = self._range(start, stop)
        if not self.has_labels:
            return None
        return self._read(self._group["label"], start, stop, "events/label").astype(np.int8, copy=False)

    def weights(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The event weights (float64) of events ``start:stop``."""
        start, stop = self._range(start, stop)
        return self._read(self._group["weight"], start, stop, "events/weight").astype(np.float64, copy=False)

    def event_ids(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The event numbers (int64) of events ``start:stop``."""
        start, stop = self._range(start, stop)
        return self._read(self._group["event_id"], start, stop, "events/event_id").astype(np.int64, copy=False)

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._stack.close()

    def __enter__(self) -> "CacheReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CacheReader({str(self.path)!r}: {self.n_events} events, {self.unit})"
