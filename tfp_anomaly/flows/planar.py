"""Planar flow (Rezende & Mohamed 2015, arXiv:1505.05770, §4.1 and appendix A.1)."""
from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FlowLayer, register

tfb = tfp.bijectors

_BISECTION_STEPS = 60  # halves an interval of width 2|w.u| below float32 resolution


class PlanarBijector(tfb.Bijector):
    """f(z) = z + û tanh(wᵀz + b),   log|det ∂f/∂z| = log|1 + ûᵀ w (1 − tanh²(wᵀz + b))|.

    Parameters ``u_hat, w`` have shape (..., d) and ``b`` (...,), so each event may carry its own
    (amortized) parameters. Invertible when wᵀû ≥ −1 (guaranteed by :class:`Planar`). The inverse has
    no closed form: with α = wᵀz, wᵀy = α + (wᵀû) tanh(α + b) is monotone in α, solved by bisection
    on [wᵀy − |wᵀû|, wᵀy + |wᵀû|]; then z = y − û tanh(α + b).
    """

    def __init__(self, u_hat, w, b, validate_args=False, name="planar"):
        parameters = dict(locals())
        with tf.name_scope(name):
            self.u_hat, self.w, self.b = u_hat, w, b
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters,
                             name=name)

    def _pre(self, z):
        return tf.reduce_sum(self.w * z, axis=-1, keepdims=True) + self.b[..., None]

    def _forward(self, z):
        return z + self.u_hat * tf.tanh(self._pre(z))

    def _forward_log_det_jacobian(self, z):
        slope = 1.0 - tf.tanh(self._pre(z)) ** 2
        det = 1.0 + slope[..., 0] * tf.reduce_sum(self.w * self.u_hat, axis=-1)
        # det > 0 in exact arithmetic (wᵀû > −1); the floor only guards float32 round-off
        return tf.math.log(tf.maximum(tf.abs(det), 1e-12))

    def _inverse(self, y):
        wy = tf.reduce_sum(self.w * y, axis=-1)
        wu = tf.reduce_sum(self.w * self.u_hat, axis=-1)
        b = tf.broadcast_to(self.b, tf.shape(wy))
        lo, hi = wy - tf.abs(wu), wy + tf.abs(wu)
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            above = mid + wu * tf.tanh(mid + b) > wy
            lo, hi = tf.where(above, lo, mid), tf.where(above, mid, hi)
        alpha = 0.5 * (lo + hi)
        return y - self.u_hat * tf.tanh(alpha + b)[..., None]

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(self._inverse(y))


def constrain_u(u, w):
    """û = u + (m(wᵀu) − wᵀu) w / ‖w‖², m(x) = −1 + softplus(x): guarantees wᵀû > −1 (appendix A.1)."""
    wu = tf.reduce_sum(w * u, axis=-1, keepdims=True)
    w_sq = tf.maximum(tf.reduce_sum(w * w, axis=-1, keepdims=True), 1e-12)  # avoids 0/0 when w = 0
    return u + ((-1.0 + tf.math.softplus(wu)) - wu) * w / w_sq


@register("planar")
class Planar(FlowLayer):
    """Planar flow step; with ``amortized=True`` (u, w, b) are produced per event from the context
    by a linear layer, as in VAE posteriors (Rezende & Mohamed 2015; van den Berg et al. 2018)."""

    def __init__(self, amortized=False, **kwargs):
        super().__init__(**kwargs)
        self.amortized = bool(amortized)

    def build_flow(self, dim, context_dim):
        if self.amortized:
            self.params = keras.layers.Dense(2 * dim + 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
            self.params.build((None, context_dim))
        else:
            init = keras.initializers.RandomNormal(stddev=0.01)
            self.u = self.add_weight(shape=(dim,), initializer=init, name="u")
            self.w = self.add_weight(shape=(dim,), initializer=init, name="w")
            self.b = self.add_weight(shape=(), initializer="zeros", name="b")

    def parameters_for(self, context=None):
        if self.amortized:
            p = self.params(context)
            u, w, b = p[:, :self.dim], p[:, self.dim:2 * self.dim], p[:, -1]
        else:
            u, w, b = tf.convert_to_tensor(self.u), tf.convert_to_tensor(self.w), tf.convert_to_tensor(self.b)
        return constrain_u(u, w), w, b

    def bijector(self, context=None):
        return PlanarBijector(*self.parameters_for(context))

    def get_config(self):
        return {**super().get_config(), "amortized": self.amortized}
