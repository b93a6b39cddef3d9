"""Process cards: the Pythia 8 settings of each Standard Model background and BSM signal.

Every card runs proton–proton collisions at √s = 13 TeV (``COMMON``) with Pythia's default tune
(Monash 2013, arXiv:1404.5630), parton showers, multiparton interactions and hadronization on.
Names of the settings are Pythia's (https://pythia.org/latest-manual/). The ``process_id`` is the
name written in the Dark Machines ``process_id`` column.
"""
from __future__ import annotations

import dataclasses

from ...registry import Registry

COMMON = ("Beams:idA = 2212", "Beams:idB = 2212", "Beams:eCM = 13000.",
          "Print:quiet = on")  # no listings or banners; a failed event is retried by the generation loop


@dataclasses.dataclass(frozen=True)
class ProcessCard:
    """The Pythia 8 settings of one process, run on top of :data:`COMMON`.

    Args:
        name: the process name, written in the ``process_id`` column of generated files.
        kind: ``"background"`` (Standard Model) or ``"signal"`` (beyond the Standard Model).
        description: the process in words.
        settings: Pythia setting strings (``"HardQCD:all = on"``).
    """

    name: str
    kind: str                  # "background" or "signal"
    description: str
    settings: tuple

    @property
    def label(self) -> int:
        """The truth label of its events: 1 for a signal, 0 for a background."""
        return int(self.kind == "signal")


#: process name -> :class:`ProcessCard`.
PROCESSES = Registry("process")


def register(card: ProcessCard) -> ProcessCard:
    """Add a :class:`ProcessCard` to :data:`PROCESSES` under its name."""
    return PROCESSES.register(card.name, card)


def get(name: str) -> ProcessCard:
    """The card of process ``name``; an unknown name raises naming the registered ones."""
    return PROCESSES.lookup(name)


def available(kind: str | None = None) -> list[str]:
    """Names of the registered processes (only those of ``kind``, "background" or "signal", if given)."""
    return [n for n, c in PROCESSES.items() if kind is None or c.kind == kind]


# ---------------------------------------------------------------- Standard Model backgrounds
# A pT-hat cut of 250 GeV on the 2 → 2 processes keeps the generated events where the default
# selection (HT ≥ 400 GeV) accepts them, so the sample costs minutes, not hours.
register(ProcessCard("qcd", "background", "QCD multijet, 2 → 2 hard QCD with pT-hat > 250 GeV",
                     ("HardQCD:all = on", "PhaseSpace:pTHatMin = 250.")))
register(ProcessCard("wjets", "background", "W + jet (qq̄ → Wg, qg → Wq), all W decays, pT-hat > 250 GeV",
                     ("WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on",
                      "PhaseSpace:pTHatMin = 250.")))
register(ProcessCard("zjets", "background", "Z + jet (qq̄ → Zg, qg → Zq), all Z decays, pT-hat > 250 GeV",
                     ("WeakBosonAndParton:qqbar2gmZg = on", "WeakBosonAndParton:qg2gmZq = on",
                      "WeakZ0:gmZmode = 2", "PhaseSpace:pTHatMin = 250.")))
register(ProcessCard("ttbar", "background", "t t̄ (gg, qq̄ → t t̄), all decays",
                     ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on")))

# ---------------------------------------------------------------- BSM signals (built into Pythia)
register(ProcessCard("wprime_wz", "signal", "W′ (2 TeV, sequential SM couplings) → W Z, all W and Z decays",
                     ("NewGaugeBoson:ffbar2Wprime = on", "34:m0 = 2000.", "Wprime:coup2WZ = 1.",
                      "34:onMode = off", "34:onIfMatch = 24 23")))
register(ProcessCard("zprime_tt", "signal", "Z′ (2 TeV, SM-like couplings, Z′ only) → t t̄, all top decays",
                     ("NewGaugeBoson:ffbar2gmZZprime = on", "Zprime:gmZmode = 3", "32:m0 = 2000.",
                      "32:onMode = off", "32:onIfAny = 6")))
register(ProcessCard("qstar", "signal", "excited quarks u*, d* (2.5 TeV, Λ = 2.5 TeV) → q g and other decays",
                     ("ExcitedFermion:dg2dStar = on", "ExcitedFermion:ug2uStar = on", "4000001:m0 = 2500.",
                      "4000002:m0 = 2500.", "ExcitedFermion:Lambda = 2500.")))
