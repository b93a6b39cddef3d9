"""Run Pythia 8 for a process card, pass each event through the detector simulation and a selection.

Seeds: Pythia's ``Random:seed`` and the detector's NumPy generator are both derived from the user's
``seed`` and the process name (:func:`process_seed`), so a (process, seed, events) triple always
gives the same file, and different processes never share a random stream.
"""
from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from .. import objects
from ..events import Events
from . import processes, selections
from .detector import DetectorConfig, Particles, reconstruct


def _need_pythia():
    try:
        import fastjet  # noqa: F401
        import pythia8mc
    except ImportError:
        raise ImportError("event generation needs Pythia 8 and fastjet: pip install 'tfp-anomaly[generate]' "
                          "(pythia8mc compiles from source, about 35 minutes on 2 cores)") from None
    return pythia8mc


def process_seed(seed: int, name: str, stream: int = 0) -> int:
    """Pythia's ``Random:seed`` (1 … 900,000,000) for a process (and one of its parallel streams),
    from the user's seed."""
    return 1 + (int(seed) * 1_000_003 + zlib.crc32(f"{name}#{stream}".encode())) % 899_999_999


def make_pythia(card: processes.ProcessCard, seed: int, stream: int = 0):
    """An initialised ``pythia8mc.Pythia`` for ``card``, seeded for (seed, process, stream)."""
    pythia8 = _need_pythia()
    pythia = pythia8.Pythia("", False)  # no banner
    for setting in processes.COMMON + card.settings + ("Random:setSeed = on", f"Random:seed = {process_seed(seed, card.name, stream)}"):
        if not pythia.readString(setting):
            raise ValueError(f"process {card.name!r}: Pythia rejected the setting {setting!r}")
    if not pythia.init():
        raise RuntimeError(f"process {card.name!r}: Pythia failed to initialise")
    return pythia


def _flavour(pid: int) -> int:
    """Heaviest quark flavour of a hadron (5 b, 4 c, else 0)."""
    pid = abs(pid)
    digits = {(pid // 100) % 10, (pid // 1000) % 10}
    return 5 if 5 in digits else 4 if 4 in digits else 0


def particles_of(event) -> Particles:
    """The stable final state and the B-/C-hadrons of a Pythia event record (GeV)."""
    final, momenta, b_hadrons, c_hadrons = [], [], [], []
    for prt in event:
        if prt.isFinal():
            final.append(prt.id())
            momenta.append((prt.px(), prt.py(), prt.pz(), prt.e()))
        elif prt.isHadron():
            flavour = _flavour(prt.id())
            if flavour:
                (b_hadrons if flavour == 5 else c_hadrons).append((prt.px(), prt.py(), prt.pz(), prt.e()))
    as_array = lambda rows: np.asarray(rows, float).reshape(-1, 4)  # noqa: E731
    return Particles(np.asarray(final, np.int64), as_array(momenta), as_array(b_hadrons), as_array(c_hadrons))


@dataclasses.dataclass
class GenerationStats:
    """What one generation run of a process did.

    Args:
        process: the process name.
        seed: the user's seed.
        pythia_seed: Pythia's ``Random:seed`` (:func:`process_seed`).
        generated: events Pythia generated.
        accepted: events that passed the selection.
        sigma_mb: Pythia's estimate of the generated cross section σ (mb).
        sigma_error_mb: its statistical uncertainty (mb).
    """

    process: str
    seed: int
    pythia_seed: int
    generated: int
    accepted: int
    sigma_mb: float          # Pythia's estimate of the generated cross section (mb)
    sigma_error_mb: float

    @property
    def efficiency(self) -> float:
        """ε: the fraction of generated events accepted by the selection."""
        return self.accepted / max(self.generated, 1)

    @property
    def accepted_sigma_pb(self) -> float:
        """σ·ε, the accepted cross section (pb)."""
        return self.sigma_mb * 1e9 * self.efficiency


def generate(process: str, n_events: int, seed: int = 0, selection: str = "ht400",
             detector: DetectorConfig | None = None, max_generated: int | None = None, progress=None,
             stream: int = 0):
    """(Events in GeV with ``process_id`` = the process name and label 0/1, GenerationStats).

    Generates until ``n_events`` pass the selection (or ``max_generated`` events were tried).
    ``progress(accepted)`` is called after every accepted event. ``stream`` selects one of the
    independent random streams of (process, seed), for generating one process in parallel parts.
    """
    card = processes.get(process)
    keep = selections.get(selection)
    detector = detector or DetectorConfig()
    pythia = make_pythia(card, seed, stream)
    rng = np.random.default_rng([int(seed), zlib.crc32(card.name.encode()), int(stream)])
    max_generated = max_generated or 1000 * n_events
    rows, generated = [], 0
    while len(rows) < n_events and generated < max_generated:
        if not pythia.next():
            continue
        generated += 1
        found, met, met_phi = reconstruct(particles_of(pythia.event), detector, rng)
        if keep(found, met):
            rows.append((found, met, met_phi))
            if progress:
                progress(len(rows))
    info = pythia.infoPython() if hasattr(pythia, "infoPython") else pythia.info
    stats = GenerationStats(process, int(seed), process_seed(seed, card.name, stream), generated, len(rows),
                            float(info.sigmaGen()), float(info.sigmaErr()))
    return to_events(rows, card), stats


def to_events(rows, card: processes.ProcessCard) -> Events:
    """Events (GeV) from [(objects, met, met_phi)], objects ordered by type then pT as in the challenge files."""
    order = {code: k for k, code in enumerate(objects.DARKMACHINES_CODES)}
    counts, flat = [], []
    for found, _, _ in rows:
        found = sorted(found, key=lambda o: (order[o[0]], -o[2]))
        counts.append(len(found))
        flat.extend(found)
    n = len(rows)
    column = lambda k, dtype=float: np.array([o[k] for o in flat], dtype).reshape(-1)  # noqa: E731
    return Events(event_id=np.arange(n), process=np.zeros(n), processes=(card.name,), weight=np.ones(n),
                  met=np.array([r[1] for r in rows]).reshape(-1), met_phi=np.array([r[2] for r in rows]).reshape(-1),
                  offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                  obj_type=np.array([objects.type_id(o[0]) for o in flat], np.int64).reshape(-1),
                  obj_e=column(1), obj_pt=column(2), obj_eta=column(3), obj_phi=column(4),
                  labels=np.full(n, card.label, np.int8), unit="GeV")
