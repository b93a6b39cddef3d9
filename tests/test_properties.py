"""Properties on generated inputs (hypothesis; few examples, no deadline, no example database):

* the figures of merit equal scikit-learn's AUC and the Neyman–Pearson randomised cut (computed here
  from counts alone) on scores with many ties, within and across the classes, at the Dark Machines
  operating points and at the ROC's own vertices;
* flows from :data:`tfp_anomaly.flows.FLOWS` invert their forward pass and their log-determinants
  agree with each other and with autodiff, on inputs spanning five orders of magnitude.
"""
from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import roc_auc_score

from tfp_anomaly import flows
from tfp_anomaly.report import metrics

FEW = settings(max_examples=40, deadline=None, database=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- figures of merit

def tied_scores(max_size):
    """Scores on a coarse grid (at most 6 distinct values): ties within and across the classes."""
    return hnp.arrays(np.float64, st.integers(1, max_size), elements=st.integers(-2, 3).map(float))


def randomised_cut_efficiency(b, s, e) -> float:
    """ε_S of the Neyman–Pearson randomised cut at ε_B = ``e``: accept every event above a background
    value t and those at t with probability γ, t and γ such that exactly ``e`` of the background passes
    (the lowest such t). Counts only; no ROC."""
    n_b, target = len(b), e * len(b)
    if abs(target - round(target)) < 1e-9:
        target = round(target)
    for t in np.unique(b)[::-1]:
        above, at = np.sum(b > t), np.sum(b == t)
        if above <= target < above + at:
            gamma = (target - above) / at
            return float(np.mean(s > t) + gamma * np.mean(s == t))
    return 1.0  # e = 1: everything passes


@FEW
@given(b=tied_scores(80), s=tied_scores(40))
def test_auc_equals_scikit_learn_on_tied_scores(b, s):
    labels = np.r_[np.zeros(len(b)), np.ones(len(s))]
    assert metrics.auc(b, s) == pytest.approx(roc_auc_score(labels, np.r_[b, s]), abs=1e-12)
    # the rank-sum form the bootstrap uses (Mann–Whitney U, ties counted one half)
    u = np.sum(s[:, None] > b[None, :]) + 0.5 * np.sum(s[:, None] == b[None, :])
    assert metrics.auc(b, s) == pytest.approx(u / (len(b) * len(s)), abs=1e-12)


@FEW
@given(b=tied_scores(80), s=tied_scores(40), data=st.data())
def test_signal_efficiency_is_the_randomised_cut_at_every_background_efficiency(b, s, data):
    vertices = [k / len(b) for k in range(len(b) + 1)]  # every ε_B a cut can realise exactly
    efficiencies = [*metrics.BACKGROUND_EFFICIENCIES, data.draw(st.floats(0, 1)), data.draw(st.sampled_from(vertices))]
    fpr, tpr = metrics.roc(b, s)
    for e in efficiencies:
        assert metrics.efficiency_at(fpr, tpr, e) == pytest.approx(randomised_cut_efficiency(b, s, e), abs=1e-9), e
    # the threshold rule: never more than ε_B of the background above the cut
    for e in metrics.BACKGROUND_EFFICIENCIES:
        assert np.mean(b > metrics.threshold_at(b, e)) <= e


@FEW
@given(b=tied_scores(60), s=tied_scores(30))
def test_figures_of_merit_are_the_auc_and_efficiencies_of_the_same_scores(b, s):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.LowStatisticsWarning)
        row = metrics.figures_of_merit(b, s, bootstrap=0)
    assert row["AUC"] == metrics.auc(b, s) and (row["n_background"], row["n_signal"]) == (len(b), len(s))
    for e in metrics.BACKGROUND_EFFICIENCIES:
        key = metrics.format_efficiency(e)
        assert row[f"eff@{key}"] == pytest.approx(randomised_cut_efficiency(b, s, e), abs=1e-9)
        assert row[f"SIC@{key}"] == pytest.approx(row[f"eff@{key}"] / np.sqrt(e))


# --------------------------------------------------------------------------- flows

DIM = 4
#: a handful of flows: closed-form inverses (coupling, autoregressive, Householder reflections, Glow's
#: ActNorm + LU step)
FLOW_OPTIONS = {
    "nice": {"hidden_units": [8]},
    "realnvp": {"hidden_units": [8]},
    "maf": {"hidden_units": [8]},
    "householder": {},
    "glow": {"hidden_units": [8]},
    "spline_coupling": {"hidden_units": [8]},
}
#: flows whose round trip fails on wide inputs (kept out of the sweep: shrinking a failure costs minutes;
#: test_spline_coupling_round_trip_on_a_wide_conditioner_input pins the counterexample)
WIDE_ROUND_TRIP_FAILS = {"spline_coupling"}
assert set(FLOW_OPTIONS) <= set(flows.available())


@functools.cache
def perturbed_flow(name):
    """The flow built on DIM dimensions, every weight moved off its initial value (identity-like
    initialisations would hide errors), and its graph functions (traced once, not per example):
    ``round_trip(z) -> (y, log_det, inverse(y), inverse log_det)``, ``jacobian(z) -> (log_det, ∂y/∂z)``."""
    keras.utils.set_random_seed(0)  # the initial weights, whatever ran before in this process
    layer = flows.get(name, **FLOW_OPTIONS[name])
    rng = np.random.default_rng(0)
    layer(tf.constant(rng.normal(size=(8, DIM)), tf.float32), training=True)
    for weight in layer.trainable_weights:
        weight.assign(weight + 0.3 * rng.normal(size=weight.shape).astype("float32"))
    spec = [tf.TensorSpec((None, DIM), tf.float32)]

    @tf.function(input_signature=spec)
    def round_trip(z):
        y, log_det = layer(z)
        return (y, log_det, *layer.inverse(y))

    @tf.function(input_signature=spec)
    def jacobian(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            y, log_det = layer(z)
        return log_det, tape.batch_jacobian(y, z)

    return round_trip, jacobian


def wide_inputs(max_events=6):
    """Events whose coordinates have magnitudes from 1e-3 to 1e2 and either sign."""
    magnitude = st.floats(-3, 2).map(lambda p: 10.0 ** p)
    coordinate = st.tuples(st.sampled_from([-1.0, 1.0]), magnitude).map(lambda t: t[0] * t[1])
    return hnp.arrays(np.float32, st.tuples(st.integers(1, max_events), st.just(DIM)), elements=coordinate)


def assert_round_trip(name, z):
    """inverse(forward(z)) = z to float32 resolution relative to |z|, and the inverse's log-determinant
    is minus the forward one."""
    z = tf.constant(z, tf.float32)
    _, log_det, x, inverse_log_det = perturbed_flow(name)[0](z)
    np.testing.assert_array_less(np.abs(x.numpy() - z.numpy()), 5e-4 * (1.0 + np.abs(z.numpy())))
    np.testing.assert_allclose(inverse_log_det.numpy(), -log_det.numpy(), rtol=1e-4, atol=2e-3)


@pytest.mark.parametrize("name", sorted(set(FLOW_OPTIONS) - WIDE_ROUND_TRIP_FAILS))
def test_flows_invert_their_forward_pass_on_wide_inputs(name):
    @settings(max_examples=25, deadline=None, database=None, derandomize=True)
    @given(z=wide_inputs())
    def round_trip(z):
        assert_round_trip(name, z)

    round_trip()


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "a conditioner input of -100 saturates the spline's softmax: a bin of width ~5.7 and the minimum height "
    "1e-3 gives an interior slope ~1e-9, which float32 cannot invert (x off by ~5; inverse log-det +16 for "
    "a forward -21); the raw widths/heights need bounding (tfp_anomaly/flows/splines.py)"))
def test_spline_coupling_round_trip_on_a_wide_conditioner_input():
    assert_round_trip("spline_coupling", np.array([[-1.0, -100.0, -1.0, -1.0]], np.float32))


@pytest.mark.parametrize("name", sorted(FLOW_OPTIONS))
def test_flow_log_det_is_the_log_jacobian_determinant_on_wide_inputs(name):
    @settings(max_examples=15, deadline=None, database=None, derandomize=True)
    @given(z=wide_inputs(max_events=4))
    def log_det_agrees(z):
        log_det, jacobian = perturbed_flow(name)[1](tf.constant(z, tf.float32))
        reference = tf.linalg.slogdet(tf.cast(jacobian, tf.float64))[1].numpy()
        np.testing.assert_allclose(log_det.numpy(), reference, rtol=1e-3, atol=2e-3)

    log_det_agrees()
