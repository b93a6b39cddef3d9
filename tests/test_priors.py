"""Each prior: support, moments and radial law of its samples; log-density against scipy or by
integration; the registry and user distributions."""
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from tfp_anomaly import priors

N = 20000


def draw(name, dim, **kwargs):
    prior = priors.get_prior(name, dim, **kwargs)
    return prior, prior.sample(N, seed=(4, 2)).numpy()


def test_registry():
    assert set(priors.available()) >= {"gaussian", "uniform", "ball", "sphere", "ring", "mixture", "laplace",
                                        "student_t"}
    with pytest.raises(KeyError, match="unknown prior 'banana'"):
        priors.get_prior("banana", 3)
    user = tfp.distributions.MultivariateNormalDiag(tf.zeros(3))
    assert priors.get_prior(user, 3) is user
    with pytest.raises(ValueError, match="does not match"):
        priors.get_prior(user, 4)


def test_gaussian_uniform_laplace_student_moments_and_densities():
    _, x = draw("gaussian", 4, scale=2.0)
    np.testing.assert_allclose(x.std(0), 2.0, rtol=0.03)
    prior, x = draw("uniform", 4, low=-1.0, high=3.0)
    assert x.min() >= -1 and x.max() <= 3
    np.testing.assert_allclose(x.var(0), 16 / 12, rtol=0.05)
    np.testing.assert_allclose(prior.log_prob(x[:5]).numpy(), -4 * np.log(4.0), rtol=1e-6)
    prior, x = draw("laplace", 3, scale=0.5)
    np.testing.assert_allclose(prior.log_prob(x[:50]).numpy(), stats.laplace(0, 0.5).logpdf(x[:50]).sum(1), rtol=1e-5)
    prior, x = draw("student_t", 3, df=4.0)
    np.testing.assert_allclose(prior.log_prob(x[:50]).numpy(), stats.t(4.0).logpdf(x[:50]).sum(1), rtol=1e-5)


@pytest.mark.parametrize("dim", [2, 5])
def test_ball_is_uniform_in_the_ball(dim):
    prior, x = draw("ball", dim, radius=2.0)
    r = np.linalg.norm(x, axis=1)
    assert r.max() <= 2.0 + 1e-6
    # uniform in the ball  <=>  (r/R)^d ~ U(0, 1), and the direction is isotropic
    assert stats.kstest((r / 2.0) ** dim, "uniform").pvalue > 1e-3
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.05)
    volume = np.pi ** (dim / 2) * 2.0 ** dim / math.gamma(dim / 2 + 1)  # V_d(R) = π^{d/2} R^d / Γ(d/2 + 1)
    np.testing.assert_allclose(prior.log_prob(x[:10]).numpy(), -np.log(volume), rtol=1e-5)


def test_sphere_and_ring_radii_and_ring_density_integrates_to_one():
    prior, x = draw("sphere", 6, radius=3.0)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 3.0, rtol=1e-5)
    with pytest.raises(NotImplementedError, match="no density"):
        prior.log_prob(x[:2])
    prior, x = draw("ring", 2, radius=2.0, radial_noise=0.2)
    r = np.linalg.norm(x, axis=1)
    assert abs(r.mean() - 2.0) < 0.01 and abs(r.std() - 0.2) < 0.01
    edges = np.linspace(-3.5, 3.5, 351, dtype="float32")
    grid = np.stack(np.meshgrid(edges, edges), -1).reshape(-1, 2)
    total = float(tf.reduce_sum(tf.exp(prior.log_prob(grid)))) * (edges[1] - edges[0]) ** 2
    assert abs(total - 1.0) < 0.01


def test_mixture_modes_and_density():
    prior, x = draw("mixture", 3, radius=4.0, scale=0.3)
    nearest = np.abs(np.abs(x).max(1) - 4.0)
    assert np.mean(nearest < 1.2) > 0.99  # every sample sits at one of the ±4 e_i modes
    locs = np.concatenate([np.eye(3), -np.eye(3)]) * 4.0
    reference = np.log(np.mean([stats.multivariate_normal(m, 0.09).pdf(x[:20]) for m in locs], axis=0))
    np.testing.assert_allclose(prior.log_prob(x[:20]).numpy(), reference, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(priors.available()))
def test_every_prior_saves_as_its_class_and_parameters(name):
    """The saved form of a prior (what a SWAE with a user's distribution writes into its .keras file)
    rebuilds the same distribution: the same samples for a seed, the same log-density."""
    import json

    prior = priors.get_prior(name, 3)
    saved = json.loads(json.dumps(priors.serialize_distribution(prior)))
    back = priors.deserialize_distribution(saved)
    assert type(back) is type(prior) and back.event_shape == prior.event_shape
    x = prior.sample(50, seed=(1, 2))
    np.testing.assert_allclose(back.sample(50, seed=(1, 2)), x, rtol=1e-6)
    if priors.has_log_prob(prior):
        np.testing.assert_allclose(back.log_prob(x), prior.log_prob(x), rtol=1e-5)
    else:
        assert name == "sphere" and not priors.has_log_prob(back)


def test_a_users_own_distribution_class_saves_once_registered():
    tfd = tfp.distributions

    class Shifted(tfd.MultivariateNormalDiag):
        pass

    prior = Shifted(loc=tf.ones(2))
    with pytest.raises(TypeError, match="register it with tfp_anomaly.priors.DISTRIBUTIONS.register"):
        priors.serialize_distribution(prior)
    priors.DISTRIBUTIONS.register("tests.Shifted", Shifted, replace=True)
    back = priors.deserialize_distribution(priors.serialize_distribution(prior))
    assert type(back) is Shifted
    np.testing.assert_allclose(back.mean(), [1.0, 1.0])
