"""Radial flow (Rezende & Mohamed 2015, arXiv:1505.05770, §4.1 and appendix A.2)."""
from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FLOWS, AmortizedFlowLayer

tfb = tfp.bijectors


class RadialBijector(tfb.Bijector):
    """The radial transform for given (possibly per-event) parameters.

    Forward: f(z) = z + β h (z − z₀) with r = ‖z − z₀‖ and h = 1/(α + r);
    log|det ∂f/∂z| = (d − 1) log(1 + βh) + log(1 + βh − βr/(α + r)²). Invertible for α > 0, β ≥ −α.
    Inverse, in closed form: r' = ‖y − z₀‖ = r (1 + β/(α + r)), so r is the positive root of
    r² + (α + β − r') r − α r' = 0, and z − z₀ = (y − z₀) r / r'.

    Shapes: the leading axes (...) of the parameters broadcast against ``z: (batch, d)``.

    Args:
        z0: the centre z₀, shape (..., d).
        alpha: α > 0, shape (...,).
        beta: β ≥ −α, shape (...,).
        validate_args, name: as for every ``tfb.Bijector``.

    References:
        Rezende & Mohamed (2015), Variational Inference with Normalizing Flows, arXiv:1505.05770.
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


@FLOWS.register("radial")
class Radial(AmortizedFlowLayer):
    """Radial flow step.

    Forward: f(z) = z + β h (z − z₀), r = ‖z − z₀‖, h = 1/(α + r);
    log|det ∂f/∂z| = (d − 1) log(1 + βh) + log(1 + βh − βr/(α + r)²). Inverse in closed form (see
    :class:`RadialBijector`). Constraints: α = softplus(α̂) > 0 and β = −α + softplus(β̂) > −α keep f
    invertible.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        amortized: take (z₀, α̂, β̂) per event from the context through one linear layer; otherwise they
            are weights and a context is ignored.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Rezende & Mohamed (2015), Variational Inference with Normalizing Flows, arXiv:1505.05770.
    """

    def parameter_shapes(self, dim):
        return {"z0": (dim,), "alpha_raw": (), "beta_raw": ()}

    def weight_initializers(self):
        return {"z0": keras.initializers.RandomNormal(stddev=0.1), "alpha_raw": "zeros", "beta_raw": "zeros"}

    def parameters_for(self, context=None):
        """(z₀, α, β), constrained: shapes (dim,), (), () for weights, with a leading batch axis amortized."""
        raw = self.raw_parameters(context)
        alpha = tf.math.softplus(raw["alpha_raw"])
        return raw["z0"], alpha, -alpha + tf.math.softplus(raw["beta_raw"])

    def bijector(self, context=None):
        return RadialBijector(*self.parameters_for(context))
