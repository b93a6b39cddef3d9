"""Glow-style steps (Kingma & Dhariwal 2018, arXiv:1807.03039) for vectors: ActNorm, an invertible
linear map in LU form (the "1×1 convolution" of a vector), and an affine coupling."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FlowLayer, per_event, register
from .coupling import RealNVP

tfb = tfp.bijectors


@register("actnorm")
class ActNorm(FlowLayer):
    """y = (x + b) · exp(s), log|det| = Σ s. Data-dependent initialisation: the first call with
    ``training=True`` sets b = −mean and s = −log(std) of that batch, so the output starts
    standardised per dimension."""

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


@register("lu")
class InvertibleLinearLU(FlowLayer):
    """y = W x with W = P L U (P a fixed permutation, L unit lower-, U upper-triangular), initialised
    from a random rotation; log|det| = Σ log|U_ii| (``tfb.ScaleMatvecLU``)."""

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


@register("glow")
class GlowStep(FlowLayer):
    """One Glow step: ActNorm → invertible linear (LU) → affine coupling."""

    def __init__(self, hidden_units=(64, 64), parity=0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units, self.parity, self.seed = list(hidden_units), int(parity), int(seed)
        self.actnorm = ActNorm()
        self.mix = InvertibleLinearLU(seed=seed)
        self.coupling = RealNVP(hidden_units=hidden_units, parity=parity)

    def build_flow(self, dim, context_dim):
        context = None if context_dim is None else (None, context_dim)
        for step in (self.actnorm, self.mix, self.coupling):
            step.build((None, dim), context)

    def call(self, z, context=None, training=None):
        total = per_event(0.0, z)
        for step in (self.actnorm, self.mix, self.coupling):
            z, log_det = step(z, context=context, training=training)
            total = total + log_det
        return z, total

    def bijector(self, context=None):
        return tfb.Chain([self.coupling.bijector(context), self.mix.bijector(context), self.actnorm.bijector(context)])

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "parity": self.parity, "seed": self.seed}
