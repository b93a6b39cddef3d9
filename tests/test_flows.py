"""Every flow, on random inputs and perturbed weights, with and without context:
log_det equals log|det| of the autodiff Jacobian, inverse(forward(z)) == z where an inverse exists,
and a model holding the flow saves to .keras and loads back with identical outputs."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_anomaly import flows

DIM, CONTEXT, BATCH = 5, 3, 16
AMORTIZED = {"planar", "radial", "householder", "sylvester_orthogonal", "sylvester_householder",
             "sylvester_triangular", "convflow"}
SMALL = {"hidden_units": [16, 16]}
OPTIONS = {"nice": SMALL, "realnvp": SMALL, "spline_coupling": SMALL, "maf": SMALL, "iaf": SMALL,
           "spline_autoregressive": SMALL, "glow": SMALL, "ffjord": {"hidden_units": [16]},
           "sylvester_orthogonal": {"num_ortho": 3}, "sylvester_householder": {"num_householder": 3}}
CASES = [(name, ctx) for name in flows.available() for ctx in (False, True)]
# inverse(forward(z)) tolerance: float32 resolution, except where the inverse is itself numerical:
# the rational-quadratic inverse solves a quadratic in float32 (steep bins lose a digit) and FFJORD
# integrates the ODE backwards to the solver's rtol/atol (1e-5/1e-6 by default)
ROUND_TRIP_ATOL = {"spline_coupling": 2e-4, "spline_autoregressive": 2e-4, "ffjord": 1e-4}


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.normal(size=(BATCH, DIM)), tf.float32),
            tf.constant(rng.normal(size=(BATCH, CONTEXT)), tf.float32))


def make(name, with_context, seed=0):
    """Build the flow, run its data-dependent initialisation, then perturb every weight. Seeded: the
    initial weights must not depend on which tests ran before (the spline round trip's precision does)."""
    keras.utils.set_random_seed(seed)
    kwargs = dict(OPTIONS.get(name, {}))
    if with_context and name in AMORTIZED:
        kwargs["amortized"] = True
    layer = flows.get(name, **kwargs)
    z, c = inputs(seed)
    layer(z, context=c if with_context else None, training=True)
    rng = np.random.default_rng(seed + 100)
    for weight in layer.trainable_weights:
        weight.assign(weight + 0.3 * rng.normal(size=weight.shape).astype("float32"))
    return layer, z, (c if with_context else None)


def graph_if_ode(name, function):
    """``function`` as a graph for FFJORD, whose adaptive ODE solver runs op by op in eager mode (three
    to five times slower); as it is for every other flow."""
    return tf.function(function) if name == "ffjord" else function


@pytest.mark.parametrize("name,with_context", CASES)
def test_log_det_matches_autodiff_jacobian(name, with_context):
    layer, z, c = make(name, with_context)

    def forward_and_jacobian(z, c):
        with tf.GradientTape() as tape:
            tape.watch(z)
            y, log_det = layer(z, context=c)
        return y, log_det, tape.batch_jacobian(y, z, experimental_use_pfor=name != "ffjord")

    if name == "ffjord":  # each Jacobian row integrates the ODE again: a few events, the solver's loop as a graph
        z, c = z[:4], (None if c is None else c[:4])
        forward_and_jacobian = tf.function(forward_and_jacobian)
    y, log_det, jacobian = forward_and_jacobian(z, c)
    reference = tf.linalg.slogdet(tf.cast(jacobian, tf.float64))[1].numpy()
    assert log_det.shape == z.shape[:1] and np.isfinite(log_det.numpy()).all()
    np.testing.assert_allclose(log_det.numpy(), reference, rtol=1e-4, atol=1e-4)
    assert np.abs(y.numpy() - z.numpy()).max() > 1e-3 or name in ("actnorm",), "flow acts as the identity"


@pytest.mark.parametrize("name,with_context", CASES)
def test_inverse_round_trip(name, with_context):
    layer, z, c = make(name, with_context)
    y, log_det = graph_if_ode(name, layer)(z, context=c)
    if not layer.has_inverse:
        with pytest.raises(NotImplementedError):
            layer.inverse(y, context=c)
        return
    x, inverse_log_det = graph_if_ode(name, layer.inverse)(y, context=c)
    np.testing.assert_allclose(x.numpy(), z.numpy(), atol=ROUND_TRIP_ATOL.get(name, 1e-5), rtol=1e-5)
    np.testing.assert_allclose(inverse_log_det.numpy(), -log_det.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name,with_context", CASES)
def test_save_and_load_gives_identical_outputs(name, with_context, tmp_path):
    layer, z, c = make(name, with_context)
    z_in = keras.Input((DIM,))
    c_in = keras.Input((CONTEXT,)) if with_context else None
    y, log_det = layer(z_in, context=c_in)
    model = keras.Model([z_in, c_in] if with_context else z_in, [y, log_det])
    feed = [z, c] if with_context else z
    expected = graph_if_ode(name, model)(feed)
    model.save(tmp_path / "flow.keras")
    loaded = keras.models.load_model(tmp_path / "flow.keras")
    for a, b in zip(expected, graph_if_ode(name, loaded)(feed)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_registry_and_spec_parsing():
    assert {"planar", "radial", "householder", "nice", "realnvp", "maf", "iaf", "spline_coupling",
            "spline_autoregressive", "actnorm", "lu", "glow", "ffjord", "reverse", "permute",
            "sylvester_orthogonal", "sylvester_householder", "sylvester_triangular", "convflow"} <= set(flows.available())
    chain = flows.FlowChain("realnvp*3, reverse, maf")
    assert [s.flow_name for s in chain.steps] == ["realnvp"] * 3 + ["reverse", "maf"]
    assert [s.parity for s in chain.steps[:3]] == [0, 1, 0]
    chain = flows.FlowChain(["planar*2", {"name": "radial"}], step_kwargs={"amortized": True})
    assert all(step.amortized for step in chain.steps)
    with pytest.raises(KeyError, match="unknown flow 'banana'"):
        flows.FlowChain("banana*2")
    with pytest.raises(ValueError, match="amortized"):
        flows.get("planar", amortized=True)(tf.zeros((2, 3)))


def test_chain_log_det_is_the_sum_and_matches_its_bijector():
    chain = flows.FlowChain("planar*2, realnvp, reverse, maf", step_kwargs=SMALL)
    z, c = inputs(3)
    y, log_det = chain(z, context=c, training=True)
    total, x = 0.0, z
    for step in chain.steps:
        x, ld = step(x, context=c)
        total += ld
    np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-6)
    np.testing.assert_allclose(log_det.numpy(), total.numpy(), rtol=1e-5, atol=1e-5)
    bijector = chain.bijector(c)
    np.testing.assert_allclose(bijector.forward(z).numpy(), y.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(z, event_ndims=1).numpy(), log_det.numpy(),
                               rtol=1e-5, atol=1e-5)


def test_planar_and_radial_constraints_hold_after_training():
    z_in = keras.Input((2,))
    chain = flows.FlowChain("planar*3, radial*2")
    u, log_det = chain(z_in)
    model = keras.Model(z_in, [u, log_det])
    # push hard towards non-invertibility: maximise the log-det of a contraction-seeking loss
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss=[lambda t, p: tf.reduce_sum(p ** 2, -1),
                                                                lambda t, p: p])
    x = np.random.default_rng(0).normal(size=(512, 2)).astype("float32")
    model.fit(x, [x, np.zeros(512, "float32")], epochs=3, batch_size=64, verbose=0)
    for step in chain.steps:
        if step.flow_name == "planar":
            u_hat, w, _ = step.parameters_for()
            assert float(tf.reduce_sum(u_hat * w)) > -1.0
        else:
            _, alpha, beta = step.parameters_for()
            assert float(alpha) > 0 and float(beta) > -float(alpha)
    assert np.isfinite(model.predict(x, verbose=0)[1]).all()


def test_ffjord_hutchinson_trace_is_unbiased():
    """Above ``exact_trace_max_dim`` the log-det is Hutchinson's estimate: over many noise draws its
    mean must agree with the exact trace of the same flow (within 4 standard errors)."""
    dim, draws = 20, 256
    keras.utils.set_random_seed(0)
    stochastic = flows.get("ffjord", hidden_units=[16], seed=1)
    exact = flows.get("ffjord", hidden_units=[16], exact_trace_max_dim=dim)
    z = tf.repeat(tf.random.stateless_normal((1, dim), seed=(1, 2)), draws, axis=0)
    stochastic(z), exact(z)
    rng = np.random.default_rng(0)
    for weight in stochastic.trainable_weights:
        weight.assign(weight + 0.3 * rng.normal(size=weight.shape).astype("float32"))
    exact.set_weights(stochastic.get_weights())
    y, estimates = tf.function(stochastic)(z)  # the adaptive solver's loop as a graph, not op by op
    y_exact, reference = tf.function(exact)(z)
    # the two solves take different adaptive steps (the trace is part of the error control)
    np.testing.assert_allclose(y.numpy(), y_exact.numpy(), atol=1e-4)
    estimates = estimates.numpy()
    assert estimates.std() > 1e-3, "the estimator is not stochastic"
    assert abs(estimates.mean() - float(reference[0])) < 4 * estimates.std() / np.sqrt(draws)
    assert not np.allclose(stochastic(z)[1].numpy(), estimates), "fresh noise on every call"


def test_ffjord_hutchinson_noise_stream_survives_save_and_load(tmp_path):
    """The noise counter is a weight: a reloaded model draws the noise the original draws next."""
    z = np.random.default_rng(4).normal(size=(6, 5)).astype("float32")
    model = keras.Sequential([keras.Input((5,)), flows.get("ffjord", hidden_units=[8], exact_trace_max_dim=2, seed=3)])
    rng = np.random.default_rng(5)
    for weight in model.trainable_weights:  # away from the near-zero initial vector field
        weight.assign(weight + 0.3 * rng.normal(size=weight.shape).astype("float32"))
    call = tf.function(model)  # the solver's loop as a graph; the noise counter is still a weight it updates
    first, _ = call(z), call(z)
    model.save(tmp_path / "ffjord.keras")
    loaded = keras.models.load_model(tmp_path / "ffjord.keras")
    a, b = call(z)[1].numpy(), tf.function(loaded)(z)[1].numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(a, first[1].numpy()), "the third draw differs from the first"


TRAIN_CASES = [(name, False) for name in flows.available() if name not in ("reverse", "permute")] + \
              [(name, True) for name in sorted(AMORTIZED | {"iaf"})]


@pytest.mark.parametrize("name,with_context", TRAIN_CASES)
def test_flow_trains_inside_a_keras_model(name, with_context):
    """Maximum likelihood of data around +2 under the flow's pull-back of a unit Gaussian at −2:
    loss = E[½‖f(x) + 2‖² − log|det ∂f/∂x|] must fall under model.fit, with finite values throughout.
    (A reflection keeps ‖x‖ and the volume, so with a base at 0 a Householder step would have nothing to learn.)"""
    keras.utils.set_random_seed(0)
    kwargs = dict(OPTIONS.get(name, {}))
    if with_context and name in AMORTIZED:
        kwargs["amortized"] = True
    rng = np.random.default_rng(1)
    x = (2.0 + 0.5 * rng.normal(size=(256, DIM))).astype("float32")
    c = rng.normal(size=(256, CONTEXT)).astype("float32")
    x_in, c_in = keras.Input((DIM,)), keras.Input((CONTEXT,))
    y, log_det = flows.get(name, **kwargs)(x_in, context=c_in if with_context else None)
    model = keras.Model([x_in, c_in] if with_context else x_in, [y, log_det])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=[lambda _, p: 0.5 * tf.reduce_sum((p + 2.0) ** 2, axis=-1), lambda _, p: -p])
    feed, targets = ([x, c] if with_context else x), [x, np.zeros(256, "float32")]
    before = model.evaluate(feed, targets, verbose=0)[0]
    history = model.fit(feed, targets, epochs=3 if name == "ffjord" else 6, batch_size=64, verbose=0)
    after = model.evaluate(feed, targets, verbose=0)[0]
    assert np.isfinite(history.history["loss"]).all() and after < before - 0.5, (before, after)


def test_parameter_free_steps_have_no_weights():
    for name in ("reverse", "permute"):
        layer = flows.get(name)
        layer(tf.zeros((2, DIM)))
        assert not layer.trainable_weights
