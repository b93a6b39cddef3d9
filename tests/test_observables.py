"""Physics observables (tfp_anomaly.data.observables) against values computed by hand on four written-out
events; the object mass feature ``m`` and its clamp; units; the ``observables`` configuration section
(the flat representation and observables on the grid) from the configuration to a trained, scored run."""
import json
import math
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from tfp_anomaly import config as config_lib
from tfp_anomaly import inputs
from tfp_anomaly.cli import main
from tfp_anomaly.data import DataFormatError, Events, ObjectGrid, load_sample
from tfp_anomaly.data.observables import OBSERVABLES, compute, invariant_mass
from tfp_anomaly.data.representation import FEATURES, EventObservables, make_representation
from tfp_anomaly.report import ScoredRun

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"

# --------------------------------------------------------------------------- four events, written out
#: per event: MET, METφ and its objects (code, E, pT, η, φ), in GeV
EVENTS = [
    (40.0, 0.7, [("j", 100.0, 60.0, 0.5, 0.3), ("j", 80.0, 50.0, -0.4, 2.5), ("b", 45.0, 30.0, 1.0, -1.0),
                 ("e-", 20.0, 20.0, 0.0, 1.0), ("m+", 30.0, 15.0, 1.2, -2.0), ("g", 12.0, 10.0, 0.3, 0.5)]),
    (5.0, -1.0, [("j", 50.0, 40.0, 0.2, 0.1), ("e", 9.0, 8.0, 0.4, 2.0), ("m", 7.0, 6.0, -0.3, -2.5)]),
    (25.0, 2.0, []),
    # stored out of pT order: the leading jets are the b-jet (90) and the jet of 70, not the first two
    (10.0, 0.0, [("j", 30.0, 20.0, 0.1, 1.0), ("b", 150.0, 90.0, -0.8, 0.2), ("j", 120.0, 70.0, 0.9, -2.9),
                 ("e+", 25.0, 25.0, 0.05, 0.0)]),
]


def written_events(unit="GeV", scale=1.0) -> Events:
    from tfp_anomaly.data import objects

    rows = [o for _, _, objs in EVENTS for o in objs]
    counts = [len(objs) for _, _, objs in EVENTS]
    column = lambda k: np.array([o[k] for o in rows], np.float64)  # noqa: E731
    return Events(event_id=np.arange(len(EVENTS)) + 100, process=np.zeros(len(EVENTS)), weight=np.ones(len(EVENTS)),
                  met=np.array([e[0] for e in EVENTS]) * scale, met_phi=np.array([e[1] for e in EVENTS]),
                  offsets=np.concatenate([[0], np.cumsum(counts)]), obj_type=[objects.type_id(o[0]) for o in rows],
                  obj_e=column(1) * scale, obj_pt=column(2) * scale, obj_eta=column(3), obj_phi=column(4),
                  processes=("hand",), unit=unit)


def pair_mass(a, b) -> float:
    """m = √((E₁+E₂)² − |p⃗₁+p⃗₂|²) of two objects (code, E, pT, η, φ), p⃗ = (pT cos φ, pT sin φ, pT sinh η)."""
    energy = a[1] + b[1]
    px = a[2] * math.cos(a[4]) + b[2] * math.cos(b[4])
    py = a[2] * math.sin(a[4]) + b[2] * math.sin(b[4])
    pz = a[2] * math.sinh(a[3]) + b[2] * math.sinh(b[3])
    return math.sqrt(energy ** 2 - px ** 2 - py ** 2 - pz ** 2)


first, second, empty, fourth = (objs for _, _, objs in EVENTS)
#: the observables of the four events, by hand
EXPECTED = {
    "HT": [60 + 50 + 30, 40, 0, 20 + 90 + 70],
    "MET": [40, 5, 25, 10],
    "m_eff": [60 + 50 + 30 + 40, 40 + 5, 25, 20 + 90 + 70 + 10],
    "m_jj": [pair_mass(first[0], first[1]), 0.0, 0.0, pair_mass(fourth[1], fourth[2])],
    "n_jets": [3, 1, 0, 3],
    "n_b": [1, 0, 0, 1],
    "n_e": [1, 1, 0, 1],     # e-, e (charge not recorded), e+
    "n_mu": [1, 1, 0, 0],    # m+, m
    "n_lep": [2, 2, 0, 1],
    "n_g": [1, 0, 0, 0],
    "n_objects": [6, 3, 0, 4],
}


def test_every_observable_is_checked_by_hand():
    assert set(EXPECTED) == set(OBSERVABLES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_observable_matches_the_hand_computed_value(name):
    values = compute(written_events(), [name])[name]
    assert values.dtype == np.float64 and values.shape == (4,)
    np.testing.assert_allclose(values, EXPECTED[name], rtol=1e-5, atol=1e-4)


def test_the_dijet_mass_of_the_hand_events_is_a_real_mass():
    assert 150 < EXPECTED["m_jj"][0] < 180 and EXPECTED["m_jj"][3] > 200  # guards the hand formula itself


def test_energies_are_converted_to_the_unit_asked_for():
    mev = written_events(unit="MeV", scale=1e3)
    in_gev = compute(mev, list(EXPECTED), unit="GeV")
    in_mev = compute(mev, list(EXPECTED), unit=None)  # the events' own unit
    for name, expected in EXPECTED.items():
        np.testing.assert_allclose(in_gev[name], expected, rtol=1e-5, atol=1e-4)
        factor = 1e3 if OBSERVABLES[name].energy else 1.0
        np.testing.assert_allclose(in_mev[name], np.array(expected) * factor, rtol=1e-5, atol=1e-1)
    assert {n for n, o in OBSERVABLES.items() if o.energy} == {"HT", "MET", "m_eff", "m_jj"}


def test_unknown_observables_are_named_with_the_registered_ones():
    with pytest.raises(KeyError, match=r"unknown observable \['HTT'\]; available: HT, MET, m_eff, m_jj"):
        compute(written_events(), ["HT", "HTT"])
    with pytest.raises(KeyError, match=r"unknown observable 'mjj'; available: HT"):
        EventObservables(["mjj"])


def test_no_events_give_empty_observables():
    values = compute(written_events()[:0], list(EXPECTED))
    assert all(v.shape == (0,) for v in values.values())


# --------------------------------------------------------------------------- the object mass feature
def test_object_mass_feature_by_hand_and_clamped_at_zero():
    e = np.array([100.0, 20.0, 99.99999, 50.0], np.float32)
    pt = np.array([60.0, 20.0, 100.0, 30.0], np.float32)
    eta = np.array([0.5, 0.0, 0.0, 1.2], np.float32)
    phi = np.zeros(4, np.float32)
    # object 3: massless, E rounded to just below |p| = 100 (E² − p² < 0); object 4: E < |p| = 30 cosh 1.2
    expected = [math.sqrt(100.0 ** 2 - (60.0 * math.cosh(0.5)) ** 2), 0.0, 0.0, 0.0]
    mass = FEATURES["m"](e, pt, eta, phi)
    assert np.isfinite(mass).all()
    np.testing.assert_allclose(mass, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(FEATURES["log_m"](e, pt, eta, phi), np.log1p(expected), rtol=1e-5, atol=1e-6)


def test_dijet_mass_of_collinear_massless_jets_is_zero_not_nan():
    p = np.array([[100.0, 100.0, 0.0, 0.0]])             # E = |p|: massless
    rounded = p * np.array([1 - 1e-7, 1, 1, 1])          # E rounded down: m² slightly negative
    assert invariant_mass(rounded + rounded)[0] == 0.0 and invariant_mass(p + p)[0] == 0.0


def test_mass_feature_on_the_grid_by_hand():
    grid = ObjectGrid(blocks=[("j", 2)], met_row=True, features=["m", "pt"])
    x, mask = grid.transform(written_events()[:1])
    np.testing.assert_allclose(x[0, 0, 0], math.sqrt(100 ** 2 - (60 * math.cosh(0.5)) ** 2), rtol=1e-5)
    np.testing.assert_allclose(x[0, 1, 0], math.sqrt(80 ** 2 - (50 * math.cosh(0.4)) ** 2), rtol=1e-5)
    assert x[0, 2, 0] == 0.0 and mask[0].all()  # the MET row: E = pT, η = 0, a massless object


# --------------------------------------------------------------------------- representations
NAMES = ["HT", "MET", "m_jj", "n_jets", "n_b"]


def test_flat_representation_is_the_observables_vector():
    flat = EventObservables(NAMES)
    x = flat.model_input(written_events())
    assert x.dtype == np.float32 and x.shape == (4, 5) and flat.shape == (5,)
    np.testing.assert_allclose(x, np.array([EXPECTED[n] for n in NAMES]).T, rtol=1e-5, atol=1e-4)
    assert flat.columns == NAMES and flat.log_columns == [0, 1, 2]  # the energies
    assert flat.get_config() == {"names": NAMES, "as": "flat"}
    assert flat.check(written_events(), "hand") == {}


def test_observables_on_the_grid_fill_every_real_slot():
    plain = ObjectGrid(blocks=[("j", 3), ("b", 1)], met_row=True)
    grid = ObjectGrid(blocks=[("j", 3), ("b", 1)], met_row=True, observables=NAMES)
    x, mask = grid.transform(written_events())
    x0, mask0 = plain.transform(written_events())
    assert grid.shape == (5, 9) and x.shape == (4, 5, 9) and grid.columns == ["E", "pt", "eta", "phi"] + NAMES
    np.testing.assert_array_equal(x[..., :4], x0)
    np.testing.assert_array_equal(mask, mask0)
    expected = np.array([EXPECTED[n] for n in NAMES], np.float32).T  # (events, observables)
    np.testing.assert_allclose(x[..., 4:], np.where(mask[..., None], expected[:, None, :], 0.0), rtol=1e-5)
    assert grid.log_columns == [4, 5, 6]
    assert ObjectGrid.from_config(grid.get_config()) == grid and "observables" not in plain.get_config()


def test_placements_give_the_representation_of_the_configuration():
    assert isinstance(make_representation({"preset": "darkflow"}, {"names": NAMES}), EventObservables)
    on_grid = make_representation({"preset": "darkflow"}, {"names": NAMES, "as": "grid"})
    assert isinstance(on_grid, ObjectGrid) and on_grid.shape == (32, 9)
    assert make_representation({"preset": "darkflow"}, {"names": [], "as": "grid"}).shape == (32, 4)
    config = config_lib.merge(config_lib.DEFAULTS, {"observables": {"names": NAMES, "as": "grid"}})
    assert inputs.representation(config).shape == (32, 9) and inputs.object_grid(config).shape == (32, 4)


def test_non_finite_observables_are_refused_naming_the_event():
    events = written_events()
    events.met[2] = np.nan
    with pytest.raises(DataFormatError, match=r"hand\.csv: event 102 \(event 3 read\) has observable MET = nan"):
        EventObservables(NAMES).check(events, "hand.csv")
    with pytest.raises(DataFormatError, match=r"observable MET = nan"):
        ObjectGrid(observables=["MET"]).check(events, "hand.csv")


# --------------------------------------------------------------------------- the configuration section
@pytest.mark.parametrize("override, message", [
    ("observables.names=[HT, HTT]", r"observables\.names\[1\] = 'HTT': expected one of HT, MET, m_eff, m_jj"),
    ("observables.as=stacked", r"observables\.as = 'stacked': expected one of grid, flat"),
    ("observables.name=[HT]", r"unknown key observables\.name; observables keys: as, names"),
    ("observables.names=HT", r"observables\.names = 'HT': expected a list of"),
    ("observables.names=[HT, MET, HT]", r"observables\.names: 'HT' named twice"),
    ("scaler.log_columns=[E, -1]", r"scaler\.log_columns\[1\] = -1: expected a whole number >= 0 or a column name"),
])
def test_configuration_errors_name_the_observables_key(override, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.load_config(CONFIGS / "convvae.yaml", [override])


def test_scaler_log_columns_take_column_names_and_the_energy_observables():
    config = config_lib.load_config(CONFIGS / "convvae.yaml", ["scaler.log_columns=[pt, 0]"])
    assert inputs.log_columns(config, ["E", "pt", "eta", "phi", "HT"], energies=[4]) == [0, 1, 4]
    with pytest.raises(config_lib.ConfigError, match=r"scaler\.log_columns: unknown column 'pt'; the model "
                                                     r"input's columns: HT, MET"):
        inputs.log_columns(config, ["HT", "MET"])
    config = config_lib.load_config(CONFIGS / "convvae.yaml", ["scaler.log_columns=[7]"])
    with pytest.raises(config_lib.ConfigError, match=r"scaler\.log_columns: column 7 of 2 \(HT, MET\)"):
        inputs.log_columns(config, ["HT", "MET"])
    # the flat vector takes names only: numbers (meant for a grid) are left out, names kept
    config = config_lib.load_config(CONFIGS / "convvae.yaml", ["scaler.log_columns=[0, 7, n_b]"])
    assert inputs.log_columns(config, ["n_jets", "n_b", "HT"], energies=[2], by_number=False) == [1, 2]


def test_observables_need_events_not_a_feature_table(tmp_path):
    table = tmp_path / "scalars_bkg.h5"
    with h5py.File(table, "w") as handle:  # recognised as LHCO high-level features by its group name
        handle.create_group("bkg")
    config = config_lib.load_config(CONFIGS / "convvae.yaml", [f"data.background={table}", "observables.names=[HT]"])
    with pytest.raises(config_lib.ConfigError, match=r"observables\.names: HT are computed from events, but "
                                                     r"data\.background is a feature table"):
        inputs.read_files(config, [table], "data.background")


# --------------------------------------------------------------------------- train and score
def _train_and_score(tmp_path, placement, *overrides, names=NAMES):
    run = tmp_path / placement
    assert main(["train", str(CONFIGS / "convvae.yaml"), "--run-dir", str(run), "-o", "data.max_events=300",
                 "training.batch_size=60", "training.verbose=0", "training.epochs=1", "training.jit_compile=false",
                 f"observables={{names: [{', '.join(names)}], as: {placement}}}", *overrides]) == 0
    assert main(["score", str(run), "--no-progress", "--max-signal-events", "60", "--methods", "mse", "kl"]) == 0
    return run


def test_flat_observables_train_a_dense_network_and_score(tmp_path):
    counts_first = ["n_jets", "n_b", "HT", "MET", "m_jj"]
    run = _train_and_score(tmp_path, "flat", "model.network={type: dense, hidden_units: [16, 8]}", names=counts_first)
    assert json.loads((run / "summary.json").read_text())["input_shape"] == [5]
    data = json.loads((run / "data.json").read_text())
    assert data["observables"] == {"names": counts_first, "as": "flat"} and "grid" not in data
    assert config_lib.load_resolved(run / "config.yaml")["observables"] == {"names": counts_first, "as": "flat"}
    model = keras.models.load_model(run / "model.keras")
    assert tuple(model.event_shape) == (5,)
    # the energies HT, MET, m_jj only: the base configuration's log_columns [0, 1] (E and pT of its grid)
    # do not turn the counts n_jets, n_b into log(1 + n)
    assert model.preprocess.log_columns == [2, 3, 4]
    scored = ScoredRun.load(run / "scores.h5")
    assert scored.methods == ["mse", "kl"] and len(scored.background["mse"]) == 60
    assert len(scored.signals["qstar"]["kl"]) == 60 and np.isfinite(scored.signals["qstar"]["mse"]).all()


def test_observables_on_the_grid_train_the_conv_network_and_score(tmp_path):
    run = _train_and_score(tmp_path, "grid")
    assert json.loads((run / "summary.json").read_text())["input_shape"] == [32, 9]
    data = json.loads((run / "data.json").read_text())
    assert data["grid"]["observables"] == NAMES and "objects_beyond_caps" in data
    assert keras.models.load_model(run / "model.keras").preprocess.log_columns == [0, 1, 4, 5, 6]


def test_a_flat_run_scores_an_independent_event_file(tmp_path):
    from tfp_anomaly.data.sample import sample_files

    run = tmp_path / "flat"
    assert main(["train", str(CONFIGS / "convvae.yaml"), "--run-dir", str(run), "-o", "data.max_events=300",
                 "training.batch_size=60", "training.verbose=0", "training.epochs=1", "training.jit_compile=false",
                 "observables.names=[HT, MET]", "model.network={type: dense, hidden_units: [8]}"]) == 0
    background = str(sample_files()["qstar"])
    assert main(["score", str(run), "--no-progress", "--max-signal-events", "30", "--methods", "mse",
                 "--background", background]) == 0


def test_a_limited_signal_given_as_events_keeps_its_observables():
    from tfp_anomaly.evaluate import _as_part, _limited

    config = config_lib.load_config(CONFIGS / "convvae.yaml")
    events = load_sample()[:50]
    part = _limited(_as_part(config, events), 20)
    chunk = next(part.chunks())
    assert len(chunk.event_id) == 20
    for name, values in compute(events[:20]).items():
        np.testing.assert_array_equal(chunk.observables[name], values)
