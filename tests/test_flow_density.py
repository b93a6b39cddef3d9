"""Density estimation with flows on a 2-D ring of Gaussians made here: the flows that model
densities (RealNVP, MAF, spline coupling and autoregressive) must beat a fitted Gaussian by at least
0.5 nats of test log-likelihood; the density is normalised, samples follow it, and it saves/loads."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_anomaly import flows

SMALL = {"hidden_units": [32, 32]}


def ring_of_gaussians(n, seed, components=8, radius=2.0, std=0.2):
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * rng.integers(components, size=n) / components
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centres + std * rng.normal(size=(n, 2))).astype("float32")


def gaussian_test_log_likelihood(train, test):
    """Maximum-likelihood Gaussian fitted on train, mean log-density on test (numpy only)."""
    mean, cov = train.mean(0), np.cov(train.T, bias=True)
    diff = test - mean
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    return float(np.mean(-0.5 * maha - 0.5 * np.log(np.linalg.det(2 * np.pi * cov))))


def fit(spec, train, epochs):
    keras.utils.set_random_seed(1)
    model = flows.FlowDensity(spec, step_kwargs=SMALL)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(train, epochs=epochs, batch_size=128, verbose=0)
    return model


@pytest.fixture(scope="module")
def data():
    return ring_of_gaussians(3000, seed=0), ring_of_gaussians(2000, seed=1)


@pytest.mark.parametrize("spec,epochs", [
    ("realnvp*6", 20),  # 12 epochs leave one seed in four at +0.3 nats
    ("maf, reverse, maf, reverse, maf, reverse, maf", 12),
    ("spline_coupling*2", 8),
    ("spline_autoregressive, reverse, spline_autoregressive", 8),
])
def test_flow_beats_a_fitted_gaussian_by_half_a_nat(data, spec, epochs):
    train, test = data
    baseline = gaussian_test_log_likelihood(train, test)
    model = fit(spec, train, epochs)
    log_likelihood = float(tf.reduce_mean(model(test)))
    assert log_likelihood > baseline + 0.5, (spec, log_likelihood, baseline)


def test_density_is_normalised_sampled_and_saved(data, tmp_path):
    train, _ = data
    model = fit("realnvp*4", train, 4)
    # ∫ p dx over a grid that holds the mass: 1 to quadrature accuracy (checks the log-det sign)
    edges = np.linspace(-5, 5, 301, dtype="float32")
    cell = (edges[1] - edges[0]) ** 2
    grid = np.stack(np.meshgrid(edges, edges), -1).reshape(-1, 2)
    total = float(tf.reduce_sum(tf.exp(model(grid)))) * cell
    assert abs(total - 1.0) < 0.02, total
    samples = model.sample(4000, seed=3).numpy()
    radius = np.linalg.norm(samples, axis=1)
    assert samples.shape == (4000, 2) and abs(np.median(radius) - 2.0) < 0.3
    model.save(tmp_path / "density.keras")
    loaded = keras.models.load_model(tmp_path / "density.keras")
    np.testing.assert_array_equal(model(train[:64]).numpy(), loaded(train[:64]).numpy())


def test_density_with_context_and_refusal_without_inverse():
    model = flows.FlowDensity("realnvp*2", step_kwargs=SMALL)
    x, c = tf.random.normal((8, 3)), tf.random.normal((8, 2))
    # zero-initialised conditioners: the flow starts as the identity, so log p(x | c) = log N(x; 0, I)
    standard_normal = -0.5 * tf.reduce_sum(x ** 2, axis=-1) - 1.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(model(x, context=c).numpy(), standard_normal.numpy(), rtol=1e-5, atol=1e-5)
    model.flow.steps[0].net.out.kernel.assign(tf.random.normal((32, 2 * 2), stddev=0.5))
    assert not np.allclose(model(x, context=c).numpy(), model(x, context=c + 1.0).numpy()), "context ignored"
    with pytest.raises(ValueError, match="sylvester_orthogonal has no inverse"):
        flows.FlowDensity("sylvester_orthogonal")


def test_example_reuse_bijectors_trains_saves_and_beats_a_gaussian(tmp_path, capsys):
    import importlib.util
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "reuse_bijectors.py"
    spec = importlib.util.spec_from_file_location("reuse_bijectors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--epochs", "10", "--events", "2000", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    flow, gaussian, reloaded = (float(v) for v in re.findall(r"(-?\d+\.\d+) nats/event", out))
    assert flow > gaussian + 0.5 and reloaded == flow, out
    assert (tmp_path / "moons_density.keras").exists()
