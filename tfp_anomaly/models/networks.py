"""Encoder and decoder networks, built from configuration on a known input shape.

* ``dense``: Flatten → [Dense → (BatchNorm) → activation → (Dropout)] × len(hidden_units).
* ``conv``: the DarkFlow ConvVAE preset: on the (slots, features)
  object matrix as a one-channel image, Conv2D 32 (3, 4), 16 (5, 1), 8 (7, 1), each with batch norm and
  ReLU, then Dense ``hidden`` (20); the decoder mirrors it with transposed convolutions.
* ``deepsets``, ``graph``: permutation-invariant encoders over the object list
  (:mod:`tfp_anomaly.models.sets`).

The encoder returns the hidden vector h (the context of amortized flows); the latent heads live in
the model. The decoder maps a latent z to (slots, features × params_per_feature).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Network:
    """A registered encoder/decoder pair. ``needs_blocks``: the encoder takes ``[x, mask]`` and the
    option ``blocks`` (rows per type block of the object grid), filled from the grid by
    :func:`tfp_anomaly.experiment.build_model`."""

    encoder: Callable
    decoder: Callable
    needs_blocks: bool = False


NETWORKS: dict[str, Network] = {}


def register(name, needs_blocks=False):
    """Decorator: register an ``(encoder, decoder)`` builder pair; ``needs_blocks``: the encoder also reads the slot mask."""
    def wrap(pair):
        NETWORKS[name] = Network(*pair, needs_blocks=needs_blocks)
        return pair
    return wrap


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class SeededDropout(keras.layers.Layer):
    """Dropout whose random stream is stateless, seeded by (seed, calls so far) with the counter a
    layer weight: unlike ``keras.layers.Dropout`` (whose generator state is not saved), a checkpointed
    model resumes the same masks, so an interrupted run ends at the weights of an uninterrupted one."""

    def __init__(self, rate, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = float(rate), int(seed)

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="calls")

    def call(self, x, training=None):
        if not training or self.rate <= 0:
            return x
        count = self.calls.assign_add(1)
        seed = tf.cast(tf.stack([tf.constant(self.seed, tf.int64), count]) % (2 ** 31 - 1), tf.int32)
        keep = tf.random.stateless_uniform(tf.shape(x), seed) >= self.rate
        return tf.where(keep, x / (1.0 - self.rate), tf.zeros_like(x))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def _block(units, activation, batch_norm, dropout, seed):
    layers = [keras.layers.Dense(units)]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Activation(activation))
    if dropout:
        layers.append(SeededDropout(dropout, seed=seed))  # one stream per layer
    return layers


def dense_encoder(input_shape, hidden_units=(64, 32), activation="relu", batch_norm=False, dropout=0.0, **_):
    layers = [keras.layers.Flatten()]
    for k, units in enumerate(hidden_units):
        layers += _block(units, activation, batch_norm, dropout, seed=k + 1)
    return keras.Sequential([keras.Input(tuple(input_shape))] + layers, name="encoder")


def dense_decoder(input_shape, latent_dim, params_per_feature=1, hidden_units=(64, 32), activation="relu",
                  batch_norm=False, dropout=0.0, **_):
    layers = []
    for k, units in enumerate(reversed(list(hidden_units))):
        layers += _block(units, activation, batch_norm, dropout, seed=1000 + k)
    out_shape = tuple(input_shape[:-1]) + (input_shape[-1] * params_per_feature,)
    layers += [keras.layers.Dense(math.prod(out_shape)), keras.layers.Reshape(out_shape)]
    return keras.Sequential([keras.Input((latent_dim,))] + layers, name="decoder")


CONV = [(32, (3, 4)), (16, (5, 1)), (8, (7, 1))]


def conv_encoder(input_shape, filters=CONV, hidden=20, activation="relu", batch_norm=True, **_):
    if len(input_shape) != 2:
        raise ValueError(f"the conv network needs a (slots, features) input, got {tuple(input_shape)}")
    slots, features = input_shape
    layers = [keras.layers.Reshape((slots, features, 1))]
    for n, kernel in filters:
        layers.append(keras.layers.Conv2D(n, tuple(kernel)))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization())
        layers.append(keras.layers.Activation(activation))
    layers += [keras.layers.Flatten(), keras.layers.Dense(hidden), keras.layers.Activation(activation)]
    return keras.Sequential([keras.Input(tuple(input_shape))] + layers, name="encoder")


def conv_decoder(input_shape, latent_dim, params_per_feature=1, filters=CONV, hidden=20, activation="relu",
                 batch_norm=True, **_):
    slots, features = input_shape
    height, width = slots, features
    for _, kernel in filters:  # the encoder's feature-map size after its 'valid' convolutions
        height, width = height - kernel[0] + 1, width - kernel[1] + 1
    if height < 1 or width < 1:
        raise ValueError(f"the conv preset needs a larger object matrix than {tuple(input_shape)}")
    last = filters[-1][0]
    layers = [keras.layers.Dense(hidden), keras.layers.Activation(activation),
              keras.layers.Dense(height * width * last), keras.layers.Activation(activation),
              keras.layers.Reshape((height, width, last))]
    outs = [n for n, _ in filters[:-1]][::-1] + [params_per_feature]
    for k, ((_, kernel), n) in enumerate(zip(filters[::-1], outs)):
        layers.append(keras.layers.Conv2DTranspose(n, tuple(kernel)))
        if k < len(filters) - 1:
            if batch_norm:
                layers.append(keras.layers.BatchNormalization())
            layers.append(keras.layers.Activation(activation))
    # (slots, features, k) -> (slots, features·k) with the k parameters of a feature adjacent
    layers.append(keras.layers.Reshape((slots, features * params_per_feature)))
    return keras.Sequential([keras.Input((latent_dim,))] + layers, name="decoder")


register("dense")((dense_encoder, dense_decoder))
register("conv")((conv_encoder, conv_decoder))


def build_networks(network: dict, input_shape, latent_dim, params_per_feature=1):
    """(encoder, decoder) for ``network = {"type": <a name of NETWORKS>, **options}``."""
    options = dict(network)
    entry = network_entry(options.pop("type", "dense"))
    return (entry.encoder(input_shape, **options),
            entry.decoder(input_shape, latent_dim, params_per_feature, **options))


def network_entry(kind: str) -> Network:
    if kind not in NETWORKS:
        raise KeyError(f"unknown network type {kind!r}; available: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[kind]
