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
    with pytest.raises(KeyError, match="available: standard"):
        get_scaler("quantile")


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
