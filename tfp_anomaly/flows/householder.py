"""Householder flow (Tomczak & Welling 2016, arXiv:1611.09630)."""
from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FLOWS, AmortizedFlowLayer

tfb = tfp.bijectors


def reflect(v, z):
    """H z with H = I − 2 v vᵀ / ‖v‖² (v of shape (..., d))."""
    v_sq = tf.maximum(tf.reduce_sum(v * v, axis=-1, keepdims=True), 1e-12)  # v = 0 would be 0/0
    return z - 2.0 * v * tf.reduce_sum(v * z, axis=-1, keepdims=True) / v_sq


class HouseholderBijector(tfb.Bijector):
    """A Householder reflection for a given (possibly per-event) vector v.

    Forward: f(z) = H z with H = I − 2 v vᵀ/‖v‖², an orthogonal reflection; log|det ∂f/∂z| = 0 (volume
    preserving). Inverse: f itself (H² = I).

    Shapes: the leading axes (...) of the parameters broadcast against ``z: (batch, d)``.

    Args:
        v: the normal of the reflecting hyperplane, shape (..., d), non-zero (‖v‖² is floored at 1e-12).
        validate_args, name: as for every ``tfb.Bijector``.

    References:
        Tomczak & Welling (2016), Improving Variational Auto-Encoders using Householder Flow,
        arXiv:1611.09630.
    """

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


@FLOWS.register("householder")
class Householder(AmortizedFlowLayer):
    """One Householder reflection; chain K of them (``"householder*4"``) for a product of K reflections
    (every orthogonal d × d matrix is one, with K ≤ d).

    Forward: f(z) = (I − 2 v vᵀ/‖v‖²) z; log|det ∂f/∂z| = 0. Inverse: the same reflection.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        amortized: take v per event from the context through one linear layer (as in the paper's VAE
            posterior); otherwise v is a weight and a context is ignored.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Tomczak & Welling (2016), Improving Variational Auto-Encoders using Householder Flow,
        arXiv:1611.09630.
    """

    def parameter_shapes(self, dim):
        return {"v": (dim,)}

    def weight_initializers(self):
        return {"v": keras.initializers.RandomNormal(stddev=1.0)}

    def context_initializer(self):
        return "glorot_uniform"  # Keras' default, not the small initialiser of the other amortized flows

    def bijector(self, context=None):
        return HouseholderBijector(self.raw_parameters(context)["v"])
