"""Householder flow (Tomczak & Welling 2016, arXiv:1611.09630)."""
from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FlowLayer, register

tfb = tfp.bijectors


def reflect(v, z):
    """H z with H = I − 2 v vᵀ / ‖v‖² (v of shape (..., d))."""
    v_sq = tf.maximum(tf.reduce_sum(v * v, axis=-1, keepdims=True), 1e-12)  # v = 0 would be 0/0
    return z - 2.0 * v * tf.reduce_sum(v * z, axis=-1, keepdims=True) / v_sq


class HouseholderBijector(tfb.Bijector):
    """f(z) = H z, H = I − 2 v vᵀ/‖v‖²: an orthogonal reflection, volume preserving
    (log|det| = 0) and its own inverse."""

    def __init__(self, v, validate_args=False, name="householder"):
        parameters = dict(locals())
        with tf.name_scope(name):
            self.v = v
            super().__init__(forward_min_event_ndims=1, is_constant_jacobian=True,
                             validate_args=validate_args, parameters=parameters, name=name)

    def _forward(self, z):
        return reflect(self.v, z)

    def _inverse(self, y):
        return reflect(self.v, y)

    def _forward_log_det_jacobian(self, z):
        return tf.zeros([], z.dtype)


@register("householder")
class Householder(FlowLayer):
    """One Householder reflection; chain K of them (``"householder*4"``) for a general rotation.
    Amortized (as in the paper's VAE posterior): v produced per event from the context."""

    def __init__(self, amortized=False, **kwargs):
        super().__init__(**kwargs)
        self.amortized = bool(amortized)

    def build_flow(self, dim, context_dim):
        if self.amortized:
            self.params = keras.layers.Dense(dim)
            self.params.build((None, context_dim))
        else:
            self.v = self.add_weight(shape=(dim,), initializer=keras.initializers.RandomNormal(stddev=1.0), name="v")

    def bijector(self, context=None):
        return HouseholderBijector(self.params(context) if self.amortized else tf.convert_to_tensor(self.v))

    def get_config(self):
        return {**super().get_config(), "amortized": self.amortized}
