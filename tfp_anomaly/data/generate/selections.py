"""Event selections on reconstructed objects (GeV): a registry of predicates.

HT is the scalar sum of the pT of jets and b-jets. The ``dm_chan*`` selections follow the channel
definitions of the Dark Machines challenge (arXiv:2105.14027, section 2.2) as far as they use
quantities of this detector simulation.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from ...registry import Registry


class Selection(NamedTuple):
    """An event selection.

    Args:
        predicate: ``predicate(objects, met) -> bool`` with ``objects`` a list of
            ``(code, E, pT, η, φ)`` tuples and ``met`` the missing transverse momentum, in GeV.
        description: the cut in words.
    """

    predicate: Callable
    description: str


#: selection name -> :class:`Selection`.
SELECTIONS = Registry("selection")


def register(name: str, description: str):
    """Decorator: add a predicate ``fn(objects, met) -> bool`` to :data:`SELECTIONS` as ``name``."""
    def wrap(fn):
        SELECTIONS.register(name, Selection(fn, description))
        return fn
    return wrap


def get(name: str) -> Callable:
    """The predicate of selection ``name``; an unknown name raises naming the registered ones."""
    return SELECTIONS.lookup(name).predicate


def ht(objects) -> float:
    """HT: the scalar sum of the pT of jets and b-jets."""
    return sum(pt for code, _, pt, _, _ in objects if code in ("j", "b"))


def leptons(objects, pt_min=15.0) -> int:
    """The number of electrons and muons with pT > ``pt_min``."""
    return sum(1 for code, _, pt, _, _ in objects if code[0] in "em" and pt > pt_min)


@register("none", "every event")
def everything(objects, met) -> bool:
    return True


@register("ht400", "HT ≥ 400 GeV")
def ht400(objects, met) -> bool:
    return ht(objects) >= 400.0


@register("dm_chan3", "Dark Machines channel 3: HT ≥ 600 GeV and MET ≥ 100 GeV")
def dm_chan3(objects, met) -> bool:
    return ht(objects) >= 600.0 and met >= 100.0


@register("dm_chan2b", "Dark Machines channel 2b: ≥ 2 leptons (e, μ) with pT > 15 GeV, MET ≥ 50 GeV, HT ≥ 50 GeV")
def dm_chan2b(objects, met) -> bool:
    return leptons(objects) >= 2 and met >= 50.0 and ht(objects) >= 50.0
