"""The ``Events`` container: collision events with a variable number of reconstructed objects.

Storage is columnar and vectorised (a "jagged array" in flat-plus-offsets form):

* per event (length ``N``): ``event_id`` (int64), ``process`` (int32 code into ``processes``),
  ``weight`` (float64), ``met`` and ``met_phi`` (float32), optional ``labels`` (int8, 1 = signal);
* per object (length ``M``, all events back to back): ``obj_type`` (int8, see
  :mod:`tfp_anomaly.data.objects`), ``obj_e``, ``obj_pt``, ``obj_eta``, ``obj_phi`` (float32);
* ``offsets`` (int64, length ``N + 1``): the objects of event ``i`` are ``offsets[i]:offsets[i+1]``.

Kinematics are float32: the challenge files carry six significant digits, which float32 keeps.
Energies and momenta are in ``unit`` ("MeV" or "GeV").
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from . import objects

EVENT_FIELDS = ("event_id", "process", "weight", "met", "met_phi")
OBJECT_FIELDS = ("obj_type", "obj_e", "obj_pt", "obj_eta", "obj_phi")
_DTYPES = {
    "event_id": np.int64, "process": np.int32, "weight": np.float64,
    "met": np.float32, "met_phi": np.float32, "labels": np.int8,
    "obj_type": np.int8, "obj_e": np.float32, "obj_pt": np.float32,
    "obj_eta": np.float32, "obj_phi": np.float32, "offsets": np.int64,
}
UNITS = {"MeV": 1.0, "GeV": 1e3}


@dataclasses.dataclass(eq=False)
class Events:
    """A batch of N collision events with M reconstructed objects in all, in flat-plus-offsets form.

    The objects of event ``i`` are entries ``offsets[i]:offsets[i + 1]`` of the per-object arrays (a
    jagged array stored flat). Index with a slice, an index array or a boolean mask (``events[mask]``):
    the result is a new ``Events``. Arrays are converted to the dtypes of the module docstring.

    Args:
        event_id: ``(N,)`` event number in the source file.
        process: ``(N,)`` code into ``processes``.
        weight: ``(N,)`` event weight.
        met: ``(N,)`` missing transverse momentum, in ``unit``.
        met_phi: ``(N,)`` its azimuth φ.
        offsets: ``(N + 1,)`` non-decreasing, ``offsets[0] = 0``, ``offsets[N] = M``.
        obj_type: ``(M,)`` object type ids (:mod:`tfp_anomaly.data.objects`).
        obj_e: ``(M,)`` energies, in ``unit``.
        obj_pt: ``(M,)`` transverse momenta, in ``unit``.
        obj_eta: ``(M,)`` pseudorapidities η.
        obj_phi: ``(M,)`` azimuths φ.
        processes: the process names (Dark Machines ``process_id``) the codes of ``process`` index.
        labels: ``(N,)`` truth labels (1 = signal, 0 = background), or None for unlabelled events.
        unit: ``"MeV"`` or ``"GeV"``.
        meta: free-form provenance (``source``, ``format``, ``n_skipped``, ...).
    """

    event_id: np.ndarray
    process: np.ndarray
    weight: np.ndarray
    met: np.ndarray
    met_phi: np.ndarray
    offsets: np.ndarray
    obj_type: np.ndarray
    obj_e: np.ndarray
    obj_pt: np.ndarray
    obj_eta: np.ndarray
    obj_phi: np.ndarray
    processes: tuple = ()
    labels: np.ndarray | None = None
    unit: str = "MeV"
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for name, dtype in _DTYPES.items():
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.ascontiguousarray(value, dtype=dtype))
        self.processes = tuple(str(p) for p in self.processes)
        self._validate()

    def _validate(self):
        n = len(self.event_id)
        for name in EVENT_FIELDS + (("labels",) if self.labels is not None else ()):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"Events.{name} has shape {getattr(self, name).shape}, expected ({n},)")
        if self.offsets.shape != (n + 1,) or self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 0):
            raise ValueError("Events.offsets must be non-decreasing, start at 0 and have length n_events + 1")
        m = int(self.offsets[-1])
        for name in OBJECT_FIELDS:
            if getattr(self, name).shape != (m,):
                raise ValueError(f"Events.{name} has shape {getattr(self, name).shape}, expected ({m},)")
        if n and (self.process.min() < 0 or self.process.max() >= len(self.processes)):
            raise ValueError("Events.process holds codes outside Events.processes")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {tuple(UNITS)}, got {self.unit!r}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, unit: str = "MeV", with_label: bool = False) -> "Events":
        """No events (with an empty ``labels`` array if ``with_label``)."""
        z = np.zeros(0)
        return cls(z, z, z, z, z, np.zeros(1), z, z, z, z, z, (),
                   labels=z if with_label else None, unit=unit)

    @classmethod
    def from_padded(cls, obj_type, e, pt, eta, phi, met, met_phi, *, valid=None, event_id=None,
                    process=None, processes=("unknown",), weight=None, labels=None, unit="GeV",
                    meta=None) -> "Events":
        """Build from padded ``(N, K)`` object arrays (``obj_type``, ``e``, ``pt``, ``eta``, ``phi``, each
        broadcast to ``(N, K)``) and ``(N,)`` event arrays; slots with ``valid`` False (default
        pT > 0) are dropped. ``event_id`` defaults to 0…N−1, ``process`` to 0, ``weight`` to 1."""
        pt = np.asarray(pt)
        n = pt.shape[0]
        valid = pt > 0 if valid is None else np.asarray(valid, bool)
        counts = valid.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        pick = lambda a: np.broadcast_to(np.asarray(a), pt.shape)[valid]  # noqa: E731 (row-major order)
        return cls(
            event_id=np.arange(n) if event_id is None else event_id,
            process=np.zeros(n) if process is None else process, processes=processes,
            weight=np.ones(n) if weight is None else weight, met=met, met_phi=met_phi,
            offsets=offsets, obj_type=pick(obj_type), obj_e=pick(e), obj_pt=pick(pt),
            obj_eta=pick(eta), obj_phi=pick(phi), labels=labels, unit=unit, meta=dict(meta or {}))

    @classmethod
    def from_awkward(cls, array, unit: str | None = None, meta: dict | None = None) -> "Events":
        """Events of an awkward array of event records (:func:`tfp_anomaly.data.awkward_io.from_awkward`):
        ``Events.from_awkward(events.to_awkward())`` equals ``events``; a user's own ``ak.zip`` works too
        (``N * {met, met_phi, objects: var * {code, pt, eta, phi, E}}``, ``unit`` naming its unit)."""
        from .awkward_io import from_awkward

        return from_awkward(array, unit=unit, meta=meta)

    def to_awkward(self):
        """The events as an awkward array, one record per event with its ``objects`` a variable-length
        list of ``Momentum4D`` records (code, pt, eta, phi, E), unit and meta in its parameters
        (:func:`tfp_anomaly.data.awkward_io.to_awkward`; needs the ``awkward`` package)."""
        from .awkward_io import to_awkward

        return to_awkward(self)

    # ------------------------------------------------------------------ basic protocol
    def __len__(self) -> int:
        return len(self.event_id)

    @property
    def n_objects(self) -> np.ndarray:
        """Number of objects per event, shape (N,)."""
        return np.diff(self.offsets)

    @property
    def event_index(self) -> np.ndarray:
        """For every object, the index of its event, shape (M,)."""
        return np.repeat(np.arange(len(self)), self.n_objects)

    @property
    def process_name(self) -> np.ndarray:
        """Per-event process names (object array)."""
        return np.asarray(self.processes, dtype=object)[self.process] if len(self.processes) else \
            np.zeros(len(self), dtype=object)

    def __getitem__(self, index) -> "Events":
        """Select events by slice, integer array or boolean mask; returns a new ``Events``."""
        if isinstance(index, (int, np.integer)):
            i = int(index) + len(self) if index < 0 else int(index)
            if not 0 <= i < len(self):
                raise IndexError(f"event {int(index)} out of range for {len(self)} events")
            index = slice(i, i + 1)
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self._slice(start, max(start, stop))
            index = np.arange(start, stop, step)
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {index.shape} for {len(self)} events")
            index = np.flatnonzero(index)
        return self._take(index.astype(np.int64))

    def _slice(self, start: int, stop: int) -> "Events":
        lo, hi = self.offsets[start], self.offsets[stop]
        return self._replace(slice(start, stop), slice(lo, hi), self.offsets[start:stop + 1] - lo)

    def _take(self, index: np.ndarray) -> "Events":
        counts = self.n_objects[index]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        starts = self.offsets[index]
        # position of each selected object in the flat arrays: start of its event + rank within event
        obj = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        return self._replace(index, obj, offsets)

    def _replace(self, ev, obj, offsets) -> "Events":
        kw = {f: getattr(self, f)[ev] for f in EVENT_FIELDS}
        kw.update({f: getattr(self, f)[obj] for f in OBJECT_FIELDS})
        labels = None if self.labels is None else self.labels[ev]
        return Events(**kw, offsets=offsets, processes=self.processes, labels=labels,
                      unit=self.unit, meta=dict(self.meta))

    def select_objects(self, keep) -> "Events":
        """A copy with only the objects where ``keep`` (an (M,) boolean mask) is True; every event stays,
        with fewer objects (e.g. ``events.select_objects(events.obj_pt > 20)``: objects above 20, in
        ``unit``)."""
        keep = np.asarray(keep, bool)
        if keep.shape != self.obj_type.shape:
            raise IndexError(f"object mask of shape {keep.shape} for {len(self.obj_type)} objects")
        counts = np.bincount(self.event_index[keep], minlength=len(self))
        return self._replace(slice(None), np.flatnonzero(keep), np.concatenate([[0], np.cumsum(counts)]))

    # ------------------------------------------------------------------ transformations
    def to_unit(self, unit: str) -> "Events":
        """Convert energies, momenta and MET to ``unit`` ("MeV" or "GeV"); angles are unchanged."""
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {tuple(UNITS)}, got {unit!r}")
        factor = UNITS[self.unit] / UNITS[unit]
        if factor == 1.0:
            return self
        return dataclasses.replace(self, met=self.met * factor, obj_e=self.obj_e * factor,
                                   obj_pt=self.obj_pt * factor, unit=unit, meta=dict(self.meta))

    def with_label(self, label) -> "Events":
        """A copy with truth ``labels``: ``label`` broadcast to ``(N,)`` (one label for every event, or an array)."""
        labels = np.broadcast_to(np.asarray(label, dtype=np.int8), (len(self),)).copy()
        return dataclasses.replace(self, labels=labels, meta=dict(self.meta))

    def count_by_type(self) -> dict[str, int]:
        """Total number of objects of each registered type present, keyed by object code."""
        counts = np.bincount(self.obj_type.astype(np.int64), minlength=len(objects.BY_ID))
        return {objects.code_of(i): int(c) for i, c in enumerate(counts) if c}

    def multiplicity(self, code: str) -> np.ndarray:
        """Number of objects of type ``code`` in each event, shape (N,)."""
        hit = self.obj_type == objects.type_id(code)
        return np.bincount(self.event_index[hit], minlength=len(self))

    def event(self, i: int) -> dict:
        """One event as a plain dict (for display and tests)."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return {
            "event_id": int(self.event_id[i]), "process": self.processes[self.process[i]],
            "weight": float(self.weight[i]), "met": float(self.met[i]), "met_phi": float(self.met_phi[i]),
            "label": None if self.labels is None else int(self.labels[i]),
            "objects": [(objects.code_of(t), float(e), float(p), float(h), float(f)) for t, e, p, h, f in
                        zip(self.obj_type[lo:hi], self.obj_e[lo:hi], self.obj_pt[lo:hi],
                            self.obj_eta[lo:hi], self.obj_phi[lo:hi])],
        }

    def __repr__(self) -> str:
        return (f"Events(n_events={len(self)}, n_objects={int(self.offsets[-1])}, unit={self.unit!r}, "
                f"processes={list(self.processes)}, labelled={self.labels is not None})")


def concatenate(parts: Sequence[Events]) -> Events:
    """Concatenate events; process tables are merged and codes remapped; units must agree."""
    parts = [p for p in parts]
    if not parts:
        return Events.empty()
    unit = parts[0].unit
    if any(p.unit != unit for p in parts):
        raise ValueError(f"cannot concatenate events in different units: {sorted({p.unit for p in parts})}")
    labelled = [p.labels is not None for p in parts]
    if any(labelled) and not all(labelled):
        raise ValueError("cannot concatenate labelled with unlabelled events; use Events.with_label first")
    processes: dict[str, int] = {}
    codes = []
    for p in parts:
        remap = np.array([processes.setdefault(name, len(processes)) for name in p.processes], np.int32)
        codes.append(remap[p.process] if len(p) else p.process)
    counts = np.concatenate([p.n_objects for p in parts])
    kw = {f: np.concatenate([getattr(p, f) for p in parts]) for f in EVENT_FIELDS + OBJECT_FIELDS}
    kw["process"] = np.concatenate(codes)
    meta = dict(parts[0].meta)
    return Events(**kw, offsets=np.concatenate([[0], np.cumsum(counts)]), processes=tuple(processes),
                  labels=np.concatenate([p.labels for p in parts]) if all(labelled) else None,
                  unit=unit, meta=meta)
