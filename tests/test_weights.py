"""Event weights: weighted figures of merit against scikit-learn's ``sample_weight``, and weighted
training losses (every per-event term a weighted mean, the sliced Wasserstein term of a weighted
empirical measure) against repeated rows and dropped rows."""
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score, roc_curve

from tfp_anomaly import losses
from tfp_anomaly.models import SWAE, VAE, Ensemble
from tfp_anomaly.report import ScoredRun, comparison_table, metrics, plots


def _scores(tied, seed=0, nb=2000, ns=500):
    rng = np.random.default_rng(seed)
    b, s = rng.normal(size=nb), rng.normal(0.8, 1.2, size=ns)
    if tied:  # many exact ties, within and across classes
        b, s = np.round(b, 1), np.round(s, 1)
    return b, s


def _weights(n, seed, zeros=True):
    rng = np.random.default_rng(seed)
    w = rng.exponential(size=n)
    if zeros:
        w[rng.random(n) < 0.1] = 0.0
    return w


# --------------------------------------------------------------------------- figures of merit

@pytest.mark.parametrize("tied", [False, True])
def test_weighted_roc_auc_and_efficiency_match_scikit_learn_sample_weight(tied):
    b, s = _scores(tied)
    wb, ws = _weights(len(b), 1), _weights(len(s), 2)
    labels, scores, weights = np.r_[np.zeros(len(b)), np.ones(len(s))], np.r_[b, s], np.r_[wb, ws]
    fpr, tpr = metrics.roc(b, s, wb, ws)
    ref_fpr, ref_tpr, _ = roc_curve(labels, scores, sample_weight=weights, drop_intermediate=False)
    np.testing.assert_array_equal(fpr, ref_fpr)
    np.testing.assert_array_equal(tpr, ref_tpr)
    reference_auc = roc_auc_score(labels, scores, sample_weight=weights)
    assert metrics.auc(b, s, wb, ws) == pytest.approx(reference_auc, abs=1e-12)
    assert metrics.auc(b, s) != pytest.approx(reference_auc, abs=1e-3)  # the weights do matter here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.LowStatisticsWarning)
        row = metrics.figures_of_merit(b, s, bootstrap=0, background_weights=wb, signal_weights=ws)
    assert row["weighted"] and row["AUC"] == pytest.approx(reference_auc, abs=1e-12)
    for e in metrics.BACKGROUND_EFFICIENCIES:
        key = metrics.format_efficiency(e)
        assert row[f"eff@{key}"] == metrics.efficiency_at(ref_fpr, ref_tpr, e)


@pytest.mark.parametrize("tied", [False, True])
def test_rank_auc_of_the_bootstrap_is_scikit_learns_weighted_auc(tied):
    for seed in range(5):
        b, s = _scores(tied, seed, nb=500, ns=200)
        wb, ws = _weights(len(b), 10 + seed), _weights(len(s), 20 + seed)
        labels, scores = np.r_[np.zeros(len(b)), np.ones(len(s))], np.r_[b, s]
        assert metrics.rank_auc(b, s, wb, ws) == pytest.approx(
            roc_auc_score(labels, scores, sample_weight=np.r_[wb, ws]), abs=1e-12)
        assert metrics.rank_auc(b, s) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_integer_weights_give_the_figures_of_repeated_events():
    b, s = _scores(True, 3, nb=3000, ns=600)
    rng = np.random.default_rng(4)
    wb, ws = rng.integers(0, 4, len(b)), rng.integers(0, 4, len(s))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.LowStatisticsWarning)
        weighted = metrics.figures_of_merit(b, s, bootstrap=0, background_weights=wb, signal_weights=ws)
        repeated = metrics.figures_of_merit(np.repeat(b, wb), np.repeat(s, ws), bootstrap=0)
    assert weighted["AUC"] == pytest.approx(repeated["AUC"], abs=1e-12)
    for e in metrics.BACKGROUND_EFFICIENCIES:
        key = metrics.format_efficiency(e)
        assert weighted[f"eff@{key}"] == pytest.approx(repeated[f"eff@{key}"], abs=1e-12)
    # Kish's N_eff of integer weights is not the repeated count: (Σw)²/Σw² < Σw unless all weights are equal
    assert weighted["n_eff_background"] == pytest.approx(wb.sum() ** 2 / (wb ** 2).sum())
    assert weighted["n_eff_background"] < repeated["n_background"]


def test_no_weights_and_all_ones_weights_give_identical_figures():
    b, s = _scores(True, 5, nb=20_000, ns=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.LowStatisticsWarning)
        plain = metrics.figures_of_merit(b, s, bootstrap=20, seed=7)
        ones = metrics.figures_of_merit(b, s, bootstrap=20, seed=7, background_weights=np.ones(len(b)),
                                        signal_weights=np.ones(len(s)))
    assert not plain["weighted"] and ones["weighted"]
    assert {k: v for k, v in plain.items() if k != "weighted"} == {k: v for k, v in ones.items() if k != "weighted"}
    # the weighted resampling itself (which equal weights skip) gives the unweighted spreads
    eps = np.array(metrics.BACKGROUND_EFFICIENCIES)
    unweighted, weighted = (metrics._bootstrap(b, s, eps, 20, 7, *w) for w in ((None, None),
                                                                               (np.ones(len(b)), np.ones(len(s)))))
    np.testing.assert_allclose(weighted[0], unweighted[0], rtol=1e-12)
    np.testing.assert_array_equal(weighted[1], unweighted[1])
    assert plain["AUC_err"] > 0 and plain["low_stats@1e-4"]
    rng = np.random.default_rng(6)
    for n in (1, 2, 10, 999, 1000, 1001, 10_001):
        x = np.round(rng.normal(size=n), 2)
        for e in (0.5, 0.1, 1e-2, 1e-3, 1e-4):
            assert metrics.threshold_at(x, e, np.ones(n)) == metrics.threshold_at(x, e), (n, e)


def test_weighted_threshold_keeps_the_weighted_fraction_above_it_at_most_eps():
    rng = np.random.default_rng(8)
    for trial in range(20):
        b = np.round(rng.normal(size=rng.integers(50, 3000)), 1 + trial % 2)
        w = _weights(len(b), trial)
        for e in (0.3, 1e-2, 1e-3):
            cut = metrics.threshold_at(b, e, w)
            assert w[b > cut].sum() <= e * w.sum() * (1 + 1e-12)
            # never below the lowest cut with that property (NumPy's weighted inverted-CDF quantile)
            assert cut >= np.quantile(b, 1 - e, weights=w, method="inverted_cdf")


def test_low_statistics_count_the_effective_background_events():
    rng = np.random.default_rng(9)
    b, s = rng.normal(size=20_000), rng.normal(1.5, 1.0, size=1000)
    w = np.ones(len(b))
    w[:400] = 10.0  # 2 % of the events carry 17 % of the weight: N_eff ≈ 9 300 instead of 20 000
    n_eff = w.sum() ** 2 / (w ** 2).sum()
    with pytest.warns(metrics.LowStatisticsWarning, match="effective") as caught:
        row = metrics.figures_of_merit(b, s, bootstrap=0, background_weights=w)
    assert row["n_eff_background"] == pytest.approx(n_eff) and 9000 < n_eff < 10_000
    assert row["bkg_above@1e-3"] == pytest.approx(n_eff * 1e-3)
    assert row["low_stats@1e-3"] and not row["low_stats@1e-2"]  # unweighted, 1e-3 would have 20 events above
    assert any("1e-3" in str(w.message) for w in caught)


@pytest.mark.parametrize("weights, match", [
    (lambda n: np.r_[np.ones(n - 3), -0.5, 1.0, 1.0], r"background weights: row 17 \(counted from 0\) is -0.5"),
    (lambda n: np.r_[np.ones(5), np.nan, np.ones(n - 6)], "background weights: row 5 .* is nan"),
    (lambda n: np.r_[np.inf, np.ones(n - 1)], "background weights: row 0 .* is inf"),
    (lambda n: np.ones(n - 1), "background weights: 19 values for 20 events"),
    (lambda n: np.zeros(n), "background weights: all 20 are 0"),
])
def test_bad_weights_are_refused_in_one_line_naming_sample_and_row(weights, match):
    b, s = np.arange(20.0), np.arange(5.0) + 3
    for call in (lambda: metrics.auc(b, s, weights(20)), lambda: metrics.roc(b, s, weights(20)),
                 lambda: metrics.figures_of_merit(b, s, bootstrap=0, warn=False, background_weights=weights(20)),
                 lambda: metrics.threshold_at(b, 0.1, weights(20))):
        with pytest.raises(ValueError, match=match) as error:
            call()
        assert "\n" not in str(error.value)
        if "row" in match:
            assert "NLO events are not supported" in str(error.value)
    with pytest.raises(ValueError, match="signal weights: row 2"):
        metrics.auc(b, s, signal_weights=[1.0, 1.0, -1.0, 1.0, 1.0])


def test_comparison_table_and_roc_plots_use_the_runs_weights():
    rng = np.random.default_rng(10)
    b, s = rng.normal(size=3000), rng.normal(1.0, 1.0, size=800)
    wb, ws = _weights(len(b), 11), _weights(len(s), 12)
    plain = ScoredRun("plain", {}, background={"mse": b}, signals={"sig": {"mse": s}})
    def events(w):  # what `tfp-anomaly score` writes of a weighted run: each event's id, file and weight
        return {"event_id": np.arange(len(w)), "file": np.zeros(len(w), np.int16), "weight": w}

    weighted = ScoredRun("weighted", {}, background={"mse": b}, signals={"sig": {"mse": s}},
                         events={"background": events(wb), "sig": events(ws)})
    assert plain.weights is None and weighted.weights["sig"] is ws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.LowStatisticsWarning)
        table = comparison_table([plain, weighted], bootstrap=0).set_index("model")
    assert not table.loc["plain", "weighted"] and table.loc["weighted", "weighted"]
    assert table.loc["weighted", "AUC"] == metrics.auc(b, s, wb, ws) != table.loc["plain", "AUC"]
    figure = plots.roc_by_method(weighted)
    fpr, tpr = metrics.roc(b, s, wb, ws)
    keep = fpr > 0  # the HEP convention: ε_S across, background rejection 1/ε_B up
    np.testing.assert_array_equal(figure.axes[0].lines[0].get_xdata(), tpr[keep])
    np.testing.assert_array_equal(figure.axes[0].lines[0].get_ydata(), 1.0 / fpr[keep])
    wb[[3, 7]] = -1.0, -2.0  # weighted.events holds wb itself
    with pytest.raises(ValueError, match="run weighted, signal sig, score mse: background weights: row 3 .* is -1.0"):
        comparison_table([weighted], bootstrap=0)


# --------------------------------------------------------------------------- losses

def test_weighted_mean_is_the_mean_of_repeated_rows():
    rng = np.random.default_rng(12)
    v = tf.constant(rng.normal(size=(40, 3)), tf.float32)
    w = rng.integers(0, 4, 40)
    assert tf.reduce_all(losses.weighted_mean(v) == tf.reduce_mean(v, axis=0))
    np.testing.assert_allclose(losses.weighted_mean(v, w).numpy(), np.repeat(v.numpy(), w, axis=0).mean(0), rtol=1e-6)
    np.testing.assert_allclose(losses.weighted_mean(v[:, 0], 2.5 * w).numpy(), np.repeat(v.numpy()[:, 0], w).mean(),
                               rtol=1e-6)
    assert float(losses.weighted_mean(v[:, 0], np.zeros(40))) == 0.0  # an all-zero batch moves nothing


def _sw_sample(n=300, m=None, d=3, seed=13):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(n, d)) * [1.0, 2.0, 0.5] + 0.3, tf.float32)
    y = tf.constant(rng.normal(size=(m or n, d)), tf.float32)
    return x, y, losses.random_directions(40, d, tf.constant([1, 2]))


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_sliced_wasserstein_with_equal_weights_is_the_unweighted_distance(p):
    x, y, directions = _sw_sample()
    plain = float(losses.sliced_wasserstein(x, y, directions, p))
    for value in (1.0, 0.01, 7.0):
        equal = float(losses.sliced_wasserstein(x, y, directions, p, weights=np.full(300, value)))
        assert equal == pytest.approx(plain, rel=2e-6)


def test_sliced_wasserstein_ignores_zero_weight_rows():
    x, y, directions = _sw_sample(m=257)
    rng = np.random.default_rng(14)
    w = rng.exponential(size=300).astype("float32")
    w[150:] = 0.0
    far = tf.concat([x[:150], x[150:] + 1e3], axis=0)  # rows of weight 0 moved far away
    kept = float(losses.sliced_wasserstein(x[:150], y, directions, weights=w[:150]))
    assert float(losses.sliced_wasserstein(far, y, directions, weights=w)) == pytest.approx(kept, rel=1e-5)


def test_sliced_wasserstein_with_integer_weights_approximates_repeated_rows_within_the_midpoint_bound():
    """Row i repeated w_i times occupies a block of w_i consecutive quantile levels; the weighted form
    sends the whole block to its middle quantile y_mid. For p = 2 per direction the difference is

        (1/M) Σ_blocks Σ_k (|a − y_k|² − |a − y_mid|²),   |α² − β²| ≤ |α − β| (|α| + |β|),

    so it is bounded by (1/M) Σ |y_k − y_mid| (|a − y_k| + |a − y_mid|): the spread of the target's
    quantiles inside a block, small when no row carries a large share of the weight."""
    x, _, directions = _sw_sample(n=400)
    rng = np.random.default_rng(15)
    w = rng.integers(1, 4, 400)
    m = int(w.sum())
    y = tf.constant(rng.normal(size=(m, 3)), tf.float32)
    weighted = float(losses.sliced_wasserstein(x, y, directions, weights=w)) ** 2
    repeated = float(losses.sliced_wasserstein(tf.constant(np.repeat(x.numpy(), w, axis=0)), y, directions)) ** 2
    px, py = x.numpy().astype(np.float64) @ directions.numpy(), np.sort(y.numpy() @ directions.numpy(), axis=0)
    bound = 0.0
    for l in range(directions.shape[1]):
        order = np.argsort(px[:, l], kind="stable")
        a, wl = np.repeat(px[order, l], w[order]), np.repeat(w[order], w[order])
        start = np.repeat(np.cumsum(w[order]) - w[order], w[order])
        y_mid = py[start + wl // 2, l]
        bound += np.sum(np.abs(py[:, l] - y_mid) * (np.abs(a - py[:, l]) + np.abs(a - y_mid))) / m
    bound /= directions.shape[1]
    assert abs(weighted - repeated) <= bound + 1e-5 * repeated
    assert bound < 0.05 * repeated  # and the bound is small: the two agree to a few per cent


# --------------------------------------------------------------------------- models

SHAPE = (6, 3)


def _events(n, seed=16):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + SHAPE).astype("float32")
    mask = rng.random((n, SHAPE[0])) < 0.7
    mask[:, 0] = True
    return {"x": x * mask[..., None], "mask": mask}


def _rows(tree, index):
    return {k: tf.gather(v, index) for k, v in tree.items()}


@pytest.mark.parametrize("options", [{"free_bits": 0.5}, {"free_bits": 0.0}, {"free_bits": 0.2, "flow": "planar*2"}])
def test_vae_objective_weights_every_per_event_term(options):
    keras.utils.set_random_seed(3)  # the initial weights, whatever ran before in this process
    model = VAE(SHAPE, latent_dim=3, seed=1, **options)
    model.build()
    x = _events(40)
    y = dict(model(x, training=True))
    # posterior (and its samples) moved far from 0, so the KL is above the free-bits floor and its
    # weighting shows
    shift = 2.0 * tf.constant(np.random.default_rng(22).normal(size=(40, 3)), tf.float32)
    y.update({key: y[key] + shift for key in ("mu", "z0", "z")})
    loss, terms = model.objective(x, y, training=False)
    per_dim = losses.gaussian_kl_per_dim(y["mu"], y["log_var"]).numpy()
    if "flow" in options:
        assert terms["kl"].numpy()[:20].mean() > 3 * model.free_bits
    else:
        assert per_dim[:20].mean(0).min() > model.free_bits
    old = tf.reduce_mean(terms["reconstruction"]) + model.beta * model.kl_objective(y, terms["kl"])
    assert float(loss) == float(old)  # None: the unweighted loss itself
    ones, _ = model.objective(x, y, training=False, sample_weight=tf.ones(40))
    assert float(ones) == pytest.approx(float(loss), rel=1e-6)
    # one half of weight 0: the loss of the other half alone
    half = tf.constant([1.0] * 20 + [0.0] * 20)
    alone, _ = model.objective(_rows(x, range(20)), _rows(y, range(20)), training=False)
    assert float(model.objective(x, y, training=False, sample_weight=half)[0]) == pytest.approx(float(alone), rel=1e-6)
    # integer weights: the batch with row i repeated w_i times
    w = np.random.default_rng(17).integers(0, 4, 40)
    index = np.repeat(np.arange(40), w)
    repeated, _ = model.objective(_rows(x, index), _rows(y, index), training=False)
    weighted, _ = model.objective(x, y, training=False, sample_weight=tf.constant(w, tf.float32))
    assert float(weighted) == pytest.approx(float(repeated), rel=1e-6)
    assert float(weighted) != pytest.approx(float(loss), rel=1e-4)  # and the weights matter


def test_swae_objective_weights_the_reconstruction_and_the_sliced_distance():
    model = SWAE((4,), latent_dim=2, network={"type": "dense", "hidden_units": [8]}, lam=3.0, seed=2)
    model.build()
    x = tf.constant(np.random.default_rng(18).normal(size=(64, 4)), tf.float32)
    y = model(x)
    y["z"] = tf.concat([y["z"][:32], y["z"][32:] + 100.0], axis=0)  # the zero-weight half far from the prior
    half = tf.constant([1.0] * 32 + [0.0] * 32)
    loss, terms = model.objective(x, y, sample_weight=half)
    recon = model.reconstruction_loss(x, y["out"])
    assert float(loss) == pytest.approx(float(tf.reduce_mean(recon[:32]) + 3.0 * terms["sliced_wasserstein"]), rel=1e-6)
    assert float(terms["sliced_wasserstein"]) < 10.0  # the far half has no weight
    _, unweighted = model.objective(x, y)
    assert float(unweighted["sliced_wasserstein"]) > 1000.0  # without weights it dominates


def test_a_batch_of_zero_weights_gives_zero_loss_and_zero_gradients():
    model = SWAE((4,), latent_dim=2, network={"type": "dense", "hidden_units": [8]}, lam=1.0, seed=4)
    model.build()
    x = tf.constant(np.random.default_rng(21).normal(size=(16, 4)), tf.float32)
    with tf.GradientTape() as tape:
        loss, _ = model.objective(x, model(x), sample_weight=tf.zeros(16))
    assert float(loss) == 0.0
    assert all(np.all(g.numpy() == 0.0) for g in tape.gradient(loss, model.trainable_weights) if g is not None)


def test_ensemble_passes_the_weights_to_every_member():
    model = Ensemble((4,), "swae", 2, {"latent_dim": 2, "network": {"type": "dense", "hidden_units": [8]}, "lam": 0.0})
    model.build()
    x = tf.constant(np.random.default_rng(19).normal(size=(30, 4)), tf.float32)
    y = model(x)
    w = tf.constant(np.r_[np.ones(10), np.zeros(20)], tf.float32)
    expected = sum(float(tf.reduce_mean(m.reconstruction_loss(x[:10], p["out"][:10]))) for m, p in zip(model.members, y))
    assert float(model.compute_loss(x, None, y, sample_weight=w)) == pytest.approx(expected, rel=1e-6)
    # the metric: the members' mean of each batch mean, entering the epoch mean with weight Σw (10) or 1
    unweighted = float(model.compute_loss(x, None, y))
    assert unweighted != pytest.approx(expected, rel=1e-3)
    assert float(model.trackers["reconstruction"].result()) == pytest.approx(
        (10 * expected / 2 + 1 * unweighted / 2) / 11, rel=1e-5)


def _one_sgd_step(x, sample_weight=None, dataset=False):
    """One SGD step of a small SWAE (λ = 0: the loss is the deterministic reconstruction) on the whole
    batch; weights as Keras takes them, with the placeholder target Keras needs to keep them."""
    keras.utils.set_random_seed(0)
    model = SWAE((4,), latent_dim=2, network={"type": "dense", "hidden_units": [8]}, lam=0.0, seed=3)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    if dataset:
        model.fit(tf.data.Dataset.from_tensor_slices((x, (), sample_weight)).batch(len(x)), epochs=1, shuffle=False,
                  verbose=0)
    else:
        model.fit(x, np.zeros(len(x)), sample_weight=sample_weight, batch_size=len(x), epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def one_step_references():
    """(clean events, garbage events, the weights after a step on the clean events alone, the first
    layer's kernel after a step on clean + garbage unweighted)."""
    rng = np.random.default_rng(20)
    clean = rng.normal(size=(32, 4)).astype("float32")
    garbage = 1e3 * rng.normal(size=(32, 4)).astype("float32")
    alone = [w.numpy() for w in _one_sgd_step(clean).trainable_weights]
    polluted = _one_sgd_step(np.r_[clean, garbage]).trainable_weights[0].numpy()
    return clean, garbage, alone, polluted


@pytest.mark.parametrize("dataset", [False, True])
def test_model_fit_with_sample_weight_ignores_zero_weight_events(one_step_references, dataset):
    clean, garbage, alone, polluted = one_step_references
    weighted = _one_sgd_step(np.r_[clean, garbage], np.r_[np.ones(32), np.zeros(32)].astype("float32"), dataset)
    for a, b in zip(weighted.trainable_weights, alone):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(polluted, alone[0], atol=1e-3)  # the garbage would move the weights
