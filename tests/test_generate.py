"""Event generation: the detector simulation on hand-built events (needs fastjet), physics sanity of
Pythia events (needs the 'generate' extra; skipped without it), and the shipped sample (no extra)."""
import gzip

import numpy as np
import pytest

from tfp_anomaly.data import read_darkmachines
from tfp_anomaly.data.generate.detector import DetectorConfig, Particles, reconstruct, resolution
from tfp_anomaly.data.generate.processes import PROCESSES, available

EXACT = DetectorConfig(smear=False)


def spray(pt, eta, phi, n=10, pid=211, rng=None):
    """``n`` massless particles sharing ``pt`` within ΔR ≈ 0.05 of (η, φ)."""
    rng = rng or np.random.default_rng(0)
    etas, phis = eta + 0.05 * rng.normal(size=n), phi + 0.05 * rng.normal(size=n)
    pts = np.full(n, pt / n)
    p = np.stack([pts * np.cos(phis), pts * np.sin(phis), pts * np.sinh(etas), pts * np.cosh(etas)], 1)
    return np.full(n, pid), p


def event(*parts, b=(), c=()):
    pid = np.concatenate([p[0] for p in parts])
    p = np.concatenate([p[1] for p in parts])
    as4 = lambda rows: np.asarray(rows, float).reshape(-1, 4)  # noqa: E731
    return Particles(pid, p, as4(b), as4(c))


def single(pid, pt, eta, phi):
    return np.array([pid]), np.array([[pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)]])


@pytest.fixture(autouse=True)
def _fastjet():
    pytest.importorskip("fastjet", reason="the detector simulation clusters jets with fastjet ('generate' extra)")


def test_back_to_back_jets_and_an_isolated_electron_with_met_zero_before_smearing():
    particles = event(spray(300, 0.5, 0.2), spray(250, -1.0, 0.2 + np.pi), single(11, 50, 1.5, -1.3))
    objects, met, _ = reconstruct(particles, EXACT, np.random.default_rng(0))
    codes = sorted(o[0] for o in objects)
    assert codes == ["e-", "j", "j"]
    jets = sorted((o for o in objects if o[0] == "j"), key=lambda o: -o[2])
    for jet, spray_p in zip(jets, (particles.p[:10], particles.p[10:20])):  # a jet is its spray's vector sum
        assert jet[2] == pytest.approx(np.hypot(*spray_p[:, :2].sum(0)), rel=1e-9)
        assert jet[1] == pytest.approx(spray_p[:, 3].sum(), rel=1e-9)
    # fully visible: MET is the balance of the visible transverse momenta, here |300 − 250 + e| vector sum
    visible = particles.p[:, :2].sum(0)
    assert met == pytest.approx(np.hypot(*visible), abs=1e-6)


def test_a_neutrino_is_missing_energy_and_a_positron_is_e_plus():
    particles = event(spray(200, 0.0, 0.0), single(-11, 60, 0.3, 2.0), single(12, 140, 0.1, np.pi))
    objects, met, met_phi = reconstruct(particles, EXACT, np.random.default_rng(0))
    assert "e+" in [o[0] for o in objects]
    visible = particles.p[:-1, :2].sum(0)  # everything but the neutrino
    assert met == pytest.approx(np.hypot(*visible), rel=1e-9)
    assert met_phi == pytest.approx(np.arctan2(-visible[1], -visible[0]), abs=1e-9)


def test_non_isolated_electron_stays_in_the_jet():
    particles = event(spray(200, 0.0, 0.0), single(11, 20, 0.02, 0.02))
    objects, _, _ = reconstruct(particles, EXACT, np.random.default_rng(0))
    assert [o[0] for o in objects] == ["j"] and objects[0][2] == pytest.approx(220, rel=1e-3)


def test_b_tagging_follows_the_b_hadron_with_its_efficiency():
    jet = spray(150, 0.4, 1.0)
    b_hadron = [[40 * np.cos(1.0), 40 * np.sin(1.0), 40 * np.sinh(0.4), 40 * np.cosh(0.4) + 5]]
    rng = np.random.default_rng(1)
    tagged = [reconstruct(event(jet, b=b_hadron), EXACT, rng)[0][0][0] == "b" for _ in range(2000)]
    assert abs(np.mean(tagged) - EXACT.btag_efficiency) < 0.035
    light = [reconstruct(event(jet), EXACT, rng)[0][0][0] == "b" for _ in range(2000)]
    assert np.mean(light) < 0.01


def test_smearing_has_the_stated_resolution():
    config = DetectorConfig()
    assert resolution("j", 100.0, 100.0, config) == pytest.approx(np.hypot(0.5 / 10, 0.03))
    assert resolution("g", 400.0, 400.0, config) == pytest.approx(np.hypot(0.1 / 20, 0.007))
    assert resolution("m+", 1000.0, 1000.0, config) == pytest.approx(np.hypot(0.02, 0.1))
    rng = np.random.default_rng(2)
    pts = [reconstruct(event(spray(100, 0.0, 0.0)), config, rng)[0][0][2] for _ in range(3000)]
    expected = resolution("j", float(np.cosh(0.0) * 100), 100.0, config)
    assert np.std(pts) / 100 == pytest.approx(expected, rel=0.1)


def test_process_cards_cover_the_required_backgrounds_and_signals():
    assert {"qcd", "wjets", "zjets", "ttbar"} <= set(available("background"))
    assert len(available("signal")) >= 3
    assert all(card.settings for card in PROCESSES.values())


# ------------------------------------------------------------------ with Pythia


@pytest.fixture(scope="module")
def pythia_events():
    pytest.importorskip("pythia8mc", reason="needs the 'generate' extra")
    from tfp_anomaly.data.generate import generate

    return {name: generate(name, n, seed=1, selection="none")[0]
            for name, n in (("ttbar", 150), ("zjets", 150), ("wprime_wz", 150))}


def test_ttbar_has_more_jets_and_b_jets_than_z_plus_jets(pythia_events):
    tt, z = pythia_events["ttbar"], pythia_events["zjets"]
    jets = lambda e: e.multiplicity("j") + e.multiplicity("b")  # noqa: E731
    assert jets(tt).mean() > jets(z).mean() + 1
    assert tt.multiplicity("b").mean() > z.multiplicity("b").mean() + 0.5


def test_wprime_dijet_mass_peaks_near_the_generated_mass(pythia_events):
    from tfp_anomaly.data import ObjectGrid

    w = pythia_events["wprime_wz"]
    x, mask = ObjectGrid(blocks=[(["j", "b", "e-", "e+", "m-", "m+", "g"], 2)], met_row=False,
                         features=["E", "px", "py", "pz"]).transform(w)
    two = mask.all(1)
    p = x[two].sum(1)
    mass = np.sqrt(np.maximum(p[:, 0] ** 2 - (p[:, 1:] ** 2).sum(1), 0))
    counts, edges = np.histogram(mass, bins=np.arange(0, 3001, 200))
    peak = edges[np.argmax(counts)] + 100
    assert 1500 <= peak <= 2200, (peak, counts)


def test_met_is_small_for_fully_visible_events_before_smearing():
    pytest.importorskip("pythia8mc", reason="needs the 'generate' extra")
    from tfp_anomaly.data.generate.pythia import make_pythia, particles_of
    from tfp_anomaly.data.generate.processes import get

    pythia = make_pythia(get("qcd"), seed=3)
    mets, rng = [], np.random.default_rng(0)
    while len(mets) < 60:
        if pythia.next():
            particles = particles_of(pythia.event)
            if not np.isin(np.abs(particles.pid), [12, 14, 16]).any():  # fully visible
                mets.append(reconstruct(particles, EXACT, rng)[1])
    # only particles beyond the calorimeter's |η| < 4.9 escape; their pT is small
    assert np.median(mets) < 5.0, np.percentile(mets, [50, 90])


def test_generate_command_is_deterministic_and_mixes_by_cross_section(tmp_path, capsys):
    pytest.importorskip("pythia8mc", reason="needs the 'generate' extra")
    from tfp_anomaly.cli import main

    args = ["generate", "--process", "ttbar", "zjets", "--events", "20", "--selection", "none", "--seed", "4",
            "--jobs", "2", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "a.csv.gz")]) == 0
    assert main(args + ["--out", str(tmp_path / "b.csv.gz")]) == 0
    assert gzip.decompress((tmp_path / "a.csv.gz").read_bytes()) == gzip.decompress((tmp_path / "b.csv.gz").read_bytes())
    events = read_darkmachines(tmp_path / "a.csv.gz")
    assert len(events) == 40 and set(events.processes) == {"ttbar", "zjets"}
    assert main(["generate", "--process", "ttbar", "zjets", "--mix", "50", "--selection", "none", "--jobs", "2",
                 "--no-progress", "--out", str(tmp_path / "m.csv.gz")]) == 0
    mixed = read_darkmachines(tmp_path / "m.csv.gz")
    counts = dict(zip(mixed.processes, np.bincount(mixed.process)))
    # σ(tt̄) ≈ 500 pb against σ(Z + jet, p̂T > 250 GeV) ≈ 20 pb, both fully accepted: ~48 to ~2
    assert len(mixed) == 50 and counts["ttbar"] >= 45
    assert "mixture by accepted cross section" in capsys.readouterr().out
