"""Encoder and decoder networks, built from configuration on a known input shape.

* ``dense``: Flatten → [Dense → (BatchNorm) → activation → (Dropout)] × len(hidden_units).
* ``conv``: the DarkFlow ConvVAE preset: on the (slots, features)
  object matrix as a one-channel image, Conv2D 32 (3, 4), 16 (5, 1), 8 (7, 1), each with batch norm and
  ReLU, then Dense ``hidden`` (20); the decoder mirrors it with transposed convolutions.
* ``deepsets``, ``graph``: permutation-invariant encoders over the object list
  (:mod:`tfp_anomaly.models.sets`).

The encoder returns the hidden vector h (the context of amortized flows); the latent heads live in
the model. The decoder maps a latent z to (slots, features × params_per_feature).

The options of ``model.network`` are the named parameters of a type's two builders
(:func:`network_options`); :func:`build_networks` passes each builder the ones it takes and refuses
an option neither takes, so a misspelt option is an error, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Callable

import keras
import tensorflow as tf

from ..config import ConfigError
from ..registry import Registry
from ..seeds import draw_counter, next_seed, uniform
from .convolutions import Conv2DTranspose

#: the arguments :func:`build_networks` fills itself: not options of ``model.network``
FILLED = ("input_shape", "latent_dim", "params_per_feature")


def _keywords(builder: Callable) -> set[str]:
    """The option names of a builder: its named parameters, less :data:`FILLED`."""
    parameters = inspect.signature(builder).parameters.values()
    if any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters):
        raise TypeError(f"network builder {getattr(builder, '__name__', builder)!r} takes *args or **kwargs: "
                        "name its options, so that a misspelt one is an error")
    return {p.name for p in parameters} - set(FILLED)


@dataclasses.dataclass(frozen=True)
class Network:
    """A registered encoder/decoder pair (:data:`NETWORKS`).

    The options of ``model.network`` are the named parameters of the two builders (less
    :data:`FILLED`); :func:`build_networks` passes each builder only the options it takes.

    Args:
        encoder: ``encoder(input_shape, **options)`` → a Keras model of the scaled input, (batch,
            *input_shape), to the hidden vector h, (batch, H).
        decoder: ``decoder(input_shape, latent_dim, params_per_feature, **options)`` → a Keras model of
            z, (batch, latent_dim), to (batch, *input_shape[:-1], input_shape[-1] · params_per_feature).
        needs_blocks: the encoder takes ``[x, mask]`` (mask (batch, slots)) and the option ``blocks``
            (rows per type block of the object grid), filled from the grid by
            :func:`tfp_anomaly.experiment.build_model`.
    """

    encoder: Callable
    decoder: Callable
    needs_blocks: bool = False

    @property
    def encoder_options(self) -> set[str]:
        """The options the encoder takes."""
        return _keywords(self.encoder)

    @property
    def decoder_options(self) -> set[str]:
        """The options the decoder takes."""
        return _keywords(self.decoder)

    @property
    def options(self) -> set[str]:
        """The options of the pair: those of the encoder and those of the decoder."""
        return self.encoder_options | self.decoder_options


def _checked_network(name: str, network: Network) -> Network:
    """Refuse, when registered, a builder whose options cannot be checked (one with ``**kwargs``)."""
    for builder in (network.encoder, network.decoder):
        _keywords(builder)
    return network


#: ``model.network.type`` → :class:`Network`; ``NETWORKS.register("name", Network(encoder, decoder))`` adds one
NETWORKS = Registry("network type", on_register=_checked_network)


def network_entry(kind: str) -> Network:
    """The registered :class:`Network` of ``kind`` (``model.network.type``)."""
    return NETWORKS.lookup(kind, "model.network")


def network_options(kind: str) -> set[str]:
    """The options ``model.network`` may set for network type ``kind`` (``type`` aside)."""
    return network_entry(kind).options


def legacy_network(network: dict | None) -> dict | None:
    """A ``model.network`` saved by release 0, whose builders ignored the options they did not take
    (a ``hidden`` left over from a conv base in a dense network): less those options, the network it
    built. For loading saved models only; :func:`build_networks` refuses such options."""
    if not network:
        return network
    known = network_options(network.get("type", "dense")) | {"type"}
    return {k: v for k, v in network.items() if k in known}


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class SeededDropout(keras.layers.Layer):
    r"""Inverted dropout whose random stream is stateless and saved with the layer.

    In training, with keep mask b_i = [u_i ≥ rate], u ~ Uniform[0, 1) drawn by
    ``tf.random.stateless_uniform`` with the seed (seed, n) mod (2³¹ − 1) of the n-th call
    (:func:`tfp_anomaly.seeds.next_seed`),

        y_i = b_i x_i / (1 − rate);

    at inference, or with rate 0, y = x. The call counter n is the layer's int64 weight ``calls``:
    unlike ``keras.layers.Dropout`` (whose generator state is not saved), a checkpointed model resumes
    the same masks, so an interrupted run ends at the weights of an uninterrupted one.

    Args:
        rate: the probability of dropping a unit, in [0, 1).
        seed: the integer seed of the stream (one per layer).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ...).

    Shapes:
        x: any shape; y: the shape of x.

    References:
        Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014, "Dropout: A Simple Way to
        Prevent Neural Networks from Overfitting", JMLR 15.
    """

    def __init__(self, rate, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = float(rate), int(seed)

    def build(self, input_shape):
        self.calls = draw_counter(self, "calls")

    def call(self, x, training=None):
        if not training or self.rate <= 0:
            return x
        keep = uniform(tf.shape(x), next_seed(self.seed, self.calls)) >= self.rate
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


def dense_encoder(input_shape, hidden_units=(64, 32), activation="relu", batch_norm=False, dropout=0.0):
    """Flatten → [Dense → (BatchNorm) → activation → (SeededDropout)] per width of ``hidden_units``:
    (batch, *input_shape) → (batch, hidden_units[-1]). Dropout layer k (from 0) has seed k + 1."""
    layers = [keras.layers.Flatten()]
    for k, units in enumerate(hidden_units):
        layers += _block(units, activation, batch_norm, dropout, seed=k + 1)
    return keras.Sequential([keras.Input(tuple(input_shape))] + layers, name="encoder")


def dense_decoder(input_shape, latent_dim, params_per_feature=1, hidden_units=(64, 32), activation="relu",
                  batch_norm=False, dropout=0.0):
    """The dense encoder's blocks in reverse width order, then Dense and Reshape: (batch, latent_dim) →
    (batch, *input_shape[:-1], input_shape[-1] · params_per_feature). Dropout layer k has seed 1000 + k."""
    layers = []
    for k, units in enumerate(reversed(list(hidden_units))):
        layers += _block(units, activation, batch_norm, dropout, seed=1000 + k)
    out_shape = tuple(input_shape[:-1]) + (input_shape[-1] * params_per_feature,)
    layers += [keras.layers.Dense(math.prod(out_shape)), keras.layers.Reshape(out_shape)]
    return keras.Sequential([keras.Input((latent_dim,))] + layers, name="decoder")


CONV = [(32, (3, 4)), (16, (5, 1)), (8, (7, 1))]


def conv_encoder(input_shape, filters=CONV, hidden=20, activation="relu", batch_norm=True):
    """The (slots, features) matrix as a one-channel image → [Conv2D (valid) → (BatchNorm) → activation]
    per ``(filters, kernel)`` of ``filters`` → Flatten → Dense ``hidden`` → activation: (batch, hidden)."""
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
                 batch_norm=True):
    """The conv encoder mirrored: Dense ``hidden`` and Dense onto the encoder's last feature map, then
    Conv2DTranspose in reverse order, the last with ``params_per_feature`` channels: (batch, latent_dim)
    → (batch, slots, features · params_per_feature), the parameters of a feature adjacent. The transposed
    convolutions are :class:`tfp_anomaly.models.convolutions.Conv2DTranspose` (Keras's layer; the
    output layer's single column is widened by one matmul, not XLA's slow convolution)."""
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
        layers.append(Conv2DTranspose(n, tuple(kernel)))
        if k < len(filters) - 1:
            if batch_norm:
                layers.append(keras.layers.BatchNormalization())
            layers.append(keras.layers.Activation(activation))
    # (slots, features, k) -> (slots, features·k) with the k parameters of a feature adjacent
    layers.append(keras.layers.Reshape((slots, features * params_per_feature)))
    return keras.Sequential([keras.Input((latent_dim,))] + layers, name="decoder")


NETWORKS.register("dense", Network(dense_encoder, dense_decoder))
NETWORKS.register("conv", Network(conv_encoder, conv_decoder))


def check_network(network: dict) -> Network:
    """The registered :class:`Network` of ``network = {"type": ..., **options}``, after checking that
    every option is one of :func:`network_options`; otherwise a :class:`tfp_anomaly.config.ConfigError`
    naming the option and listing the known ones."""
    options = dict(network)
    kind = options.pop("type", "dense")
    entry = network_entry(kind)
    known = entry.options
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"model.network: unknown option {unknown[0]!r} for network type {kind!r}; "
                          f"options: {', '.join(sorted(known))}")
    return entry


def build_networks(network: dict, input_shape, latent_dim, params_per_feature=1):
    """(encoder, decoder) for ``network = {"type": <a name of NETWORKS>, **options}`` (checked by
    :func:`check_network`); each builder gets the options it takes."""
    entry = check_network(network)
    options = {k: v for k, v in network.items() if k != "type"}
    encoder_options, decoder_options = entry.encoder_options, entry.decoder_options
    return (entry.encoder(input_shape, **{k: v for k, v in options.items() if k in encoder_options}),
            entry.decoder(input_shape, latent_dim, params_per_feature,
                          **{k: v for k, v in options.items() if k in decoder_options}))
