"""Columnar event cache in HDF5: the flat-plus-offsets arrays of :class:`Events`, written chunk by chunk.

Reading it back is a handful of contiguous array reads, at least ten times faster than parsing the
CSV (``benchmarks/parse_rate.py``). Layout (group ``/events``, attribute ``format = "tfp-anomaly-events"``):
per-event datasets ``event_id process weight met met_phi [label]``, per-object datasets
``obj_type obj_e obj_pt obj_eta obj_phi``, ``n_objects`` per event (offsets are its cumulative sum),
attributes ``unit``, ``processes`` (JSON list), ``version``, ``source``, ``n_skipped``.

Files are written to a temporary name and renamed at the end, so a failed conversion leaves no
partial cache behind.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..atomic import atomic_path
from .errors import DataFormatError
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


def write_cache(chunks: Iterable[Events], path, *, source: str = "", progress=None) -> dict:
    """Write an iterable of :class:`Events` chunks to an HDF5 cache at ``path`` (atomically).

    ``progress`` is an optional callable ``progress(chunk)`` called after each chunk is written.
    Returns a summary ``{"events": N, "objects": M, "unit": ...}``. Process tables of the chunks are
    merged (codes remapped); all chunks must share one unit and either all or none carry labels.
    """
    import h5py

    processes: dict[str, int] = {}
    unit, labelled, n_events, n_objects, n_skipped = None, None, 0, 0, 0
    with atomic_path(path) as tmp:
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
            if unit is None:
                for name in EVENT_FIELDS + OBJECT_FIELDS + ("n_objects",):
                    group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1024,))
            group.attrs.update(format=FORMAT_TAG, version=VERSION, unit=unit or "MeV", source=str(source),
                               processes=json.dumps(list(processes)), n_skipped=n_skipped)
    return {"events": n_events, "objects": n_objects, "unit": unit or "MeV", "n_skipped": n_skipped}


def is_cache(path) -> bool:
    """Whether ``path`` is an HDF5 file holding a tfp-anomaly event cache (False for any other file)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return "events" in handle and handle["events"].attrs.get("format") == FORMAT_TAG
    except OSError:
        return False


def _open(path: Path):
    import h5py

    if not path.exists():
        raise FileNotFoundError(f"event cache not found: {path}")
    handle = h5py.File(path, "r")
    group = handle.get("events")
    if group is None or group.attrs.get("format") != FORMAT_TAG:
        handle.close()
        raise DataFormatError(path, f"not a {FORMAT_TAG} cache (write one with `tfp-anomaly data convert`)")
    if int(group.attrs["version"]) > VERSION:
        handle.close()
        raise DataFormatError(path, f"cache version {group.attrs['version']} is newer than this reader ({VERSION})")
    return handle, group


def iter_cache(path, chunk_size: int = 1_000_000) -> Iterator[Events]:
    """Stream events from a cache in chunks of ``chunk_size`` events (bounded memory)."""
    path = Path(path)
    handle, group = _open(path)
    with handle:
        processes = tuple(json.loads(group.attrs["processes"]))
        unit = str(group.attrs["unit"])
        counts = group["n_objects"]
        n = counts.shape[0]
        obj_start = 0
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            n_obj = counts[start:stop].astype(np.int64)
            offsets = np.concatenate([[0], np.cumsum(n_obj)])
            obj = slice(obj_start, obj_start + int(offsets[-1]))
            obj_start = obj.stop
            kw = {name: group[name][start:stop] for name in EVENT_FIELDS}
            kw.update({name: group[name][obj] for name in OBJECT_FIELDS})
            labels = group["label"][start:stop] if "label" in group else None
            yield Events(**kw, offsets=offsets, processes=processes, labels=labels, unit=unit,
                         meta={"source": str(path), "format": "cache"})


def read_cache(path) -> Events:
    """Read a whole cache into one :class:`Events`."""
    parts = list(iter_cache(path, chunk_size=1 << 62))
    return parts[0] if parts else Events.empty()
