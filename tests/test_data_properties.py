"""Properties of the data layer, with hypothesis: Dark Machines write → read round trips, reading and
converting independent of the chunk size, a corrupted field named by line and field, splits and
subsets that partition, and every scaler equal to its Keras layer."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tfp_anomaly.data import (DataFormatError, Events, SCALERS, concatenate, get_scaler, iter_darkmachines,
                              objects, read_cache, read_darkmachines, split_background, split_indices,
                              write_cache, write_darkmachines)
from tfp_anomaly.data.darkmachines import NUMBER, DarkMachinesReader
from tfp_anomaly.data.sample import SAMPLE_DIR
from tfp_anomaly.data.splits import subset_indices

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CODES = objects.DARKMACHINES_CODES
PROCESSES = ("ttbar", "qcd", "monojet_Zp2000.0_DM_50.0", "w jets")


def six_digits(low_exponent=-3, high_exponent=5, signed=True):
    """Numbers with at most six significant digits: what the writer keeps, and float32 holds exactly."""
    mantissa = st.integers(-999_999 if signed else 0, 999_999)
    return st.builds(lambda m, e: float(f"{m}e{e}"), mantissa, st.integers(low_exponent, high_exponent))


obj = st.tuples(st.sampled_from(CODES), six_digits(signed=False), six_digits(signed=False),
                six_digits(-6, 0), six_digits(-6, 0))
event = st.tuples(st.sampled_from(PROCESSES), six_digits(-6, 2), six_digits(signed=False), six_digits(-6, 0),
                  st.lists(obj, max_size=6))
events_strategy = st.lists(event, min_size=1, max_size=25)


def build(drawn) -> Events:
    counts = [len(e[4]) for e in drawn]
    flat = [o for e in drawn for o in e[4]]
    names = list(dict.fromkeys(e[0] for e in drawn))
    column = lambda k: np.array([o[k] for o in flat], np.float64)  # noqa: E731
    return Events(event_id=np.arange(len(drawn)) * 7 + 3, process=[names.index(e[0]) for e in drawn],
                  weight=[e[1] for e in drawn], met=[e[2] for e in drawn], met_phi=[e[3] for e in drawn],
                  offsets=np.concatenate([[0], np.cumsum(counts)]),
                  obj_type=[objects.type_id(o[0]) for o in flat], obj_e=column(1), obj_pt=column(2),
                  obj_eta=column(3), obj_phi=column(4), processes=names, unit="MeV")


def assert_same_events(a: Events, b: Events):
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.process_name, b.process_name)
    for name in ("event_id", "weight", "met", "met_phi", "offsets", "obj_type", "obj_e", "obj_pt", "obj_eta",
                 "obj_phi"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# --------------------------------------------------------------------------- round trips
@SETTINGS
@given(events_strategy, st.booleans())
def test_dark_machines_write_read_round_trip(tmp_path_factory, drawn, compressed):
    events = build(drawn)
    path = tmp_path_factory.mktemp("rt") / ("e.csv.gz" if compressed else "e.csv")
    write_darkmachines(events, path)
    back = read_darkmachines(path)
    assert_same_events(back, events)  # six significant digits and float32 survive the text exactly


@SETTINGS
@given(events_strategy, st.integers(1, 30), st.sets(st.integers(0, 24), max_size=4))
def test_reading_and_converting_do_not_depend_on_the_chunk_size(tmp_path_factory, drawn, chunk_size, bad):
    folder = tmp_path_factory.mktemp("chunks")
    path = folder / "e.csv"
    write_darkmachines(build(drawn), path)
    lines = path.read_text().splitlines(keepends=True)
    bad = {k for k in bad if k < len(lines)}
    path.write_text("".join("broken line\n" if k in bad else line for k, line in enumerate(lines)))
    whole = read_darkmachines(path, on_error="skip", chunk_size=10**6)
    parts = list(iter_darkmachines(path, chunk_size, on_error="skip"))
    assert_same_events(concatenate(parts) if parts else whole, whole)
    assert whole.meta["n_skipped"] == len(bad)
    if len(whole):
        reader = DarkMachinesReader(path, on_error="skip")
        summary = write_cache(reader.chunks(chunk_size), folder / "c.h5", skipped=reader.skipped)
        assert summary["n_skipped"] == len(bad) and summary["events"] == len(whole)
        assert_same_events(read_cache(folder / "c.h5"), whole)


# --------------------------------------------------------------------------- one corrupted field
def sample_lines(n=20):
    with gzip.open(SAMPLE_DIR / "zprime_tt.csv.gz", "rt") as handle:
        return [next(handle) for _ in range(n)]


LINES = sample_lines()
NOT_NUMBERS = ["abc", "\"5\"", "947_383", "١٢٣", "１２３", " 5", "5 ", "nan", "-inf", "", "1e400", "0x1", "1.2.3",
               "+-1", "1e", "−5", "5e", "."]
HEADER = {0: "event_id", 2: "weight", 3: "MET", 4: "METphi"}


@SETTINGS
@given(st.integers(0, len(LINES) - 1), st.data(), st.integers(1, 25))
def test_a_corrupted_field_is_named_by_its_line_and_field(tmp_path_factory, k, data, chunk_size):
    fields = LINES[k].rstrip("\n").rstrip(";").split(";")
    position = data.draw(st.integers(0, len(fields) - 1), label="field")
    assume(position != 1)  # the process name is free text
    if position < 5:
        extra = {0: ["1.5", "1e30", "5e60"], 2: [], 3: ["5e60"], 4: ["5e60"]}[position]
        token = data.draw(st.sampled_from(NOT_NUMBERS + extra), label="token")
        fields[position] = token
        expected = f"field {position + 1} ({HEADER[position]})"
    else:
        parts = fields[position].split(",")
        part = data.draw(st.integers(0, 4), label="part")
        j = position - 4
        if part == 0:
            parts[0] = data.draw(st.sampled_from(["tau", "J", "e", "", "b+", "j "]), label="code")
            expected = f"field {position + 1} (object {j})"
        else:
            parts[part] = data.draw(st.sampled_from(NOT_NUMBERS + ["5e60"]), label="token")
            expected = f"field {position + 1} (object {j} {parts[0]!r} {('E', 'pt', 'eta', 'phi')[part - 1]})"
        fields[position] = ",".join(parts)
    lines = list(LINES)
    lines[k] = ";".join(fields) + ";\n"
    path = tmp_path_factory.mktemp("bad") / "bad.csv"
    path.write_text("".join(lines))
    with pytest.raises(DataFormatError) as info:
        read_darkmachines(path, chunk_size=chunk_size)
    assert (info.value.line, info.value.field) == (k + 1, expected), str(info.value)
    kept = read_darkmachines(path, chunk_size=chunk_size, on_error="skip")
    assert len(kept) == len(LINES) - 1 and kept.meta["n_skipped"] == 1
    assert f"line {k + 1}" in kept.meta["skip_log"].messages[0]


@SETTINGS
@given(st.lists(st.text(alphabet="0123456789+-.eE", min_size=1, max_size=9), min_size=1, max_size=50))
def test_pandas_accepts_exactly_the_number_grammar_on_its_alphabet(tokens):
    """The fast path lets only these characters through to pandas; pandas and NUMBER must then agree."""
    for token in tokens:
        try:
            values = pd.read_csv(io.BytesIO((token + "\n").encode()), header=None, names=["v"],
                                 dtype=np.float64, engine="c", skip_blank_lines=False)["v"].to_numpy()
            accepted = values.shape == (1,) and bool(np.isfinite(values[0]))
        except ValueError:
            accepted = False
        grammar = NUMBER.fullmatch(token) is not None and np.isfinite(float(token))
        assert accepted == grammar, token


# --------------------------------------------------------------------------- splits and subsets
@SETTINGS
@given(st.integers(0, 3000), st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 10)),
       st.integers(0, 2 ** 31))
def test_splits_are_disjoint_and_complete(n, weights, seed):
    assume(sum(weights) > 0)
    fractions = [w / sum(weights) for w in weights]
    split = split_indices(n, fractions, seed)
    parts = list(split.parts().values())
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(n))  # complete, and disjoint (no index twice)
    assert len(split.train) == int(fractions[0] * n) and len(split.val) == int(fractions[1] * n)
    assert all(np.all(np.diff(p) > 0) for p in parts)
    x = np.arange(n) * 10
    by_data = split_background(x, fractions, seed)
    for name, index in split.parts().items():
        np.testing.assert_array_equal(by_data[name], x[index])


@SETTINGS
@given(st.integers(0, 5000), st.integers(1, 6000), st.sampled_from(["random", "first"]), st.integers(0, 2 ** 31))
def test_the_max_events_subset_is_sorted_unique_and_reproducible(n, m, how, seed):
    index = subset_indices(n, m, how, seed)
    assert len(index) == min(n, m) and np.all(np.diff(index) > 0) and (len(index) == 0 or index[-1] < n)
    np.testing.assert_array_equal(index, subset_indices(n, m, how, seed))
    if how == "first" or m >= n:
        np.testing.assert_array_equal(index, np.arange(min(n, m)))


# --------------------------------------------------------------------------- scalers
def scaler_data(seed: int, grid: bool, discrete: bool = True):
    """300 events of three features (log-normal, normal, Poisson counts, or the counts smeared when not
    ``discrete``), on a (5-slot) grid with a slot mask or as a table; padded slots are 0."""
    rng = np.random.default_rng(seed)
    shape = (300, 5) if grid else (300,)
    counts = rng.poisson(2, shape) + (0 if discrete else rng.uniform(0, 0.9, shape))
    x = np.stack([rng.lognormal(0, 1, shape), rng.normal(0, 2, shape), counts], axis=-1).astype(np.float32)
    mask = rng.random(shape) < 0.7 if grid else None
    if mask is not None:
        mask[:, 0] = True  # every slot filled somewhere
        x[~mask] = 0.0
    return x, mask


def layer_and_scaler(scaler, x, mask):
    from tfp_anomaly.models import ScalerLayer

    scaler.fit(x[:200], None if mask is None else mask[:200])
    fresh, fresh_mask = x[200:], None if mask is None else mask[200:]
    return ScalerLayer(scaler.get_config())(fresh, slot_mask=fresh_mask).numpy(), scaler.transform(fresh, fresh_mask)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(sorted(SCALERS)), st.integers(0, 2 ** 31), st.booleans(), st.booleans(), st.booleans())
def test_every_scaler_equals_its_keras_layer(name, seed, grid, per_slot, logs):
    assume(not (per_slot and (name == "quantile" or not grid)))
    # tied (discrete) values of the quantile scaler: see the test below
    x, mask = scaler_data(seed, grid, discrete=name != "quantile")
    options = {} if name == "quantile" else {"per_slot": per_slot}
    got, expected = layer_and_scaler(get_scaler(name, log_columns=[0, 2] if logs else [], **options), x, mask)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-3)


@pytest.mark.parametrize("seed, grid, logs", [
    pytest.param(11, False, True, marks=pytest.mark.xfail(strict=True, reason=(
        "one tied value of a log column still lands off the middle of its band in the layer (2.17 for 2.32); "
        "the layer now computes in float64 like the scaler, the remaining difference is not yet understood"))),
    (1, True, False)], ids=["log1p", "quantile-rounding"])
def test_the_quantile_layer_keeps_tied_values_in_the_middle_of_their_band(seed, grid, logs):
    x, mask = scaler_data(seed, grid)
    got, expected = layer_and_scaler(get_scaler("quantile", log_columns=[2] if logs else []), x, mask)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-3)
