"""Conditioner networks (Keras 3): a plain MLP for couplings and MADE for autoregressive flows."""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="tfp_anomaly.flows")
class MLP(keras.layers.Layer):
    """Dense network ``x -> out_units``, the conditioner of the coupling flows and FFJORD.

    Hidden ``Dense`` layers of ``hidden_units`` with ``activation``, then a linear output layer whose
    kernel starts at zero, so a flow it conditions starts as (or near) the identity, a standard trick
    for stable training of deep flows.

    Shapes: x: (batch, in_dim) → (batch, out_units).

    Args:
        hidden_units: widths of the hidden layers.
        out_units: width of the output.
        activation: hidden activation.
        **kwargs: ``keras.layers.Layer`` arguments.
    """

    def __init__(self, hidden_units=(64, 64), out_units=1, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        self.out_units = int(out_units)
        self.activation = activation
        self.hidden = [keras.layers.Dense(u, activation=activation) for u in self.hidden_units]
        self.out = keras.layers.Dense(self.out_units, kernel_initializer="zeros")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden + [self.out]:
            layer.build(shape)
            shape = shape[:-1] + (layer.units,)

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.out(x)

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "out_units": self.out_units,
                "activation": self.activation}


def made_masks(dim: int, hidden_units, params: int):
    """Masks of MADE (Germain et al. 2015, arXiv:1502.03509) with left-to-right input order.

    Input i has degree i+1; hidden units cycle through degrees 1..dim-1; output (i, p) has degree
    i+1 and may see hidden units of degree <= i, so output i depends on inputs < i only.
    """
    degrees = [np.arange(1, dim + 1)]
    for units in hidden_units:
        degrees.append(np.arange(units) % max(dim - 1, 1) + 1)
    masks = [(d_out[None, :] >= d_in[:, None]).astype("float32") for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    out_degrees = np.repeat(np.arange(1, dim + 1), params)
    masks.append((out_degrees[None, :] > degrees[-1][:, None]).astype("float32"))
    return masks


@keras.saving.register_keras_serializable(package="tfp_anomaly.flows")
class MADE(keras.layers.Layer):
    """Masked autoencoder for distribution estimation, the conditioner of the autoregressive flows.

    Output ``[..., i, :]`` depends only on ``x[..., :i]`` (masks of :func:`made_masks`) and on the
    context, if any, which enters the first layer unmasked. The output layer starts at zero, so a
    flow it conditions starts as (or near) the identity.

    Shapes: x: (batch, dim), context: (batch, context_dim) → (batch, dim, params).

    Args:
        hidden_units: widths of the masked hidden layers.
        params: outputs per input dimension (e.g. 2: shift and log-scale).
        activation: hidden activation.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Germain, Gregor, Murray & Larochelle (2015), MADE: Masked Autoencoder for Distribution
        Estimation, arXiv:1502.03509.
    """

    def __init__(self, hidden_units=(64, 64), params=2, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        self.params = int(params)
        self.activation = activation

    def build(self, x_shape, context_shape=None):
        dim = int(x_shape[-1])
        self.dim = dim
        self.masks = made_masks(dim, self.hidden_units, self.params)
        sizes = [dim] + self.hidden_units + [dim * self.params]
        self.kernels, self.biases = [], []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == len(sizes) - 2
            init = "zeros" if last else "glorot_uniform"
            self.kernels.append(self.add_weight(shape=(n_in, n_out), initializer=init, name=f"kernel_{k}"))
            self.biases.append(self.add_weight(shape=(n_out,), initializer="zeros", name=f"bias_{k}"))
        self.context_kernel = None
        if context_shape is not None:
            self.context_kernel = self.add_weight(shape=(int(context_shape[-1]), sizes[1]),
                                                  initializer="glorot_uniform", name="context_kernel")

    def call(self, x, context=None):
        act = keras.activations.get(self.activation)
        h = x
        for k, (kernel, bias, mask) in enumerate(zip(self.kernels, self.biases, self.masks)):
            h = ops.matmul(h, kernel * mask) + bias
            if k == 0 and context is not None:
                h = h + ops.matmul(context, self.context_kernel)
            if k < len(self.kernels) - 1:
                h = act(h)
        return ops.reshape(h, (-1, self.dim, self.params))

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "params": self.params,
                "activation": self.activation}
