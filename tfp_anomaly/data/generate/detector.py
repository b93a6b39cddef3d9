"""A simple fast detector simulation: generator-level particles → reconstructed objects and MET.

Per event, from the stable final-state particles (GeV, with the B- and C-hadrons of the history):

1. **Acceptance**: visible particles (not neutrinos or the invisible BSM states) with |η| below the
   calorimeter coverage.
2. **Isolated electrons, muons, photons**: pT and |η| acceptance, relative isolation
   Σ pT(other visible particles within ΔR < ``isolation_cone``) < ``isolation_max`` × pT.
3. **Jets**: anti-kT (Cacciari, Salam & Soyez 2008, arXiv:0802.1189) with R = ``jet_radius`` through
   fastjet, on the visible particles in acceptance that are not isolated objects; pT and |η| cuts.
4. **b-tagging**: a jet within ΔR < ``jet_radius`` of a B-hadron (pT > 5 GeV) is tagged with
   probability ``btag_efficiency``; else one near a C-hadron with ``ctag_mistag``; else ``light_mistag``.
5. **Smearing**: each object's energy and pT are scaled by 1 + N(0, σ), with σ/E = a/√E ⊕ b
   (calorimeters) or σ/pT = a ⊕ b·pT (muons); η and φ unchanged.
6. **Thresholds after smearing**: an object is kept only if its *smeared* pT passes its type's
   threshold, so every object written satisfies the documented cuts. Jets are clustered down to
   ``jet_candidate_fraction`` × ``jet_pt_min`` so that jets just below the threshold can fluctuate
   above it, as jets above it can fall below (the spectrum near the cut is not biased).
7. **MET**: minus the vector sum of the pT of every visible particle in acceptance, with the
   candidates' smeared momenta in place of their true ones (a candidate below its threshold after
   smearing is still measured, only not listed as an object). Before smearing, a fully visible event
   has MET ≈ 0 (up to particles beyond the calorimeter's |η|).

Every parameter and the source of its value is in :class:`DetectorConfig`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

#: |PDG id| of invisible particles: neutrinos, the lightest neutralino, Pythia's generic DM states
INVISIBLE = frozenset({12, 14, 16, 1000022, 1000039, 51, 52, 53})


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Detector parameters; units GeV. Sources:

    * acceptance and resolutions: the ATLAS detector paper (JINST 3 (2008) S08003): calorimeters to
      |η| = 4.9; EM calorimeter σ/E = 10%/√E ⊕ 0.7%; hadronic (jets) σ/E = 50%/√E ⊕ 3%; tracking
      to |η| = 2.5; muon spectrometer to |η| = 2.7 with σ(pT)/pT ≈ 10% at 1 TeV (here 2% ⊕ 1e-4·pT);
    * object thresholds: the Dark Machines challenge object definitions (arXiv:2105.14027): jets
      pT > 20 GeV, |η| < 2.8; electrons and muons pT > 15 GeV; photons pT > 20 GeV; applied to the
      smeared pT; jets are clustered from ``jet_candidate_fraction`` of the threshold (0.5: 10 GeV);
    * isolation: ΔR < 0.3 and 10% relative, typical of ATLAS "loose" track/calorimeter isolation;
    * b-tagging: the ATLAS MV2c10 70% working point (arXiv:1907.05120): b efficiency 0.70, c-jet
      rejection ≈ 12 (mistag 0.08), light-jet rejection ≈ 380 (0.0026), within |η| < 2.5.
    """

    calorimeter_eta_max: float = 4.9
    jet_radius: float = 0.4
    jet_pt_min: float = 20.0
    jet_candidate_fraction: float = 0.5        # jets clustered from 0.5 × jet_pt_min, cut after smearing
    jet_eta_max: float = 2.8
    electron_pt_min: float = 15.0
    electron_eta_max: float = 2.47
    muon_pt_min: float = 15.0
    muon_eta_max: float = 2.7
    photon_pt_min: float = 20.0
    photon_eta_max: float = 2.37
    isolation_cone: float = 0.3
    isolation_max: float = 0.1
    btag_efficiency: float = 0.70
    ctag_mistag: float = 0.08
    light_mistag: float = 0.0026
    btag_eta_max: float = 2.5
    heavy_hadron_pt_min: float = 5.0
    jet_resolution: tuple = (0.50, 0.03)       # (stochastic a, constant b): σ/E = a/√E ⊕ b
    em_resolution: tuple = (0.10, 0.007)
    muon_resolution: tuple = (0.02, 1e-4)      # σ/pT = a ⊕ b·pT
    smear: bool = True


@dataclasses.dataclass
class Particles:
    """One event's stable final-state particles and heavy-flavour hadrons (GeV)."""

    pid: np.ndarray            # (n,) PDG ids
    p: np.ndarray              # (n, 4) px, py, pz, E
    b_hadrons: np.ndarray      # (m, 4) momenta of B-hadrons
    c_hadrons: np.ndarray      # (k, 4) momenta of C-hadrons


def kinematics(p: np.ndarray):
    """(pT, η, φ) of (n, 4) momenta; η is clamped for particles along the beam (pT → 0)."""
    pt = np.hypot(p[:, 0], p[:, 1])
    # arcsinh(pz/pT) diverges at pT = 0: floor pT so a beam-collinear particle gets a large finite η
    eta = np.arcsinh(p[:, 2] / np.maximum(pt, 1e-9))
    return pt, eta, np.arctan2(p[:, 1], p[:, 0])


def delta_r(eta1, phi1, eta2, phi2):
    dphi = np.mod(phi1 - phi2 + np.pi, 2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


#: which resolution applies to each object code
RESOLUTION_OF = {"j": "jet", "b": "jet", "e-": "em", "e+": "em", "g": "em", "m-": "muon", "m+": "muon"}


def resolution(code: str, energy: float, pt: float, config: DetectorConfig) -> float:
    """Relative resolution σ/E (calorimeter objects) or σ/pT (muons) of an object."""
    kind = RESOLUTION_OF[code]
    if kind == "muon":
        a, b = config.muon_resolution
        return float(np.hypot(a, b * pt))
    a, b = config.jet_resolution if kind == "jet" else config.em_resolution
    return float(np.hypot(a / np.sqrt(max(energy, 1e-3)), b))


def _isolated(index, pt, eta, phi, config):
    cone = delta_r(eta, phi, eta[index], phi[index]) < config.isolation_cone
    cone[index] = False
    return pt[cone].sum() < config.isolation_max * pt[index]


def _leptons_and_photons(particles, visible, pt, eta, phi, config):
    """[(code, index)] of isolated e/μ/γ in acceptance, with the Dark Machines codes."""
    cuts = {11: ("e", config.electron_pt_min, config.electron_eta_max),
            13: ("m", config.muon_pt_min, config.muon_eta_max),
            22: ("g", config.photon_pt_min, config.photon_eta_max)}
    found, visible_pt = [], np.where(visible, pt, 0.0)
    for i in np.flatnonzero(visible):
        pid = int(particles.pid[i])
        if abs(pid) not in cuts:
            continue
        code, pt_min, eta_max = cuts[abs(pid)]
        if pt[i] > pt_min and abs(eta[i]) < eta_max and _isolated(i, visible_pt, eta, phi, config):
            # e-/mu- have positive PDG ids
            found.append((code if code == "g" else code + ("-" if pid > 0 else "+"), i))
    return found


def pt_threshold(code: str, config: DetectorConfig) -> float:
    """The pT an object of type ``code`` needs (after smearing) to be reconstructed, in GeV."""
    return {"j": config.jet_pt_min, "b": config.jet_pt_min, "e-": config.electron_pt_min,
            "e+": config.electron_pt_min, "m-": config.muon_pt_min, "m+": config.muon_pt_min,
            "g": config.photon_pt_min}[code]


def _cluster(momenta: np.ndarray, config):
    """anti-kT jets of (n, 4) momenta with pT above ``jet_candidate_fraction × jet_pt_min``: list of
    (4,) momenta, pT-ordered."""
    import fastjet

    inputs = [fastjet.PseudoJet(*map(float, m)) for m in momenta]
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, config.jet_radius)
    sequence = fastjet.ClusterSequence(inputs, definition)
    jets = fastjet.sorted_by_pt(sequence.inclusive_jets(config.jet_pt_min * config.jet_candidate_fraction))
    return np.array([[j.px(), j.py(), j.pz(), j.e()] for j in jets]).reshape(-1, 4)


def _btag(jet_eta, jet_phi, particles, config, rng) -> bool:
    if abs(jet_eta) > config.btag_eta_max:
        return False
    for hadrons, probability in ((particles.b_hadrons, config.btag_efficiency),
                                 (particles.c_hadrons, config.ctag_mistag)):
        if len(hadrons):
            h_pt, h_eta, h_phi = kinematics(hadrons)
            near = (h_pt > config.heavy_hadron_pt_min) & (delta_r(h_eta, h_phi, jet_eta, jet_phi) < config.jet_radius)
            if near.any():
                return bool(rng.random() < probability)
    return bool(rng.random() < config.light_mistag)


def reconstruct(particles: Particles, config: DetectorConfig, rng: np.random.Generator):
    """(objects, met, met_phi): objects a list of (code, E, pT, η, φ), pT-ordered within each type,
    each with its smeared pT above its type's threshold (:func:`pt_threshold`)."""
    pt, eta, phi = kinematics(particles.p)
    visible = ~np.isin(np.abs(particles.pid), list(INVISIBLE)) & (np.abs(eta) < config.calorimeter_eta_max)
    true_sum = particles.p[visible, :2].sum(axis=0)
    isolated = _leptons_and_photons(particles, visible, pt, eta, phi, config)
    candidates = [(code, particles.p[i]) for code, i in isolated]
    in_jets = visible.copy()
    in_jets[[i for _, i in isolated]] = False
    for jet in _cluster(particles.p[in_jets], config):
        j_pt, j_eta, j_phi = (v[0] for v in kinematics(jet[None]))
        if abs(j_eta) < config.jet_eta_max:
            candidates.append(("b" if _btag(j_eta, j_phi, particles, config, rng) else "j", jet))
    objects, shift = [], np.zeros(2)
    for code, momentum in candidates:
        o_pt, o_eta, o_phi = (v[0] for v in kinematics(momentum[None]))
        scale = 1.0
        if config.smear:
            sigma = resolution(code, momentum[3], o_pt, config)
            scale = max(1.0 + sigma * rng.normal(), 0.0)  # a downward fluctuation beyond −100% is zero
        shift += (scale - 1.0) * momentum[:2]
        if o_pt * scale > pt_threshold(code, config):  # the cut applies to what the detector measured
            objects.append((code, momentum[3] * scale, o_pt * scale, o_eta, o_phi))
    met_vector = -(true_sum + shift)
    return objects, float(np.hypot(*met_vector)), float(np.arctan2(met_vector[1], met_vector[0]))
