"""Glow-style steps (Kingma & Dhariwal 2018, arXiv:1807.03039) for vectors: ActNorm, an invertible
linear map in LU form (the "1×1 convolution" of a vector), and an affine coupling."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FLOWS, FlowLayer, FlowSequence
from .coupling import RealNVP

tfb = tfp.bijectors


@FLOWS.register("actnorm")
class ActNorm(FlowLayer):
    """Activation normalisation: an element-wise affine map with data-dependent initialisation.

    Forward: y = (z + b) exp(s); log|det ∂y/∂z| = Σ s. Inverse: z = y exp(−s) − b. The first call with
    ``training=True`` sets b = −mean and s = −½ log(var + 1e-6) of that batch (the 1e-6 keeps a
    constant dimension finite), so the output starts standardised per dimension; a context is ignored.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions,
        arXiv:1807.03039.
    """

    def build_flow(self, dim, context_dim):
        self.bias = self.add_weight(shape=(dim,), initializer="zeros", name="bias")
        self.log_scale = self.add_weight(shape=(dim,), initializer="zeros", name="log_scale")
        self.initialized = self.add_weight(shape=(), initializer="zeros", trainable=False, name="initialized")

    def maybe_initialize(self, z, training=None):
        if not training:
            return

        def initialize():
            mean, var = tf.nn.moments(z, axes=[0])
            self.bias.assign(-mean)
            self.log_scale.assign(-0.5 * tf.math.log(var + 1e-6))  # +1e-6: a constant dimension
            self.initialized.assign(1.0)
            return tf.constant(True)

        tf.cond(tf.convert_to_tensor(self.initialized) > 0, lambda: tf.constant(False), initialize)

    def bijector(self, context=None):
        return tfb.Chain([tfb.Scale(log_scale=tf.convert_to_tensor(self.log_scale)),
                          tfb.Shift(tf.convert_to_tensor(self.bias))])

    def call(self, z, context=None, training=None):
        self.maybe_initialize(z, training)
        return super().call(z, context, training)


@FLOWS.register("lu")
class InvertibleLinearLU(FlowLayer):
    """Invertible linear map in LU form (Glow's "1×1 convolution" of a vector), ``tfb.ScaleMatvecLU``.

    Forward: y = W z with W = P L U, P a fixed permutation, L unit lower- and U upper-triangular
    (trainable, stored together in one matrix); log|det ∂y/∂z| = Σ_i log|U_ii|. Inverse: z = W⁻¹ y by
    triangular solves. W starts as a random orthogonal matrix; a context is ignored.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        seed: seed of the initial W, the Q factor of a standard normal matrix.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions,
        arXiv:1807.03039.
    """

    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.seed = int(seed)

    def build_flow(self, dim, context_dim):
        rotation = np.linalg.qr(np.random.default_rng(self.seed).normal(size=(dim, dim)))[0]
        lower_upper, permutation = tf.linalg.lu(tf.constant(rotation, tf.float32))
        self.lower_upper = self.add_weight(shape=(dim, dim), initializer="zeros", name="lower_upper")
        self.lower_upper.assign(lower_upper)
        self.permutation = self.add_weight(shape=(dim,), initializer="zeros", dtype="int32", trainable=False,
                                           name="permutation")
        self.permutation.assign(permutation)

    def bijector(self, context=None):
        return tfb.ScaleMatvecLU(tf.convert_to_tensor(self.lower_upper), tf.convert_to_tensor(self.permutation))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@FLOWS.register("glow")
class GlowStep(FlowSequence):
    """One Glow step for vectors: :class:`ActNorm`, then :class:`InvertibleLinearLU`, then an affine
    coupling (:class:`~.coupling.RealNVP`).

    Forward: y = coupling(LU(actnorm(z))); log|det ∂y/∂z| is the sum of the three log-dets. Inverse: the
    three inverses in reverse order. The context reaches the coupling's conditioner only.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        hidden_units: widths of the hidden layers of the coupling's conditioner.
        parity: the coupling's parity (0 or 1); :class:`~.chain.FlowChain` alternates it.
        seed: seed of the LU map's initial matrix.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Kingma & Dhariwal (2018), Glow: Generative Flow with Invertible 1x1 Convolutions,
        arXiv:1807.03039.
    """

    def __init__(self, hidden_units=(64, 64), parity=0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units, self.parity, self.seed = list(hidden_units), int(parity), int(seed)
        self.actnorm = ActNorm()
        self.mix = InvertibleLinearLU(seed=seed)
        self.coupling = RealNVP(hidden_units=hidden_units, parity=parity)

    def parts(self):
        return [self.actnorm, self.mix, self.coupling]

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "parity": self.parity, "seed": self.seed}
