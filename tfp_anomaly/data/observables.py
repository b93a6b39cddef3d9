"""Per-event physics observables of :class:`~.events.Events`: HT, MET, m_eff, m_jj, object multiplicities.

Each observable is a vectorised function of a batch of events returning one float64 value per event, in
the events' ``unit`` for the dimensionful ones. They serve two purposes: model input (the
``observables`` configuration section puts them on the object grid or makes them the flat input vector,
:mod:`tfp_anomaly.inputs`), and the report's "what did it find?" section, which compares their
distributions in background and signal before and after the cut on the anomaly score (``tfp-anomaly
score`` stores :data:`REPORT_OBSERVABLES` with every scored event).

Definitions (the usual ones of LHC searches; "jets" are the objects of type ``j`` and ``b``):

* ``HT`` = Σ pT over the jets of the event (no further threshold: the objects in the files already
  passed their selection cuts, e.g. pT > 20 GeV for Dark Machines jets, arXiv:2105.14027 §2);
* ``MET`` = the missing transverse momentum |p_T^miss|;
* ``m_eff`` = HT + MET (the effective mass of SUSY searches);
* ``m_jj`` = the invariant mass of the two jets of highest pT, √((E₁+E₂)² − |p⃗₁+p⃗₂|²) with
  p⃗ = (pT cos φ, pT sin φ, pT sinh η); 0 for an event with fewer than two jets. The square is clamped at
  0 before the root: for (nearly) massless, collinear pairs rounding can make it slightly negative;
* ``n_jets``, ``n_b``, ``n_e``, ``n_mu``, ``n_lep`` (electrons and muons of either charge, or charge not
  recorded), ``n_g`` (photons), ``n_objects``: multiplicities.

A new observable plugs in with ``OBSERVABLES.register(name, Observable(...))``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from ..registry import Registry
from . import objects
from .events import Events

#: object codes counted as jets, electrons, muons and photons
JETS, ELECTRONS, MUONS, PHOTONS = ("j", "b"), ("e-", "e+", "e"), ("m-", "m+", "m"), ("g",)


@dataclasses.dataclass(frozen=True)
class Observable:
    """One per-event observable.

    Args:
        compute: ``compute(events) -> (N,)`` values (float64).
        description: one line, with the unit.
        discrete: an integer count (histogrammed with integer bins).
        energy: dimension of energy (in the events' ``unit``), so log1p-scaled as model input.
    """

    compute: Callable[[Events], np.ndarray]
    description: str
    discrete: bool = False
    energy: bool = False


def _of_types(events: Events, codes: Sequence[str]) -> np.ndarray:
    """(M,) boolean mask of the objects whose type is one of ``codes``."""
    return np.isin(events.obj_type, [objects.type_id(c) for c in codes])


def multiplicity(events: Events, codes: Sequence[str]) -> np.ndarray:
    """Number of objects of types ``codes`` in each event, (N,) float64."""
    hit = _of_types(events, codes)
    return np.bincount(events.event_index[hit], minlength=len(events)).astype(np.float64)


def scalar_sum_pt(events: Events, codes: Sequence[str] = JETS) -> np.ndarray:
    """Σ pT of the objects of types ``codes`` per event (HT for jets), (N,) float64."""
    hit = _of_types(events, codes)
    return np.bincount(events.event_index[hit], weights=events.obj_pt[hit].astype(np.float64),
                       minlength=len(events))


def leading(events: Events, codes: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(index, present)``: per event the flat index of its ``k``-th (0-based) object of types ``codes``
    by pT, descending, (N,) int64 (0 where absent), and whether the event has one."""
    sel = np.flatnonzero(_of_types(events, codes))
    ev = events.event_index[sel]
    order = np.lexsort((-events.obj_pt[sel], ev))  # by event, then pT descending
    sel, ev = sel[order], ev[order]
    rank = np.arange(len(ev)) - np.searchsorted(ev, ev, side="left")
    index, present = np.zeros(len(events), np.int64), np.zeros(len(events), bool)
    index[ev[rank == k]] = sel[rank == k]
    present[ev[rank == k]] = True
    return index, present


def four_momentum(events: Events, index: np.ndarray) -> np.ndarray:
    """(len(index), 4) float64 (E, px, py, pz) of the objects at flat positions ``index``."""
    pt, eta, phi = (getattr(events, f)[index].astype(np.float64) for f in ("obj_pt", "obj_eta", "obj_phi"))
    return np.stack([events.obj_e[index].astype(np.float64), pt * np.cos(phi), pt * np.sin(phi),
                     pt * np.sinh(eta)], axis=-1)


def invariant_mass(p: np.ndarray) -> np.ndarray:
    """m = √(E² − |p⃗|²) of (…, 4) four-momenta (E, px, py, pz); m² clamped at 0 (rounding of massless,
    collinear momenta can make it slightly negative)."""
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    return np.sqrt(np.maximum(m2, 0.0))


def dijet_mass(events: Events) -> np.ndarray:
    """m_jj of the two leading jets per event (0 with fewer than two jets), (N,) float64."""
    first, _ = leading(events, JETS, 0)
    second, two = leading(events, JETS, 1)
    mass = invariant_mass(four_momentum(events, first) + four_momentum(events, second)) if len(events) else \
        np.zeros(0)
    return np.where(two, mass, 0.0)


#: observable name -> :class:`Observable`
OBSERVABLES = Registry("observable")
for _name, _observable in {
    "HT": Observable(scalar_sum_pt, "scalar sum of the jets' pT (GeV)", energy=True),
    "MET": Observable(lambda ev: ev.met.astype(np.float64), "missing transverse momentum (GeV)", energy=True),
    "m_eff": Observable(lambda ev: scalar_sum_pt(ev) + ev.met.astype(np.float64), "HT + MET (GeV)", energy=True),
    "m_jj": Observable(dijet_mass, "invariant mass of the two leading jets, 0 with fewer (GeV)", energy=True),
    "n_jets": Observable(lambda ev: multiplicity(ev, JETS), "number of jets (b-tagged or not)", discrete=True),
    "n_b": Observable(lambda ev: multiplicity(ev, ("b",)), "number of b-tagged jets", discrete=True),
    "n_e": Observable(lambda ev: multiplicity(ev, ELECTRONS), "number of electrons", discrete=True),
    "n_mu": Observable(lambda ev: multiplicity(ev, MUONS), "number of muons", discrete=True),
    "n_lep": Observable(lambda ev: multiplicity(ev, ELECTRONS + MUONS), "number of electrons and muons",
                        discrete=True),
    "n_g": Observable(lambda ev: multiplicity(ev, PHOTONS), "number of photons", discrete=True),
    "n_objects": Observable(lambda ev: ev.n_objects.astype(np.float64), "number of objects", discrete=True),
}.items():
    OBSERVABLES.register(_name, _observable)

#: the observables stored with every scored event for the report ("what did it find?")
REPORT_OBSERVABLES = ("HT", "MET", "m_jj", "n_jets", "n_b", "n_lep", "n_g")


def compute(events: Events, names: Sequence[str] = REPORT_OBSERVABLES, unit: str | None = "GeV") -> dict:
    """``{name: (N,) float64}`` of the observables ``names`` of ``events``, energies in ``unit`` (the
    events' own unit with None). An unknown name raises naming the registered ones."""
    unknown = [n for n in names if n not in OBSERVABLES]
    if unknown:
        raise OBSERVABLES.unknown(unknown)
    events = events if unit is None else events.to_unit(unit)
    return {name: OBSERVABLES[name].compute(events) for name in names}


def available() -> list[str]:
    """The registered observable names."""
    return list(OBSERVABLES)
