"""Planar flow (Rezende & Mohamed 2015, arXiv:1505.05770, §4.1 and appendix A.1)."""
from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FLOWS, AmortizedFlowLayer

tfb = tfp.bijectors

_BISECTION_STEPS = 60  # halves an interval of width 2|w.u| below float32 resolution


class PlanarBijector(tfb.Bijector):
    """The planar transform for given (possibly per-event) parameters.

    Forward: f(z) = z + û tanh(wᵀz + b); log|det ∂f/∂z| = log|1 + ûᵀw (1 − tanh²(wᵀz + b))|, floored at
    log(1e-12) against float32 round-off. Invertible when wᵀû > −1 (guaranteed by :class:`Planar`).
    Inverse: no closed form. With α = wᵀz, wᵀy = α + (wᵀû) tanh(α + b) is monotone in α; α is found by
    bisection on [wᵀy − |wᵀû|, wᵀy + |wᵀû|], then z = y − û tanh(α + b).

    Shapes: the leading axes (...) of the parameters broadcast against ``z: (batch, d)``, so each event
    may carry its own (amortized) parameters.

    Args:
        u_hat: û, shape (..., d): already constrained.
        w: shape (..., d).
        b: shape (...,).
        validate_args, name: as for every ``tfb.Bijector``.

    References:
        Rezende & Mohamed (2015), Variational Inference with Normalizing Flows, arXiv:1505.05770.
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
    """û = u + (m(wᵀu) − wᵀu) w/‖w‖² with m(x) = −1 + softplus(x), so wᵀû > −1 (appendix A.1)."""
    wu = tf.reduce_sum(w * u, axis=-1, keepdims=True)
    w_sq = tf.maximum(tf.reduce_sum(w * w, axis=-1, keepdims=True), 1e-12)  # avoids 0/0 when w = 0
    return u + ((-1.0 + tf.math.softplus(wu)) - wu) * w / w_sq


@FLOWS.register("planar")
class Planar(AmortizedFlowLayer):
    """Planar flow step.

    Forward: f(z) = z + û tanh(wᵀz + b); log|det ∂f/∂z| = log|1 + ûᵀw (1 − tanh²(wᵀz + b))|. û is u
    constrained by :func:`constrain_u` so that wᵀû > −1 and f is invertible (appendix A.1 of the paper).
    Inverse: by bisection on the scalar wᵀz (see :class:`PlanarBijector`).

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        amortized: take (u, w, b) per event from the context through one linear layer, as in VAE
            posteriors (Rezende & Mohamed 2015; van den Berg et al. 2018); otherwise they are weights
            and a context is ignored.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Rezende & Mohamed (2015), Variational Inference with Normalizing Flows, arXiv:1505.05770.
    """

    def parameter_shapes(self, dim):
        return {"u": (dim,), "w": (dim,), "b": ()}

    def weight_initializers(self):
        # u and w share one initialiser object, so they start equal; kept so that a seeded fresh layer
        # initialises as in earlier releases
        init = keras.initializers.RandomNormal(stddev=0.01)
        return {"u": init, "w": init, "b": "zeros"}

    def parameters_for(self, context=None):
        """(û, w, b): shapes (dim,), (dim,), () for weights, with a leading batch axis amortized."""
        raw = self.raw_parameters(context)
        return constrain_u(raw["u"], raw["w"]), raw["w"], raw["b"]

    def bijector(self, context=None):
        return PlanarBijector(*self.parameters_for(context))
