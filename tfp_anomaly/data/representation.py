"""The ordered 2D object representation ("object grid") of DarkFlow (Caron et al., arXiv:2105.14027 §4).

Each event becomes a fixed (rows × features) matrix: rows are object slots grouped in type blocks
(e.g. 13 jets, then 3 b-jets, ...), each block sorted by pT descending and zero-padded, optionally
followed by one MET row; columns are configurable features. A boolean mask marks real slots so that
losses can ignore padding. Objects beyond a block's cap (the lowest-pT ones) are dropped and counted.

Each object goes into one block at most. Blocks are filled in order, and a block takes, per event, the
highest-pT objects of its codes that no earlier block took, up to its cap: with
``[("j", 4), (["b", "j"], 2)]`` the four leading jets fill the first block and the two leading of the
remaining jets and b-jets the second (a b-jet is never a jet "again"). Blocks may therefore share
codes: a later block collects what an earlier one had no room for.

Objects of a type that no block holds, and objects beyond the caps, do not reach the model.
:meth:`ObjectGrid.check` refuses events of which more than :data:`MAX_DROPPED_FRACTION` of the objects
would be dropped so (a file that does not match the grid, e.g. hadron-level LHCO events, type ``h``,
on the DarkFlow grid: every object dropped, every event MET alone), and warns, with counts, when a
type present in the events has no block at all.

The MET row holds E = pT = MET, η = 0, φ = METphi (a massless object in the transverse plane).

Per-event physics observables (:mod:`.observables`: HT, MET, m_jj, multiplicities, ...) enter the model
input in one of two ways, :data:`PLACEMENTS` (the ``observables.as`` key of a configuration):

* ``grid``: :class:`ObjectGrid` with ``observables`` appends them as K extra columns to every real slot
  (0 in padded slots), so that a convolutional or set encoder sees the event context next to each
  object: the grid becomes (R, F + K);
* ``flat``: :class:`EventObservables`, the (N, K) vector of the observables alone, for a dense network
  (as the LHCO feature tables give); the object grid is not used.

Both are a *representation*: what :mod:`tfp_anomaly.inputs` needs of one, ``shape``, ``columns`` (the
names of the last axis), ``log_columns`` (the energy observables' columns, log1p-scaled by the run's
scaler), ``model_input(events)``, ``check(events, source)`` and ``get_config()``.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import ClassVar, Sequence

import numpy as np

from ..registry import Registry
from . import objects
from .errors import DataFormatError
from .events import Events
from .observables import OBSERVABLES, compute

log = logging.getLogger(__name__)

#: The largest fraction of a file's objects the grid may drop (no block for their type, or beyond a
#: block's cap) before :meth:`ObjectGrid.check` refuses the file as not matching the grid.
MAX_DROPPED_FRACTION = 0.5

# --------------------------------------------------------------------------- feature registry
def object_mass(e, pt, eta, phi):
    """m = √(E² − |p⃗|²) with |p⃗| = pT cosh η, in float64; m² clamped at 0: the files round E and pT to
    about six digits, which makes E² − |p⃗|² of a (nearly) massless object a small number of either sign."""
    p = np.asarray(pt, np.float64) * np.cosh(np.asarray(eta, np.float64))
    return np.sqrt(np.maximum(np.asarray(e, np.float64) ** 2 - p ** 2, 0.0))


#: feature name -> function of (E, pT, η, φ) arrays. ``log_*`` use log1p and so depend on the unit.
#: (Its kind is plural: :class:`ObjectGrid` names all unknown features of a grid at once.)
FEATURES = Registry("features")
for _name, _feature in {
    "E": lambda e, pt, eta, phi: e,
    "pt": lambda e, pt, eta, phi: pt,
    "eta": lambda e, pt, eta, phi: eta,
    "phi": lambda e, pt, eta, phi: phi,
    "cos_phi": lambda e, pt, eta, phi: np.cos(phi),
    "sin_phi": lambda e, pt, eta, phi: np.sin(phi),
    "log_pt": lambda e, pt, eta, phi: np.log1p(pt),
    "log_E": lambda e, pt, eta, phi: np.log1p(e),
    "px": lambda e, pt, eta, phi: pt * np.cos(phi),
    "py": lambda e, pt, eta, phi: pt * np.sin(phi),
    "pz": lambda e, pt, eta, phi: pt * np.sinh(eta),
    "m": object_mass,
    "log_m": lambda e, pt, eta, phi: np.log1p(object_mass(e, pt, eta, phi)),
}.items():
    FEATURES.register(_name, _feature)

# --------------------------------------------------------------------------- observables as input columns
def observable_names(names: Sequence[str]) -> list[str]:
    """``names`` as a list, each a registered observable (:data:`~.observables.OBSERVABLES`) named once."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in OBSERVABLES]
    if unknown:
        raise OBSERVABLES.unknown(unknown[0] if len(unknown) == 1 else unknown)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"observable {twice[0]!r} named twice in {names}")
    return names


def observable_columns(events: Events, names: Sequence[str]) -> np.ndarray:
    """(N, K) float64: column k the observable ``names[k]`` of each event, in the events' unit."""
    values = compute(events, names, unit=None)
    return np.stack([values[n] for n in names], axis=-1) if names else np.zeros((len(events), 0))


def energy_columns(names: Sequence[str], first: int = 0) -> list[int]:
    """The column indices (counted from ``first``) of the observables of ``names`` that are energies
    (:attr:`~.observables.Observable.energy`): log1p-scaled by the run's scaler."""
    return [first + k for k, n in enumerate(names) if OBSERVABLES[n].energy]


def check_observables(values: np.ndarray, names: Sequence[str], events: Events, source) -> None:
    """Refuse events (read from ``source``) with an observable that is not finite, naming the observable
    and the event (a NaN or infinite MET, pT or energy in the file)."""
    bad = ~np.isfinite(values)
    if bad.any():
        event, column = np.argwhere(bad)[0]
        raise DataFormatError(source, f"event {int(events.event_id[event])} (event {int(event) + 1} read) has "
                                      f"observable {names[column]} = {float(values[event, column])!r}: the observables "
                                      "must be finite (a NaN or infinite MET, pT or energy in the file)")


#: preset name -> :class:`ObjectGrid` arguments.
PRESETS = Registry("grid preset")
# DarkFlow / Dark Machines ConvVAE input: 13 j, 3 b, 3 m+, 3 m-, 3 e+, 3 e-, 3 g, MET row; (E, pT, η, φ)
PRESETS.register("darkflow", dict(blocks=[("j", 13), ("b", 3), ("m+", 3), ("m-", 3), ("e+", 3), ("e-", 3),
                                          ("g", 3)], met_row=True, features=["E", "pt", "eta", "phi"]))
# ADC2021 layout: 4 e, 4 m, 10 j (charge not recorded), MET row; (pT, η, cos φ, sin φ)
PRESETS.register("adc2021", dict(blocks=[("e", 4), ("m", 4), ("j", 10)], met_row=True,
                                 features=["pt", "eta", "cos_phi", "sin_phi"]))


@dataclasses.dataclass
class ObjectGrid:
    """The ordered object representation: events → an ``(N, R, F)`` float32 grid and an ``(N, R)`` mask.

    Row ``r`` of event ``n`` is one object slot: the slots come in type blocks, each block holds the
    event's objects of its codes sorted by pT descending, zero-padded to the block's cap (the
    lowest-pT objects beyond it are dropped), and an optional last row holds the MET. Each object
    fills one slot at most: blocks are filled in order, each from the objects no earlier block took
    (blocks may share codes; a later one takes what an earlier one had no room for). Column ``f`` is
    feature ``features[f]`` of :data:`FEATURES` computed from the object's (E, pT, η, φ);
    ``mask[n, r]`` is True where slot ``r`` holds a real object. R = Σ caps (+ 1 with the MET row),
    F = ``len(features)``. DarkFlow's input (Caron et al., arXiv:2105.14027 §4) is the ``darkflow``
    preset.

    Args:
        blocks: row blocks in order, ``(codes, cap)`` each: ``codes`` one object code or a list of codes
            pooled into one block (e.g. ``(["e-", "e+"], 4)``), ``cap`` its slots per event (≥ 1).
        met_row: append a MET row (E = pT = MET, η = 0, φ = METphi).
        features: column features, names from :data:`FEATURES`.
        observables: per-event observables (names of :data:`~.observables.OBSERVABLES`) appended as
            K more columns: column F + k of every real slot of an event holds its observable k (the
            same value in each of its real slots, 0 in padded slots), so the grid is (R, F + K).
    """

    blocks: Sequence = dataclasses.field(default_factory=lambda: list(PRESETS["darkflow"]["blocks"]))
    met_row: bool = True
    features: Sequence[str] = ("E", "pt", "eta", "phi")
    observables: Sequence[str] = ()

    #: the key of a run's data report (``data.json``) that holds :meth:`get_config`
    kind: ClassVar[str] = "grid"

    def __post_init__(self):
        self.blocks = [([codes] if isinstance(codes, str) else list(codes), int(cap)) for codes, cap in self.blocks]
        for codes, cap in self.blocks:
            for code in codes:
                objects.type_id(code)  # raises KeyError naming the known codes
            if cap < 1:
                raise ValueError(f"block {codes} has cap {cap}; caps must be >= 1")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise FEATURES.unknown(unknown)  # "unknown features [...]; available: ..."
        self.features = list(self.features)
        self.observables = observable_names(self.observables)

    @classmethod
    def preset(cls, name: str) -> "ObjectGrid":
        """The grid of preset ``name`` (:data:`PRESETS`)."""
        return cls(**PRESETS.lookup(name))

    def get_config(self) -> dict:
        """The grid's arguments as a JSON/YAML-friendly dict (:meth:`from_config` inverts it)."""
        config = {"blocks": [[codes[0] if len(codes) == 1 else codes, cap] for codes, cap in self.blocks],
                  "met_row": self.met_row, "features": list(self.features)}
        return {**config, "observables": list(self.observables)} if self.observables else config

    @classmethod
    def from_config(cls, config: dict) -> "ObjectGrid":
        """The grid of :meth:`get_config`'s dict; a ``preset`` key gives the defaults the other keys override."""
        if "preset" in config:
            base = dict(PRESETS.lookup(config["preset"]))
            base.update({k: v for k, v in config.items() if k != "preset"})
            config = base
        return cls(**config)

    @property
    def n_rows(self) -> int:
        """R: the number of rows (slots) of an event."""
        return sum(cap for _, cap in self.blocks) + int(self.met_row)

    @property
    def block_sizes(self) -> list[int]:
        """Rows per type block, in order (the MET row, if any, a block of one): the slot layout the
        set and graph encoders (:mod:`tfp_anomaly.models.sets`) need to give each object its type."""
        return [cap for _, cap in self.blocks] + ([1] if self.met_row else [])

    @property
    def shape(self) -> tuple:
        """``(R, F + K)``: the shape of one event's grid (K = the number of observables, often 0)."""
        return (self.n_rows, len(self.columns))

    @property
    def columns(self) -> list[str]:
        """The name of each column: the features, then the observables."""
        return list(self.features) + list(self.observables)

    @property
    def log_columns(self) -> list[int]:
        """The columns of the energy observables (log1p-scaled by the run's scaler with any it names)."""
        return energy_columns(self.observables, first=len(self.features))

    def describe(self) -> str:
        """The representation in words (error messages)."""
        extra = f" (features {', '.join(self.features)}; observables {', '.join(self.observables)})" \
            if self.observables else ""
        return f"an object grid of shape {self.shape}{extra}"

    @property
    def row_labels(self) -> list[str]:
        """A name per row: ``j1``, ``j2``, …, ``e-/e+1``, …, ``MET``."""
        labels = [f"{'/'.join(codes)}{k + 1}" for codes, cap in self.blocks for k in range(cap)]
        return labels + (["MET"] if self.met_row else [])

    def _place(self, events: Events):
        """Where each object goes: ``(slots, placed)`` with ``slots`` one ``(objects, events, rows)`` index
        triple per block and ``placed`` (M,) True for the objects that got a slot."""
        event_index = events.event_index
        placed = np.zeros(len(events.obj_type), bool)
        slots, row0 = [], 0
        for codes, cap in self.blocks:
            sel = np.flatnonzero(np.isin(events.obj_type, [objects.type_id(c) for c in codes]) & ~placed)
            ev = event_index[sel]
            order = np.lexsort((-events.obj_pt[sel], ev))  # by event, then pT descending
            sel, ev = sel[order], ev[order]
            first = np.searchsorted(ev, ev, side="left")
            rank = np.arange(len(ev)) - first  # position within the event's block
            keep = rank < cap
            placed[sel[keep]] = True
            slots.append((sel[keep], ev[keep], row0 + rank[keep]))
            row0 += cap
        return slots, placed

    def _last_block(self) -> np.ndarray:
        """Per object type id, the index of the last block that holds the type (-1: none does)."""
        last_block = np.full(len(objects.BY_ID), -1)
        for b, (codes, _) in enumerate(self.blocks):
            last_block[[objects.type_id(c) for c in codes]] = b
        return last_block

    def _dropped(self, events: Events, placed: np.ndarray):
        """``(beyond caps per block, objects per type with no block)`` of the objects not ``placed``:
        an object some block could hold counts for the last such block."""
        block_of = self._last_block()[events.obj_type[~placed].astype(np.int64)]
        counts = np.bincount(block_of + 1, minlength=len(self.blocks) + 1)
        beyond = {"/".join(codes): int(counts[b + 1]) for b, (codes, _) in enumerate(self.blocks)}
        return beyond, self.without_block(events)

    def without_block(self, events: Events) -> dict:
        """``{code: number of objects}`` of the object types in ``events`` that no block holds."""
        counts = np.bincount(events.obj_type.astype(np.int64), minlength=len(objects.BY_ID))
        return {objects.code_of(t): int(c) for t, c in enumerate(counts) if c and self._last_block()[t] < 0}

    def model_input(self, events: Events, with_counts: bool = False):
        """The model input of ``events``, ``{"x": (N, R, F + K), "mask": (N, R)}``; with ``with_counts``
        also ``{"objects_beyond_caps": ..., "objects_without_block": ...}`` for the run's data report."""
        if not with_counts:
            x, mask = self.transform(events)
            return {"x": x, "mask": mask}
        x, mask, overflow = self.transform(events, return_overflow=True)
        return {"x": x, "mask": mask}, {"objects_beyond_caps": overflow,
                                        "objects_without_block": self.without_block(events)}

    def transform(self, events: Events, return_overflow: bool = False):
        """``(x, mask)`` of ``events``: ``x`` (N, R, F + K) float32, ``mask`` (N, R) bool; with
        ``return_overflow`` also ``{block: number of objects dropped beyond its cap}`` (each dropped
        object counted once; objects of a type no block holds are counted by :meth:`dropped`)."""
        n = len(events)
        x = np.zeros((n,) + self.shape, np.float32)
        mask = np.zeros((n, self.n_rows), bool)
        slots, placed = self._place(events)
        for sel, ev, rows in slots:
            cols = self._features(events.obj_e[sel], events.obj_pt[sel], events.obj_eta[sel], events.obj_phi[sel])
            x[ev, rows, :len(self.features)] = cols
            mask[ev, rows] = True
        if self.met_row:
            zeros = np.zeros_like(events.met)
            x[:, -1, :len(self.features)] = self._features(events.met, events.met, zeros, events.met_phi)
            mask[:, -1] = True
        if self.observables:
            x[..., len(self.features):] = observable_columns(events, self.observables)[:, None, :] * mask[..., None]
        if not return_overflow:
            return x, mask
        return x, mask, self._dropped(events, placed)[0]

    def dropped(self, events: Events) -> dict:
        """What of ``events`` the grid leaves out: ``{"objects": M, "placed": ..., "beyond_caps": {block:
        n}, "no_block": {code: n}}`` (each object counted once)."""
        _, placed = self._place(events)
        beyond, homeless = self._dropped(events, placed)
        return {"objects": int(len(placed)), "placed": int(placed.sum()), "beyond_caps": beyond, "no_block": homeless}

    def check(self, events: Events, source, max_dropped: float = MAX_DROPPED_FRACTION) -> dict:
        """Refuse ``events`` (read from ``source``, named in the error) when more than ``max_dropped`` of
        their objects fall outside the grid; log a warning with counts when objects of a type no block
        holds are dropped at all. Returns :meth:`dropped`."""
        counts = self.dropped(events)
        total, lost = counts["objects"], counts["objects"] - counts["placed"]
        homeless = ", ".join(f"{n:,} of type {code!r} ({objects.BY_CODE[code].name})"
                             for code, n in counts["no_block"].items())
        codes = ", ".join(dict.fromkeys(c for block, _ in self.blocks for c in block))
        if total and lost > max_dropped * total:
            beyond = sum(counts["beyond_caps"].values())
            parts = ([f"{homeless} have no block (the grid's blocks hold {codes})"] if homeless else []) + \
                    ([f"{beyond:,} lie beyond the blocks' caps"] if beyond else [])
            raise DataFormatError(source, f"{lost:,} of {total:,} objects ({lost / total:.0%}) fall outside the object "
                                          f"grid, more than {max_dropped:.0%}: {'; '.join(parts)}. The file does not "
                                          "match the grid: use a grid whose blocks hold these objects, or a file of "
                                          "the kind the grid was made for")
        if homeless:
            log.warning("%s: %s objects dropped: %s have no block in the object grid (its blocks hold %s)",
                        source, f"{sum(counts['no_block'].values()):,}", homeless, codes)
        if self.observables:
            check_observables(observable_columns(events, self.observables), self.observables, events, source)
        return counts

    def _features(self, e, pt, eta, phi) -> np.ndarray:
        return np.stack([FEATURES[f](e, pt, eta, phi) for f in self.features], axis=-1)


@dataclasses.dataclass
class EventObservables:
    """The flat representation: events → the (N, K) float32 matrix of K per-event observables.

    Column k of event n is the observable ``names[k]`` of :data:`~.observables.OBSERVABLES` (HT, MET,
    m_jj, n_jets, ...; :mod:`.observables` gives their definitions), in the events' unit: a fixed-length
    vector per event for a dense network, as the LHCO high-level feature tables give. The objects
    themselves are not in it. The energy observables' columns (:attr:`log_columns`) are log1p-scaled
    by the run's scaler.

    Args:
        names: the observables, in column order (each once).
    """

    names: Sequence[str]

    #: the key of a run's data report (``data.json``) that holds :meth:`get_config`
    kind: ClassVar[str] = "observables"

    def __post_init__(self):
        self.names = observable_names(self.names)
        if not self.names:
            raise ValueError("EventObservables needs at least one observable")

    def get_config(self) -> dict:
        """``{"names": [...], "as": "flat"}``: the ``observables`` section that gives this representation."""
        return {"names": list(self.names), "as": "flat"}

    @property
    def shape(self) -> tuple:
        """``(K,)``: the shape of one event's input."""
        return (len(self.names),)

    @property
    def columns(self) -> list[str]:
        """The name of each column: the observables."""
        return list(self.names)

    @property
    def log_columns(self) -> list[int]:
        """The columns of the energy observables (log1p-scaled by the run's scaler with any it names)."""
        return energy_columns(self.names)

    def describe(self) -> str:
        """The representation in words (error messages)."""
        return f"the observables {', '.join(self.names)} (shape {self.shape})"

    def transform(self, events: Events) -> np.ndarray:
        """(N, K) float32 observables of ``events``."""
        return observable_columns(events, self.names).astype(np.float32)

    def model_input(self, events: Events, with_counts: bool = False):
        """The model input of ``events``: :meth:`transform`; with ``with_counts`` also the (empty) counts
        for the run's data report (every object counts in the observables, none is dropped)."""
        x = self.transform(events)
        return (x, {}) if with_counts else x

    def check(self, events: Events, source) -> dict:
        """Refuse ``events`` (read from ``source``) whose observables are not all finite; returns ``{}``."""
        check_observables(observable_columns(events, self.names), self.names, events, source)
        return {}


#: ``observables.as`` → ``placement(grid section, names)``: the representation that holds the
#: observables ``names``: ``grid`` appends them to every real slot of the grid of the ``grid`` section,
#: ``flat`` makes them the whole input.
PLACEMENTS = Registry("observables placement")
PLACEMENTS.register("grid", lambda grid, names: ObjectGrid.from_config({**grid, "observables": list(names)}))
PLACEMENTS.register("flat", lambda grid, names: EventObservables(names))


def make_representation(grid: dict, observables: dict | None = None):
    """The representation of events as model input from a configuration's ``grid`` and ``observables``
    sections: the object grid without observables (no ``observables.names``), else the placement of
    ``observables.as`` (:data:`PLACEMENTS`, ``flat`` by default)."""
    observables = observables or {}
    names = observables.get("names") or ()
    if not names:
        return ObjectGrid.from_config(grid)
    return PLACEMENTS.lookup(observables.get("as", "flat"), "observables.as")(grid, names)


def grid_chunks(path, grid, *, chunk_size: int = 100_000, format: str = "auto", **reader_kwargs):
    """Stream ``(x, mask)`` on ``grid`` (an :class:`ObjectGrid`) from an event file of any
    registered format, ``chunk_size`` events at a time: memory is bounded by the chunk, not the file.
    ``reader_kwargs`` go to the format's reader (``unit``, ``on_error``, ...)."""
    from .formats import open_events

    for chunk in open_events(path, format, chunk_size=chunk_size, **reader_kwargs):
        yield grid.transform(chunk)

