"""The conv decoder's transposed convolution computed as a matrix product
(:mod:`tfp_anomaly.models.convolutions`) is Keras's layer: the same outputs and gradients for the same
weights, eager, in a graph and under XLA; a model saved with Keras's own layer loads into it and scores
as before. The random draws by name (:mod:`tfp_anomaly.seeds`) are TensorFlow's default draws."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_anomaly import seeds
from tfp_anomaly.models import VAE, convolutions, networks

# (input shape (H, W, C), filters, kernel): every one the matmul case
TRANSPOSED = [((30, 1, 32), 1, (3, 4)), ((7, 1, 3), 2, (2, 3)), ((5, 1, 4), 3, (1, 2))]
# Keras's path: a one-column kernel, a wider input, strides, same padding
FALLBACK_TRANSPOSED = [((7, 1, 3), 2, (2, 1), {}), ((7, 2, 3), 2, (2, 3), {}), ((7, 1, 3), 2, (2, 3), {"strides": 2}),
                       ((7, 1, 3), 2, (2, 3), {"padding": "same"})]


def _pair(ours, theirs, shape, filters, kernel, options=None, activation="relu"):
    """(our layer, Keras's layer) built on ``shape`` with the same random weights."""
    rng = np.random.default_rng(0)
    a, b = (cls(filters, kernel, activation=activation, **(options or {})) for cls in (ours, theirs))
    for layer in (a, b):
        layer.build((None,) + shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in b.get_weights()]
    a.set_weights(weights)
    b.set_weights(weights)
    return a, b


def _compare(a, b, shape, matmul):
    assert a._as_matmul((None,) + shape) is matmul
    x = tf.constant(np.random.default_rng(1).normal(size=(5,) + shape).astype("float32"))
    expected = b(x).numpy()
    for mode in ("eager", "graph", "xla"):
        call = a if mode == "eager" else tf.function(a, jit_compile=mode == "xla")
        np.testing.assert_allclose(call(x).numpy(), expected, rtol=1e-5, atol=1e-5, err_msg=mode)
    weights = tf.constant(np.random.default_rng(2).normal(size=expected.shape).astype("float32"))
    grads = []
    for layer in (a, b):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) * weights)
        grads.append([g.numpy() for g in tape.gradient(loss, [x] + layer.trainable_weights)])
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, filters, kernel", TRANSPOSED)
def test_a_single_column_transposed_convolution_is_keras_conv2d_transpose(shape, filters, kernel):
    _compare(*_pair(convolutions.Conv2DTranspose, keras.layers.Conv2DTranspose, shape, filters, kernel), shape,
             matmul=True)


@pytest.mark.parametrize("shape, filters, kernel, options", FALLBACK_TRANSPOSED)
def test_other_transposed_convolutions_are_keras_own(shape, filters, kernel, options):
    _compare(*_pair(convolutions.Conv2DTranspose, keras.layers.Conv2DTranspose, shape, filters, kernel, options),
             shape, matmul=False)


def test_the_conv_network_uses_the_matmul_cases():
    encoder, decoder = networks.build_networks({"type": "conv"}, (32, 4), latent_dim=15)
    transposed = [layer for layer in decoder.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [type(layer) for layer in transposed] == [convolutions.Conv2DTranspose] * 3
    assert [layer._as_matmul(tuple(layer.input.shape)) for layer in transposed] == [False, False, True]


def test_a_model_saved_with_keras_layers_loads_and_scores_the_same(tmp_path, monkeypatch):
    x = np.abs(np.random.default_rng(2).normal(size=(64, 32, 4))).astype("float32")
    inputs = {"x": x, "mask": np.ones((64, 32), bool)}
    with monkeypatch.context() as patch:  # the network as built before: Keras's own layers
        patch.setattr(networks, "Conv2DTranspose", keras.layers.Conv2DTranspose)
        old = VAE((32, 4), latent_dim=15, network={"type": "conv"}, iwae_samples=2)
        old.build()
        assert type(old.decoder.layers[-2]) is keras.layers.Conv2DTranspose
        seed = tf.constant([3, 4])
        expected = {k: v.numpy() for k, v in old.score_terms(inputs, seed).items()}
        old.save(tmp_path / "old.keras")
    new = keras.saving.load_model(tmp_path / "old.keras")
    assert type(new.decoder.layers[-2]) is convolutions.Conv2DTranspose
    got = new.score_terms(inputs, seed)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name].numpy(), value, rtol=1e-4, atol=1e-5, err_msg=name)


# (seed, XLA): the seeds next_seed gives are non-negative (< 2³¹ − 1); a negative one only without XLA,
# where the two XLA paths map it differently (tfp_anomaly.seeds)
DRAWS = [([7, 11], False), ([7, 11], True), ([0, 2 ** 31 - 2], True), ([2 ** 31 - 2, 5], True), ([-5, 3], False),
         ([3, -2 ** 31], False)]


@pytest.mark.parametrize("seed, jit", DRAWS)
def test_draws_by_name_are_tensorflow_default_draws(seed, jit):
    seed = tf.constant(seed)

    def both():
        return (seeds.normal((64, 15), seed), tf.random.stateless_normal((64, 15), seed),
                seeds.uniform((3, 5), seed), tf.random.stateless_uniform((3, 5), seed),
                seeds.normal((4,), seed, dtype=tf.float64), tf.random.stateless_normal((4,), seed, dtype=tf.float64))

    ours_normal, default_normal, ours_uniform, default_uniform, ours64, default64 = \
        tf.function(both, jit_compile=jit)()
    np.testing.assert_array_equal(ours_normal.numpy(), default_normal.numpy())
    np.testing.assert_array_equal(ours_uniform.numpy(), default_uniform.numpy())
    np.testing.assert_array_equal(ours64.numpy(), default64.numpy())
