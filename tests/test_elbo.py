"""The VAE's likelihood, free bits, the importance-weighted bound and seed ensembles."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from sklearn.metrics import roc_auc_score

from tfp_anomaly import losses
from tfp_anomaly.models import VAE, Ensemble, make_model
from tfp_anomaly.scoring import Scorer, compute_terms

SHAPE = (6, 3)


def _events(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + SHAPE).astype("float32")
    mask = rng.random((n, SHAPE[0])) < 0.7
    mask[:, 0] = True
    return {"x": x * mask[..., None], "mask": mask}


def test_gaussian_likelihood_is_the_normal_nll_summed_over_real_features():
    x = _events(50)
    out = np.random.default_rng(1).normal(size=x["x"].shape).astype("float32")
    nll = losses.get_reconstruction({"name": "gaussian", "scale": 0.7}).loss(tf.constant(x["x"]), out, x["mask"])
    expected = -(stats.norm.logpdf(x["x"], out, 0.7).sum(-1) * x["mask"]).sum(-1)
    np.testing.assert_allclose(nll.numpy(), expected, rtol=1e-5)
    # the Cerri et al. per-feature likelihood sums over the same real features
    params = np.stack([out, np.full_like(out, np.log(0.7))], axis=-1).reshape(50, 6, 6)
    cerri = losses.get_reconstruction({"name": "likelihood", "features": ["gaussian"] * 3})
    np.testing.assert_allclose(cerri.loss(tf.constant(x["x"]), params, x["mask"]).numpy(), expected, rtol=1e-5)


def test_learned_scale_is_a_trainable_weight_of_the_model():
    model = VAE(SHAPE, latent_dim=2, reconstruction="gaussian")
    model.build()
    names = [w.path for w in model.trainable_weights]
    assert any("reconstruction_log_scale" in n for n in names), names
    assert model.reconstruction.log_scale.shape == (3,)


def test_free_bits_floor_each_dimensions_batch_kl():
    model = VAE(SHAPE, latent_dim=3, free_bits=0.5)
    mu = tf.constant([[0.0, 0.1, 2.0], [0.0, -0.1, 1.0]])
    log_var = tf.zeros_like(mu)
    y = {"mu": mu, "log_var": log_var}
    per_dim = 0.5 * np.mean(mu.numpy() ** 2, axis=0)  # σ = 1: ½ μ² per dimension
    expected = np.maximum(per_dim, 0.5).sum()
    assert float(model.kl_objective(y, losses.gaussian_kl(mu, log_var))) == pytest.approx(expected, rel=1e-6)
    plain = VAE(SHAPE, latent_dim=3, free_bits=0.0)
    assert float(plain.kl_objective(y, losses.gaussian_kl(mu, log_var))) == pytest.approx(per_dim.sum(), rel=1e-6)


@pytest.fixture(scope="module")
def vae():
    model = VAE(SHAPE, latent_dim=3, reconstruction="gaussian", seed=3)
    model.build()
    return model


def test_iwae_with_one_sample_is_the_elbo_and_tightens_with_more(vae):
    x = {k: tf.constant(v) for k, v in _events(300).items()}
    seed = tf.constant([5, 0])
    vae.iwae_samples = 1
    try:
        terms = vae.score_terms(x, seed)
    finally:
        vae.iwae_samples = 16
    # K = 1: log-mean-exp of one weight is that weight, the single-sample ELBO of the same draw
    np.testing.assert_allclose(terms["iwae"].numpy(), terms["elbo"].numpy(), rtol=1e-6)
    many = vae.log_importance_weights(x, 256, seed).numpy()
    assert many.shape == (300, 256)
    # L_K grows with K on average (Burda et al. 2016, theorem 1); per event it is ≥ the ELBO of its draws
    bounds = [losses.log_mean_exp(tf.constant(many[:, :k])).numpy().mean() for k in (1, 4, 64, 256)]
    assert bounds == sorted(bounds) and bounds[-1] > bounds[0] + 0.01
    terms = vae.score_terms(x, seed)
    assert np.all(terms["iwae"].numpy() <= terms["elbo"].numpy() + 1e-4)


def test_elbo_estimate_matches_the_closed_form_kl_and_the_sampled_likelihood(vae):
    x = _events(200, seed=4)
    many = vae.log_importance_weights(x, 512, tf.constant([9, 9])).numpy()
    h, mu, log_var = vae.encode(x)
    kl = losses.gaussian_kl(mu, log_var).numpy()
    # E_q[log p(x|z)] by an independent Monte Carlo: decode fresh posterior samples
    rng = np.random.default_rng(0)
    scaled, mask = vae.scaled(x)
    log_px = []
    for _ in range(64):
        z = mu.numpy() + np.exp(0.5 * log_var.numpy()) * rng.normal(size=mu.shape).astype("float32")
        log_px.append(-vae.reconstruction.loss(scaled, vae.decoder(z), mask).numpy())
    elbo = np.mean(log_px, axis=0) - kl
    assert float(many.mean()) == pytest.approx(float(elbo.mean()), rel=0.01)


def test_an_identity_flow_gives_the_plain_vaes_bound(vae):
    # IAF conditioners start at zero: the flow is the identity with log|det J| = 0 until trained
    flowed = VAE(SHAPE, latent_dim=3, reconstruction="gaussian", flow="iaf", seed=3)
    flowed.build()
    for name in ("encoder", "decoder", "mu_head", "log_var_head"):
        getattr(flowed, name).set_weights(getattr(vae, name).get_weights())
    flowed.reconstruction.log_scale.assign(vae.reconstruction.log_scale)
    x = _events(100)
    seed = tf.constant([1, 2])
    np.testing.assert_allclose(flowed.log_importance_weights(x, 8, seed).numpy(),
                               vae.log_importance_weights(x, 8, seed).numpy(), rtol=1e-5, atol=1e-5)


def _copy_first_member(ensemble):
    for member in ensemble.members[1:]:
        member.set_weights(ensemble.members[0].get_weights())


def test_an_ensemble_of_identical_members_scores_like_one_member():
    single = VAE(SHAPE, latent_dim=3, seed=0)
    single.build()
    ensemble = make_model(VAE, SHAPE, ensemble=3, latent_dim=3)
    ensemble.build()
    assert isinstance(ensemble, Ensemble) and ensemble.ensemble_size == 3
    for member in ensemble.members:
        member.set_weights(single.get_weights())
    background, signal = _events(600, seed=1), _events(300, seed=2)
    signal["x"] = signal["x"] * 1.5
    methods = ["mse", "mahalanobis", "rz", "rank:mse+mahalanobis"]
    one = Scorer(methods).fit(single, background)
    many = Scorer(methods).fit(ensemble, background)
    labels = np.r_[np.zeros(600), np.ones(300)]
    for method in methods:
        a = np.r_[one.score(single, background)[method], one.score(single, signal)[method]]
        b = np.r_[many.score(ensemble, background)[method], many.score(ensemble, signal)[method]]
        assert stats.spearmanr(a, b).statistic == pytest.approx(1.0), method
        assert roc_auc_score(labels, b) == pytest.approx(roc_auc_score(labels, a), abs=1e-9), method


def test_an_ensemble_trains_saves_and_loads_as_one_model(tmp_path):
    import keras

    from tfp_anomaly.models.training import train

    ensemble = make_model(VAE, SHAPE, ensemble=2, latent_dim=2, reconstruction="gaussian", seed=0)
    ensemble.build()
    first, second = (m.encoder.get_weights()[0] for m in ensemble.members)
    assert not np.allclose(first, second)  # members start from different initialisations
    x, val = _events(512), _events(128, seed=5)
    ensemble, history = train(ensemble, x, val, epochs=2, batch_size=128, verbose=0, jit_compile=False)
    assert {"loss", "kl", "reconstruction", "val_loss"} <= set(history.history)
    ensemble.save(tmp_path / "e.keras")
    loaded = keras.models.load_model(tmp_path / "e.keras")
    a, b = compute_terms(ensemble, val), compute_terms(loaded, val)
    assert a["mse"].shape == (128, 2)
    for key in ("mse", "kl", "iwae"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5)


@pytest.fixture(scope="module")
def embedded():
    from tfp_anomaly import config as config_lib
    from tfp_anomaly.inputs import prepare_data

    config = config_lib.merge(config_lib.DEFAULTS, config_lib.read_yaml("examples/configs/convvae.yaml"))
    config["data"]["max_events"] = 12_000
    return config, prepare_data(config)


@pytest.mark.parametrize("loss, collapses", [({}, False), ({"reconstruction": "mse", "free_bits": 0.0}, True)])
def test_the_default_elbo_keeps_the_latent_space_alive_where_mean_mse_collapses(embedded, loss, collapses):
    """On real events: the default loss (Gaussian likelihood summed over the real features, free bits)
    keeps at least half of the latent units active; DarkFlow's mean MSE with β = 1 leaves fewer, and
    the diagnostic says so with a LatentCollapseWarning."""
    import warnings

    from tfp_anomaly.diagnostics import LatentCollapseWarning, latent_diagnostics
    from tfp_anomaly.experiment import build_model
    from tfp_anomaly.models.training import train

    config, prepared = embedded
    config = {**config, "model": {**config["model"], "network": {"type": "dense", "hidden_units": [64, 32]}, **loss}}
    model = build_model(config, prepared.input_shape, prepared.scaler.get_config())
    model, _ = train(model, prepared.parts["train"], None, epochs=6, batch_size=128, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = latent_diagnostics(model, prepared.parts["val"])
    warned = any(issubclass(w.category, LatentCollapseWarning) for w in caught)
    assert warned == collapses, result
    if collapses:
        assert result["active_units"] < result["latent_dim"] / 2 and result["kl"] < 0.5
    else:
        assert result["active_units"] >= result["latent_dim"] / 2 and result["kl"] > 1.0
    assert len(result["kl_per_dim"]) == result["latent_dim"] and result["iwae"] >= result["elbo"] - 1e-3


def test_an_ensemble_trains_scores_and_reports_from_the_command_line(tmp_path, capsys):
    """model.ensemble through train → score → report: one run, one scores file, the members' latent
    diagnostics (mean ± std) in the summary and the report."""
    import json

    from tfp_anomaly.cli import main
    from tfp_anomaly.report import ScoredRun

    config = tmp_path / "ensemble.yaml"
    config.write_text("""
data: {background: sample, signals: sample, max_events: 1500}
grid: {blocks: [[j, 6], [b, 2], [m+, 1], [m-, 1], [e+, 1], [e-, 1], [g, 1]], met_row: true, features: [E, pt, eta, phi]}
scaler: {name: standard, log_columns: [0, 1]}
model: {type: vae, ensemble: 2, latent_dim: 3, network: {type: dense, hidden_units: [32]}}
training: {epochs: 2, batch_size: 128, verbose: 0, jit_compile: false}
""")
    run_dir = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run_dir)]) == 0
    diagnostics = json.loads((run_dir / "summary.json").read_text())["diagnostics"]
    assert len(diagnostics["members"]) == 2 and "iwae_std" in diagnostics
    assert main(["score", str(run_dir), "--methods", "iwae", "kl", "latent_flow", "rank:mse+mahalanobis",
                 "--max-signal-events", "300", "--no-progress"]) == 0
    scored = ScoredRun.load(run_dir / "scores.h5")
    assert scored.meta["ensemble"] == 2 and len(scored.background["iwae"]) == 300
    assert all(np.isfinite(s["latent_flow"]).all() for s in scored.signals.values())
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report"), "--bootstrap", "2"]) == 0
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Latent diagnostics" in html and " ± " in html.split("Latent diagnostics")[1][:3000]
    capsys.readouterr()


def test_the_detector_takes_an_ensemble_and_saves_it(tmp_path):
    from tfp_anomaly import AnomalyDetector

    x = np.random.default_rng(7).normal(size=(1200, 5)).astype("float32")
    spec = {"type": "vae", "ensemble": 2, "latent_dim": 2, "network": {"type": "dense", "hidden_units": [16]}}
    detector = AnomalyDetector(spec, score="rank:kl+mse", epochs=1, batch_size=200).fit(x)
    assert isinstance(detector.model_, Ensemble)
    loaded = AnomalyDetector.load(detector.save(tmp_path / "det"))
    np.testing.assert_allclose(loaded.decision_function(x[:50]), detector.decision_function(x[:50]), rtol=1e-6)
    assert loaded.threshold_ == detector.threshold_


def test_an_ensemble_keeps_its_flow_training_stage_through_save_and_load(tmp_path):
    import keras

    ensemble = make_model(VAE, SHAPE, ensemble=2, latent_dim=2, flow="planar")
    ensemble.build()
    ensemble.set_stage("vae")
    ensemble.save(tmp_path / "staged.keras")
    loaded = keras.models.load_model(tmp_path / "staged.keras")
    assert loaded.stage == "vae" and all(m.stage == "vae" for m in loaded.members)
    assert not any(m.flow.trainable for m in loaded.members)
