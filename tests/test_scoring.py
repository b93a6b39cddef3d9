"""Scoring methods: registry, values against independent computations, fitting, applicability."""
import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis
from sklearn.covariance import LedoitWolf

from tfp_anomaly import scoring

DENSE = {"type": "dense", "hidden_units": [16]}


def test_mahalanobis_matches_scipy_on_a_known_covariance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov, mean = a @ a.T + np.eye(3), np.array([1.0, -2.0, 0.5])
    method = scoring.Mahalanobis(location=mean, precision=np.linalg.inv(cov))
    e = rng.normal(size=(50, 3))
    expected = [scipy_mahalanobis(row, mean, np.linalg.inv(cov)) for row in e]
    np.testing.assert_allclose(method.score({"encoding": e}), expected, rtol=1e-10)


def test_mahalanobis_fit_is_ledoit_wolf_on_the_background_encodings():
    rng = np.random.default_rng(1)
    e = rng.multivariate_normal([0.0, 3.0], [[2.0, 0.8], [0.8, 1.0]], size=4000)
    method = scoring.Mahalanobis().fit({"encoding": e})
    ref = LedoitWolf().fit(e)
    np.testing.assert_allclose(method.score({"encoding": e[:20]}) ** 2, ref.mahalanobis(e[:20]), rtol=1e-9)
    with pytest.raises(scoring.ScoringError, match="call fit first"):
        scoring.Mahalanobis().score({"encoding": e})


def test_combinations_standardise_each_term_on_background():
    rng = np.random.default_rng(2)
    terms = {"mse": rng.exponential(2.0, 5000), "kl": rng.normal(10.0, 3.0, 5000)}
    combo = scoring.get_method("2*mse+kl").fit(terms)
    assert combo.name == "2*mse+kl"
    new = {"mse": np.array([2.0, 8.0]), "kl": np.array([10.0, 19.0])}
    expected = (2 * (new["mse"] - terms["mse"].mean()) / terms["mse"].std()
                + (new["kl"] - terms["kl"].mean()) / terms["kl"].std())
    np.testing.assert_allclose(combo.score(new), expected)
    rank = scoring.get_method("rank:mse+kl").fit(terms)
    top = {k: v.max() for k, v in terms.items()}
    cdf = rank.score({"mse": np.array([np.median(terms["mse"]), top["mse"], top["mse"] + 1, top["mse"] + 2]),
                      "kl": np.array([np.median(terms["kl"]), top["kl"], top["kl"] + 1, top["kl"] + 2])})
    np.testing.assert_allclose(cdf[:2], [1.0, 2.0], atol=2e-3)  # each term its background CDF: ½ + ½, then 1 + 1
    assert 2.0 < cdf[2] < cdf[3]  # beyond the background the order is kept (no tie at 1 + 1)
    restored = scoring.method_from_config(rank.get_config())
    np.testing.assert_allclose(restored.score(new), rank.score(new))


@pytest.mark.parametrize("spec, message", [("msq", "unknown scoring method 'msq'"),
                                           ("mse+foo", r"combination 'mse\+foo': unknown scoring method 'foo'"), ("x*mse+kl", "weight 'x'")])
def test_unknown_methods_are_named(spec, message):
    with pytest.raises(KeyError, match=message):
        scoring.get_method(spec)


@pytest.fixture(scope="module")
def models():
    import keras

    from tfp_anomaly.models import SWAE, VAE

    keras.utils.set_random_seed(0)
    built = {"vae": VAE((5,), latent_dim=3, network=DENSE), "vae_flow": VAE((5,), latent_dim=3, network=DENSE, flow="planar*2"),
             "swae_uniform": SWAE((5,), latent_dim=3, network=DENSE, prior="uniform"),
             "swae_ring": SWAE((5,), latent_dim=3, network=DENSE, prior="ring")}
    for model in built.values():
        model.build()
    return built


def test_all_picks_the_methods_that_apply(models, monkeypatch):
    # which methods apply is the question, not how latent_flow trains its density (tests/test_latent_flow.py):
    # its fit (30 epochs of a flow, per model) is skipped
    monkeypatch.setattr(scoring.SCORES["latent_flow"], "fit", lambda self, terms: self)
    x = np.random.default_rng(3).normal(size=(300, 5)).astype("float32")
    chosen = {name: set(scoring.Scorer("all").fit(model, x).methods) for name, model in models.items()}
    combos = {"mse+mahalanobis", "rank:mse+mahalanobis", "rank:input_norm+mahalanobis"}
    common = {"mse", "reconstruction", "input_norm", "latent_norm", "mahalanobis", "latent_flow"}
    assert chosen["vae"] == common | {"total_loss", "kl", "rz", "latent_logp", "iwae", "elbo"} | combos
    assert chosen["swae_uniform"] == common | combos  # flat prior: no latent_logp
    assert chosen["swae_ring"] == common | {"radial", "latent_logp"} | combos
    with pytest.raises(scoring.ScoringError, match="'kl' does not apply to this model"):
        scoring.Scorer(["kl"]).fit(models["swae_ring"], x)


def test_terms_are_the_model_quantities_in_batches_and_deterministic(models):
    import tensorflow as tf

    from tfp_anomaly import losses

    x = np.random.default_rng(4).normal(size=(103, 5)).astype("float32")
    vae = models["vae"]
    small, large = scoring.compute_terms(vae, x, batch_size=10), scoring.compute_terms(vae, x, batch_size=1000)
    for key in ("mse", "kl", "rz", "encoding", "total_loss", "input_norm"):
        np.testing.assert_allclose(small[key], large[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small["input_norm"], (x ** 2).mean(axis=1), rtol=1e-5)  # no scaler: x itself
    h, mu, log_var = vae.encode(x)
    np.testing.assert_allclose(small["encoding"], mu.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small["kl"], losses.gaussian_kl(mu, log_var).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(small["rz"], tf.reduce_sum(mu ** 2 / tf.exp(log_var), -1).numpy(), rtol=1e-5)
    flow = models["vae_flow"]
    np.testing.assert_array_equal(scoring.compute_terms(flow, x, seed=1)["kl"], scoring.compute_terms(flow, x, seed=1)["kl"])
    assert not np.array_equal(scoring.compute_terms(flow, x, seed=1)["kl"], scoring.compute_terms(flow, x, seed=2)["kl"])


def test_radial_uses_the_median_background_radius(models):
    rng = np.random.default_rng(5)
    z = rng.normal(size=(1000, 3))
    z = 2.0 * z / np.linalg.norm(z, axis=1, keepdims=True)
    radial = scoring.Radial().fit({"latent": z})
    assert radial.radius == pytest.approx(2.0)
    np.testing.assert_allclose(radial.score({"latent": np.array([[0.0, 0.0, 3.5], [0.5, 0.0, 0.0]])}), [1.5, 1.5])


def test_non_finite_scores_name_the_method_and_row(models):
    x = np.random.default_rng(6).normal(size=(50, 5)).astype("float32")
    scorer = scoring.Scorer(["mse"]).fit(models["vae"], x)
    terms = scoring.compute_terms(models["vae"], x)
    terms["mse"][7] = np.nan
    with pytest.raises(scoring.ScoringError, match="'mse': 1 of 50 events .* row 7"):
        scorer.score(models["vae"], x, terms=terms)
