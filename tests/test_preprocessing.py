"""Scalers against scikit-learn, masking, background-only fitting, serialisation."""
import numpy as np
import pytest
import sklearn.preprocessing as skp

from tfp_anomaly.data import ObjectGrid, Scaler, get_scaler, split_indices


@pytest.mark.parametrize("name,reference", [("standard", skp.StandardScaler), ("robust", skp.RobustScaler),
                                            ("minmax", skp.MinMaxScaler)])
def test_tables_match_scikit_learn(name, reference):
    x = np.random.default_rng(0).lognormal(size=(500, 4)) * [1, 10, 100, 1000]
    ours = get_scaler(name).fit_transform(x)
    np.testing.assert_allclose(ours, reference().fit_transform(x), rtol=2e-5, atol=2e-6)


def test_masked_grid_ignores_padding_and_keeps_it_zero(dm_events):
    x, mask = ObjectGrid.preset("darkflow").transform(dm_events)
    scaler = get_scaler("standard").fit(x, mask)
    real = x[mask].astype(np.float64)
    np.testing.assert_allclose(scaler.center_, real.mean(axis=0), rtol=1e-6)
    z = scaler.transform(x, mask)
    assert np.all(z[~mask] == 0)
    np.testing.assert_allclose(z[mask].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(z[mask].std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(scaler.inverse_transform(z, mask), x, rtol=1e-5, atol=1e-2)


def test_per_slot_statistics(dm_events):
    x, mask = ObjectGrid.preset("darkflow").transform(dm_events[:2000])
    scaler = get_scaler("standard", per_slot=True).fit(x, mask)
    assert scaler.center_.shape == (32, 4)
    np.testing.assert_allclose(scaler.center_[0], x[:, 0][mask[:, 0]].astype(np.float64).mean(axis=0), rtol=1e-9)
    never_filled = ~mask.any(axis=0)
    assert never_filled.any()  # e.g. third electron slot: identity statistics, no NaN
    assert np.all(scaler.center_[never_filled] == 0) and np.all(scaler.scale_[never_filled] == 1)
    assert np.all(scaler.scale_[12] > 0)  # 13th jet slot is rarely filled: scale stays usable


def test_fit_on_background_only_applies_unchanged_to_signal():
    rng = np.random.default_rng(1)
    background, signal = rng.normal(0, 1, (1000, 2)), rng.normal(3, 1, (100, 2))
    scaler = get_scaler("standard").fit(background)
    # a shifted signal stays shifted: it is not re-centred by its own statistics
    assert scaler.transform(signal).mean() > 2.5


def test_log_columns_save_load_and_errors(tmp_path):
    x = np.abs(np.random.default_rng(2).normal(size=(100, 3))) * 1e5
    scaler = get_scaler("robust", log_columns=[0, 1]).fit(x)
    np.testing.assert_allclose(scaler.center_[:2], np.median(np.log1p(x[:, :2]), axis=0))
    path = scaler.save(tmp_path / "scaler.json")
    again = Scaler.load(path)
    np.testing.assert_array_equal(again.transform(x), scaler.transform(x))
    np.testing.assert_allclose(again.inverse_transform(again.transform(x)), x, rtol=1e-5)
    with pytest.raises(ValueError, match="column 0 needs non-negative"):
        scaler.transform(-x)
    with pytest.raises(RuntimeError, match="not fitted"):
        get_scaler("standard").transform(x)
    with pytest.raises(KeyError, match="available: minmax, none, quantile, robust, standard"):
        get_scaler("zscore")


def test_constant_column_is_not_divided_by_zero():
    x = np.column_stack([np.ones(10), np.arange(10.0)])
    z = get_scaler("standard").fit_transform(x)
    assert np.isfinite(z).all() and np.all(z[:, 0] == 0)


def test_splits_are_seeded_disjoint_and_complete():
    a, b = split_indices(1003, (0.6, 0.2, 0.2), seed=7), split_indices(1003, (0.6, 0.2, 0.2), seed=7)
    for x, y in zip(a.parts().values(), b.parts().values()):
        np.testing.assert_array_equal(x, y)
    assert (len(a.train), len(a.val), len(a.test)) == (601, 200, 202)
    assert np.array_equal(np.sort(np.concatenate(list(a.parts().values()))), np.arange(1003))
    assert not np.array_equal(split_indices(1003, seed=8).train, a.train)
    with pytest.raises(ValueError, match="sum"):
        split_indices(10, (0.5, 0.5, 0.5))


def test_quantile_scaler_gaussianises_matches_its_keras_layer_and_keeps_tail_order(tmp_path):
    from scipy.stats import kstest

    from tfp_anomaly.data.preprocessing import QuantileScaler, Scaler
    from tfp_anomaly.models import ScalerLayer

    rng = np.random.default_rng(0)
    # a heavy-tailed column, a discrete one (many ties, as jet multiplicities) and a constant-width one
    train = np.c_[rng.lognormal(0.0, 1.5, 20_000), rng.poisson(3.0, 20_000), rng.uniform(-1, 1, 20_000)]
    scaler = QuantileScaler(n_quantiles=500).fit(train)
    fresh = np.c_[rng.lognormal(0.0, 1.5, 5000), rng.poisson(3.0, 5000), rng.uniform(-1, 1, 5000)]
    out = scaler.transform(fresh)
    assert kstest(out[:, 0], "norm").statistic < 0.03 and kstest(out[:, 2], "norm").statistic < 0.03
    # a pile-up at the maximum (exp(-1) ≈ 37 % of events at 1.0) maps to the middle of its CDF band,
    # Φ⁻¹(1 − 0.368/2) ≈ 0.90, not to the edge where it would look anomalous
    piled = np.minimum(rng.exponential(1.0, 20_000), 1.0)[:, None]
    pile = QuantileScaler(bounds="middle").fit(piled)
    assert pile.transform(np.array([[1.0]]))[0, 0] == pytest.approx(0.90, abs=0.03)
    np.testing.assert_allclose(ScalerLayer(pile.get_config())(np.array([[1.0], [0.0]], "float32")).numpy(),
                               pile.transform(np.array([[1.0], [0.0]])), rtol=1e-4, atol=2e-4)
    # by default (as scikit-learn) the bounds map to the edges, ±Φ⁻¹(1 − 1e-7) = ±5.2
    edges = QuantileScaler().fit(piled)
    np.testing.assert_allclose(edges.transform(np.array([[1.0], [0.0]]))[:, 0], [5.199, -5.199], atol=2e-3)
    np.testing.assert_allclose(ScalerLayer(edges.get_config())(np.array([[1.0], [0.0]], "float32")).numpy(),
                               edges.transform(np.array([[1.0], [0.0]])), rtol=1e-4, atol=2e-3)
    # beyond the training range: ordered, finite, no clamp to a common edge, no linear blow-up
    beyond = scaler.transform(np.array([[train[:, 0].max() * 2, 50.0, 5.0], [train[:, 0].max() * 4, 80.0, 9.0]]))
    assert np.all(np.isfinite(beyond)) and np.all(beyond[1] > beyond[0]) and np.all(beyond[0] > 5.19)
    assert scaler.transform(np.array([[-1.0, -5.0, -3.0]])).max() < -5.19
    # the Keras layer gives the same numbers, ties included; the config round-trips
    restored = Scaler.from_config(scaler.get_config())
    probe = np.r_[fresh[:200], np.array([[1.0, 3.0, 0.0], [0.0, 0.0, -1.0]]), beyond].astype("float32")
    layer = ScalerLayer(restored.get_config())
    np.testing.assert_allclose(layer(probe).numpy(), scaler.transform(probe), rtol=1e-4, atol=2e-4)
    with pytest.raises(ValueError, match="per_slot"):
        QuantileScaler(per_slot=True)
