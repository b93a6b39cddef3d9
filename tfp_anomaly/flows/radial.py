"""Radial flow (Rezende & Mohamed 2015, arXiv:1505.05770, §4.1 and appendix A.2)."""
from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FlowLayer, register

tfb = tfp.bijectors


class RadialBijector(tfb.Bijector):
    """f(z) = z + β h(α, r)(z − z₀), r = ‖z − z₀‖, h = 1/(α + r);

    log|det| = (d − 1) log(1 + βh) + log(1 + βh − βr/(α + r)²). Invertible for α > 0, β ≥ −α.
    Closed-form inverse: r' = ‖y − z₀‖ = r (1 + β/(α + r)) gives r as the positive root of
    r² + (α + β − r') r − α r' = 0, then z − z₀ = (y − z₀) r / r'.
    """

    def __init__(self, z0, alpha, beta, validate_args=False, name="radial"):
        parameters = dict(locals())
        with tf.name_scope(name):
            self.z0, self.alpha, self.beta = z0, alpha, beta
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters,
                             name=name)

    @staticmethod
    def _norm(x):
        # the floor keeps the gradient of ‖x‖ finite at x = 0 (a measure-zero point)
        return tf.sqrt(tf.maximum(tf.reduce_sum(x * x, axis=-1), 1e-20))

    def _forward(self, z):
        diff = z - self.z0
        h = 1.0 / (self.alpha + self._norm(diff))
        return z + (self.beta * h)[..., None] * diff

    def _forward_log_det_jacobian(self, z):
        r = self._norm(z - self.z0)
        bh = self.beta / (self.alpha + r)
        d = tf.cast(tf.shape(z)[-1], z.dtype)
        return (d - 1.0) * tf.math.log1p(bh) + tf.math.log1p(bh - self.beta * r / (self.alpha + r) ** 2)

    def _inverse(self, y):
        diff = y - self.z0
        r_out = self._norm(diff)
        c = self.alpha + self.beta - r_out
        r = 0.5 * (-c + tf.sqrt(c * c + 4.0 * self.alpha * r_out))
        return self.z0 + diff * (r / r_out)[..., None]

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(self._inverse(y))


@register("radial")
class Radial(FlowLayer):
    """Radial flow step: α = softplus(α̂) > 0, β = −α + softplus(β̂) > −α. Amortized: (z₀, α̂, β̂)
    per event from the context."""

    def __init__(self, amortized=False, **kwargs):
        super().__init__(**kwargs)
        self.amortized = bool(amortized)

    def build_flow(self, dim, context_dim):
        if self.amortized:
            self.params = keras.layers.Dense(dim + 2, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
            self.params.build((None, context_dim))
        else:
            self.z0 = self.add_weight(shape=(dim,), initializer=keras.initializers.RandomNormal(stddev=0.1), name="z0")
            self.alpha_raw = self.add_weight(shape=(), initializer="zeros", name="alpha_raw")
            self.beta_raw = self.add_weight(shape=(), initializer="zeros", name="beta_raw")

    def parameters_for(self, context=None):
        if self.amortized:
            p = self.params(context)
            z0, a_raw, b_raw = p[:, :self.dim], p[:, self.dim], p[:, self.dim + 1]
        else:
            z0, a_raw, b_raw = (tf.convert_to_tensor(v) for v in (self.z0, self.alpha_raw, self.beta_raw))
        alpha = tf.math.softplus(a_raw)
        return z0, alpha, -alpha + tf.math.softplus(b_raw)

    def bijector(self, context=None):
        return RadialBijector(*self.parameters_for(context))

    def get_config(self):
        return {**super().get_config(), "amortized": self.amortized}
