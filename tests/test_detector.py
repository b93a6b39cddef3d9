"""The PyOD-style facade: fit on background, threshold at a background efficiency, save/load, clone."""
import numpy as np
import pytest
from sklearn.base import clone

from tfp_anomaly import AnomalyDetector

SPEC = {"type": "vae", "latent_dim": 3, "network": {"type": "dense", "hidden_units": [16]}}


def _data(n=12_000, seed=0):
    rng = np.random.default_rng(seed)
    cov = np.diag([1.0, 2.0, 0.5, 1.0, 1.0, 3.0])
    background = rng.multivariate_normal(np.zeros(6), cov, size=n).astype("float32")
    signal = rng.multivariate_normal(np.full(6, 1.5), cov, size=2000).astype("float32")
    return background, signal


@pytest.fixture(scope="module")
def fitted():
    background, signal = _data()
    return AnomalyDetector(SPEC, score="mse+mahalanobis", bkg_efficiency=1e-2, epochs=3).fit(background), signal


def test_constructor_stores_arguments_only_and_clone_works():
    detector = AnomalyDetector(SPEC, score="kl", bkg_efficiency=1e-3, epochs=2)
    assert not hasattr(detector, "model_") and detector.get_params()["score"] == "kl"
    copy = clone(detector)
    assert copy.get_params() == detector.get_params() and copy is not detector
    with pytest.raises(AttributeError, match="not fitted"):
        detector.predict(np.zeros((2, 6), "float32"))


def test_threshold_gives_the_background_efficiency_on_new_background(fitted):
    detector, signal = fitted
    fresh, _ = _data(n=20_000, seed=7)
    rate = detector.predict(fresh).mean()
    # 20,000 events at ε_B = 1e-2: binomial σ ≈ 7e-4; the threshold itself comes from 2,400 held-out events
    assert 0.005 < rate < 0.02
    assert (detector.decision_scores_ > detector.threshold_).mean() <= 1e-2
    assert detector.predict(signal).mean() > 5 * rate
    assert set(np.unique(detector.predict(signal))) <= {0, 1}


def test_save_and_load_give_identical_scores_and_threshold(fitted, tmp_path):
    detector, signal = fitted
    detector.save(tmp_path / "det")
    loaded = AnomalyDetector.load(tmp_path / "det")
    np.testing.assert_allclose(loaded.decision_function(signal), detector.decision_function(signal), rtol=1e-6)
    assert loaded.threshold_ == detector.threshold_ and loaded.get_params()["score"] == "mse+mahalanobis"


def test_a_trained_model_is_wrapped_without_training(fitted):
    detector, signal = fitted
    background, _ = _data(seed=3)
    weights = [w.copy() for w in detector.model_.get_weights()]
    wrapped = AnomalyDetector(detector.model_, score="mahalanobis", bkg_efficiency=1e-2).fit(background)
    assert wrapped.history_ is None
    for before, after in zip(weights, wrapped.model_.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert wrapped.decision_function(signal).shape == (2000,)


def test_too_little_background_for_the_target_warns(fitted):
    from tfp_anomaly.report.metrics import LowStatisticsWarning

    background, _ = _data(n=2000)
    with pytest.warns(LowStatisticsWarning, match="bkg_efficiency=0.001 with 400 held-out"):  # the held-out part decides,
        AnomalyDetector(fitted[0].model_, bkg_efficiency=1e-3).fit(background)  # trained or wrapped alike
