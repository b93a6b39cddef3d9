"""Loss terms against independent references: POT's sliced Wasserstein, scipy densities, hand-computed
Chamfer distances; the flow ELBO's KL wiring in the VAE."""
import numpy as np
import ot
import pytest
import tensorflow as tf
from scipy import stats

from tfp_anomaly import losses
from tfp_anomaly.models import VAE


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_sliced_wasserstein_matches_pot(p):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 5)), rng.uniform(-1, 2, size=(200, 5))
    directions = losses.random_directions(64, 5, tf.constant([1, 2])).numpy().astype("float64")
    np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1.0, rtol=1e-6)
    ours = float(losses.sliced_wasserstein(tf.constant(x), tf.constant(y), tf.constant(directions), p))
    reference = ot.sliced_wasserstein_distance(x, y, n_projections=64, p=p, projections=directions)
    np.testing.assert_allclose(ours, reference, rtol=1e-5)


def test_chamfer_is_row_permutation_invariant_and_matches_a_hand_example():
    rng = np.random.default_rng(1)
    x, x_hat = rng.normal(size=(3, 6, 4)).astype("float32"), rng.normal(size=(3, 6, 4)).astype("float32")
    loss = losses.get_reconstruction("chamfer")
    base = loss.loss(tf.constant(x), tf.constant(x_hat)).numpy()
    shuffled = x_hat[:, rng.permutation(6)]
    np.testing.assert_allclose(loss.loss(tf.constant(x), tf.constant(shuffled)).numpy(), base, rtol=1e-6)
    a = tf.constant([[[0.0, 0.0], [1.0, 0.0]]])
    b = tf.constant([[[0.0, 1.0], [3.0, 0.0]]])
    # a→b: min(1, 9)=1, min(2, 4)=2 → mean 1.5;  b→a: min(1, 2)=1, min(9, 4)=4 → mean 2.5
    np.testing.assert_allclose(losses.chamfer_distance(a, b).numpy(), [4.0])


def test_masked_mse_ignores_padded_slots():
    rng = np.random.default_rng(2)
    x, out = rng.normal(size=(2, 5, 3)).astype("float32"), rng.normal(size=(2, 5, 3)).astype("float32")
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]], bool)
    mse = losses.get_reconstruction("mse")
    value = mse.loss(tf.constant(x), tf.constant(out), tf.constant(mask)).numpy()
    expected = [((x[i] - out[i]) ** 2)[mask[i]].mean() for i in range(2)]
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    out[~mask] = 99.0
    np.testing.assert_allclose(mse.loss(tf.constant(x), tf.constant(out), tf.constant(mask)).numpy(), expected, rtol=1e-6)


def test_feature_likelihoods_match_scipy():
    rng = np.random.default_rng(3)
    x = np.stack([rng.normal(size=40), rng.lognormal(size=40), rng.integers(0, 2, 40)], axis=-1).astype("float32")
    params = rng.normal(size=(40, 3, 2)).astype("float32") * 0.5
    loss = losses.get_reconstruction({"name": "likelihood", "features": ["gaussian", "lognormal", "bernoulli"]})
    nll = loss.loss(tf.constant(x), tf.constant(params.reshape(40, 6))).numpy()
    mu, sigma = params[..., 0], np.exp(params[..., 1])
    reference = -(stats.norm(mu[:, 0], sigma[:, 0]).logpdf(x[:, 0])
                  + stats.lognorm(s=sigma[:, 1], scale=np.exp(mu[:, 1])).logpdf(x[:, 1])
                  + stats.bernoulli(1 / (1 + np.exp(-mu[:, 2]))).logpmf(x[:, 2]))
    np.testing.assert_allclose(nll, reference, rtol=1e-4, atol=1e-5)
    with pytest.raises(KeyError, match="unknown feature likelihood 'poisson'"):
        losses.get_reconstruction({"name": "likelihood", "features": ["poisson"]})


def _vae_outputs(flow, events=4000):
    model = VAE((6,), latent_dim=3, network={"type": "dense", "hidden_units": [8]}, flow=flow)
    model.build()
    x = np.repeat(np.random.default_rng(4).normal(size=(1, 6)).astype("float32"), events, axis=0)
    return model, model(x)


def test_flow_kl_shifts_by_a_constant_log_det_and_identity_flow_matches_closed_form():
    model, y = _vae_outputs("realnvp")  # zero-initialised conditioner: the identity map, log det 0
    mc, closed = model.kl(y).numpy(), losses.gaussian_kl(y["mu"], y["log_var"]).numpy()
    assert np.abs(y["z"] - y["z0"]).max() == 0 and mc.std() > 0
    assert abs(mc.mean() - closed[0]) < 4 * mc.std() / np.sqrt(len(mc))
    shifted = dict(y, log_det=y["log_det"] + 0.75)
    np.testing.assert_allclose(model.kl(shifted).numpy(), mc - 0.75, rtol=1e-5, atol=1e-5)
    model.darkflow_compat = True  # the original code: closed form of z_0, flow terms ignored
    np.testing.assert_allclose(model.kl(shifted).numpy(), closed, rtol=1e-6)
