"""The PyTorch peer of the training-speed benchmark (benchmarks/peers/darkflow_torch.py): its flows'
log-determinants are the Jacobians', the IAF inverts and is triangular, every peer has exactly the
trainable parameters of our Keras model of benchmarks/train_speed.py, a training step lowers the loss,
and the timing functions run. Skipped without the ``peers`` extra (PyTorch)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmarks import each other as top-level modules
try:
    P = importlib.import_module("peers").darkflow()
finally:
    sys.path.remove(str(BENCHMARKS))

DIM, CONTEXT, EVENTS = P.LATENT, P.HIDDEN, 3


@pytest.fixture(autouse=True)
def one_thread():
    """PyTorch on one thread here: `make test` runs two workers on two cores, and OpenMP threads that
    compete for a core busy-wait (a training step of 64 events took seconds instead of milliseconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

#: flow steps, with the options of the benchmark's chains
STEPS = {"planar": P.Planar, "householder_sylvester": lambda d, c: P.HouseholderSylvester(d, c, num_householder=8),
         "iaf": lambda d, c: P.IAF(d, c, hidden_units=(64, 64))}


def _spread(module: torch.nn.Module, std: float = 0.3, seed: int = 1) -> torch.nn.Module:
    """Float64, every parameter redrawn from N(0, std²): away from the near-identity initialisation,
    so that the Jacobian has structure to get wrong."""
    torch.manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(std=std)
    return module


def _events(seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(EVENTS, DIM, generator=g, dtype=torch.float64),
            torch.randn(EVENTS, CONTEXT, generator=g, dtype=torch.float64))


def _jacobian(flow, z, h, i):
    return torch.autograd.functional.jacobian(lambda zi: flow(zi[None], h[i:i + 1])[0][0], z[i])


@pytest.mark.parametrize("name", sorted(STEPS))
def test_a_flow_steps_log_det_is_the_log_abs_det_of_its_jacobian(name):
    step = _spread(STEPS[name](DIM, CONTEXT))
    z, h = _events()
    _, log_det = step(z, h)
    for i in range(EVENTS):
        sign, logabs = torch.linalg.slogdet(_jacobian(step, z, h, i))
        assert sign != 0 and torch.allclose(log_det[i], logabs, atol=1e-9), (name, i)


@pytest.mark.parametrize("name", ["planar", "sylvester", "iaf"])
def test_a_peer_posterior_chain_sums_the_log_dets_of_its_steps(name):
    model = P.ConvVAE(P.fit_scaler(np.ones((1, 32, 4)), np.ones((1, 32))), P.PEERS[name].steps)
    flow = _spread(model, std=0.2)
    z, h = _events(3)
    _, log_det = flow.push(z, h)
    for i in range(EVENTS):
        jacobian = torch.autograd.functional.jacobian(lambda zi: flow.push(zi[None], h[i:i + 1])[0][0], z[i])
        assert torch.allclose(log_det[i], torch.linalg.slogdet(jacobian)[1], atol=1e-8), (name, i)


def test_iaf_is_autoregressive_and_its_inverse_undoes_it():
    step = _spread(P.IAF(DIM, CONTEXT))
    z, h = _events(4)
    y, _ = step(z, h)
    assert torch.allclose(step.inverse(y, h), z, atol=1e-10)
    jacobian = _jacobian(step, z, h, 0)
    assert torch.count_nonzero(torch.triu(jacobian, 1)) == 0  # y_i depends on z_≤i only
    assert torch.all(torch.diagonal(jacobian) != 0)


def test_sylvester_q_is_orthogonal_and_the_triangular_factors_are_bounded():
    step = _spread(P.HouseholderSylvester(DIM, CONTEXT, num_householder=8), std=1.0)
    q, r, r_tilde, _ = step.parameters_for(_events(5)[1])
    eye = torch.eye(DIM, dtype=torch.float64)
    assert torch.allclose(q @ q.transpose(1, 2), eye.expand_as(q), atol=1e-12)
    for m in (r, r_tilde):
        assert torch.count_nonzero(torch.tril(m, -1)) == 0
        assert torch.all(torch.diagonal(m, dim1=-2, dim2=-1).abs() < 1)


def test_planar_u_hat_keeps_the_step_invertible():
    step = _spread(P.Planar(DIM, CONTEXT), std=3.0)
    u_hat, w, _ = step.parameters_for(_events(6)[1])
    assert torch.all((w * u_hat).sum(-1) > -1)


@pytest.fixture
def train_speed(monkeypatch):
    """benchmarks/train_speed.py as a module (its MODELS: the options our models are benchmarked with)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("train_speed")


def _keras_trainable(train_speed, options: dict, scaler: dict) -> int:
    from tfp_anomaly.models import VAE

    options = dict(options)
    cls = options.pop("cls")
    keras_model = cls((32, 4), latent_dim=15, network=train_speed.CONV, scaler=scaler,
                      **train_speed.model_options(cls, options))
    keras_model.build()
    assert cls is VAE
    return sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)


def test_every_peer_has_the_trainable_parameters_of_our_keras_model(train_speed):
    from tfp_anomaly.data import get_scaler

    x = np.abs(np.random.default_rng(0).normal(size=(16, 32, 4))).astype("float32")
    scaler = get_scaler("standard", log_columns=[0, 1]).fit(x, np.ones((16, 32), bool)).get_config()
    with_peer = {key: model for key, model in train_speed.MODELS.items() if model.peer}
    assert {model.peer for model in with_peer.values()} == set(P.PEERS)
    for key, model in with_peer.items():
        ours = _keras_trainable(train_speed, model.options, scaler)
        theirs = P.trainable_parameters(P.build(model.peer, scaler))
        assert theirs == ours, f"{key}: ours {ours:,}, PyTorch {theirs:,}"


def test_the_peer_scales_as_our_scaler_layer():
    from tfp_anomaly.data import get_scaler

    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=(20, 32, 4))).astype("float32")
    mask = rng.random((20, 32)) < 0.6
    x[~mask] = 0.0
    ours = get_scaler("standard", log_columns=[0, 1]).fit(x, mask)
    peer = P.fit_scaler(x, mask)
    np.testing.assert_allclose(peer["center"], ours.center_)
    np.testing.assert_allclose(peer["scale"], ours.scale_)
    scaled = P.Scaler(peer["center"], peer["scale"])(torch.from_numpy(x), torch.from_numpy(mask.astype("float32")))
    np.testing.assert_allclose(scaled.numpy(), ours.transform(x, mask), atol=1e-5)


@pytest.mark.parametrize("name", sorted(P.PEERS))
def test_a_training_step_lowers_the_loss_of_a_fixed_batch(name):
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(64, 32, 4))).astype("float32")
    x_t, mask_t = P._tensors(x, None)
    model = P.build(name, P.fit_scaler(x, np.ones((64, 32)))).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, **P.ADAM)

    def loss():
        torch.manual_seed(7)  # the same posterior draw ε before and after the step
        return model.loss(x_t, mask_t)

    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    assert loss().item() < before.item()


def test_the_timing_functions_measure_events_per_second():
    x = np.abs(np.random.default_rng(0).normal(size=(96, 32, 4))).astype("float32")
    assert 0 < P.train_events_per_second("planar", x, batch=32, epochs=2, threads=1) < np.inf
    for encoder_only in (True, False):
        assert P.score_events_per_second("planar", x, 32, encoder_only, seconds=0.01, threads=1,
                                         reconstruction="gaussian", iwae_samples=2) > 0
    with pytest.raises(ValueError, match="at least 2 epochs"):
        P.train_events_per_second("convvae", x, 32, 1, 1)


def test_the_peer_gives_every_score_term_of_our_vae(train_speed):
    import tensorflow as tf

    from tfp_anomaly.models import VAE

    x = np.abs(np.random.default_rng(0).normal(size=(4, 32, 4))).astype("float32")
    mask = np.ones((4, 32), bool)
    scaler = P.fit_scaler(x, mask)
    ours = VAE((32, 4), latent_dim=15, network=train_speed.CONV, flow="planar*6", flow_kwargs={"amortized": True},
               scaler={"name": "standard", "per_slot": False, **scaler}, iwae_samples=2)
    ours.build()
    keras_terms = ours.score_terms({"x": x, "mask": mask}, tf.constant([0, 0]))
    with torch.inference_mode():
        peer_terms = P.build("planar", scaler, "gaussian", iwae_samples=2).eval().score_terms(*P._tensors(x, mask))
    assert set(peer_terms) == set(keras_terms)
    assert all(tuple(peer_terms[k].shape) == tuple(keras_terms[k].shape) for k in peer_terms)
