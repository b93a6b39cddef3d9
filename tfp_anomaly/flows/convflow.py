"""Convolutional normalizing flow, ConvFlow (Zheng, Yang & Carbonell 2017, "Convolutional Normalizing Flows",
arXiv:1711.02255), the posterior flow of the DarkFlow ConvVAE study.

One ConvFlow layer with kernel w = (w_0, …, w_{k−1}) and dilation d applies a causal 1-D convolution
to z and a learned element-wise rescale u:

    y = z + u ⊙ tanh(c),   c_i = w_0 z_i + Σ_{j=1}^{k−1} w_j z_{i−jd} + b_i   (z_m = 0 for m < 0).

y_i depends on z_{≤i} only, so the Jacobian is lower triangular with diagonal 1 + u_i w_0 tanh′(c_i)
and log|det J| = Σ_i log(1 + u_i w_0 (1 − tanh² c_i)). A step stacks layers of growing dilation
(default 1, 2, 4: the receptive field covers 1 + (k−1)(1 + 2 + 4) earlier dimensions); the product
stays triangular. Reverse the order between steps (``"convflow, reverse, convflow"``), as the paper's
"revert" layer does, so every dimension can depend on every other.

Invertibility needs 1 + u_i w_0 t > 0 for all t ∈ (0, 1]: we parametrise w_0 = softplus(ω) + ε_w > 0 and
a_i = u_i w_0 = softplus(α_i) − 1 + ε_a > −1, so u_i = a_i / w_0. The floors ε_w = 1e-2 (u stays
finite) and ε_a = 1e-3 (the diagonal stays ≥ 1e-3, log-det ≥ −6.9 per dimension in float32) are the
clamps the arithmetic needs. The inverse solves the triangular system dimension by dimension: given
z_{<i}, y_i = z_i + (a_i/w_0) tanh(w_0 z_i + r_i) is strictly increasing in z_i, with its root in
[y_i − |a_i|/w_0, y_i + |a_i|/w_0]: bisection, then a Newton step, in float64.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FLOWS, AmortizedFlowLayer

tfb = tfp.bijectors

_W0_FLOOR, _A_FLOOR = 1e-2, 1e-3
_ONE = math.log(math.e - 1.0)  # softplus(_ONE) = 1: w_0 ≈ 1 and a ≈ 0 (the identity) at initialisation
_BISECTION_STEPS = 60


def _shift(z, s):
    """z_{i−s} along the last axis, zeros where i < s."""
    dim = z.shape[-1]
    if s >= dim:
        return tf.zeros_like(z)
    return tf.concat([tf.zeros_like(z[..., :s]), z[..., :dim - s]], axis=-1)


class ConvFlowBijector(tfb.Bijector):
    """One ConvFlow layer: a causal 1-D convolution of dilation d inside a tanh, rescaled element-wise.

    Forward: y = z + (a / w_0) ⊙ tanh(c), c = w_0 z + Σ_{j=1}^{k−1} w_j shift_{jd}(z) + b, where
    shift_s(z)_i = z_{i−s} (0 for i < s); log|det ∂y/∂z| = Σ_i log(1 + a_i (1 − tanh² c_i)) (the
    Jacobian is lower triangular). Inverse: solved dimension by dimension in float64, each z_i by
    bisection on [y_i − |a_i|/w_0, y_i + |a_i|/w_0] and one Newton step.

    Shapes: the leading axes (...) of the parameters broadcast against ``z: (batch, d)``.

    Args:
        w0: w_0 > 0, shape (...,).
        taps: w_1 … w_{k−1}, shape (..., k − 1).
        a: a = u w_0 > −1, shape (..., d).
        b: shape (..., d).
        dilation: d ≥ 1.
        validate_args, name: as for every ``tfb.Bijector``.

    References:
        Zheng, Yang & Carbonell (2017), Convolutional Normalizing Flows, arXiv:1711.02255.
    """

    def __init__(self, w0, taps, a, b, dilation=1, validate_args=False, name="convflow"):
        parameters = dict(locals())
        with tf.name_scope(name):
            self.w0, self.taps, self.a, self.b, self.dilation = w0, taps, a, b, int(dilation)
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters,
                             name=name)

    def _rest(self, z, dtype=None):
        """r = Σ_{j≥1} w_j shift_{jd}(z) + b: the part of c from earlier dimensions."""
        cast = (lambda t: tf.cast(t, dtype)) if dtype else (lambda t: t)
        r = cast(self.b) + tf.zeros_like(z)
        for j in range(self.taps.shape[-1]):
            r = r + cast(self.taps[..., j:j + 1]) * _shift(z, (j + 1) * self.dilation)
        return r

    def _forward(self, z):
        w0 = self.w0[..., None]
        return z + self.a / w0 * tf.tanh(w0 * z + self._rest(z))

    def _forward_log_det_jacobian(self, z):
        c = self.w0[..., None] * z + self._rest(z)
        return tf.reduce_sum(tf.math.log1p(self.a * (1.0 - tf.tanh(c) ** 2)), axis=-1)

    def _inverse(self, y):
        dtype = y.dtype
        y64 = tf.cast(y, tf.float64)
        w0 = tf.cast(self.w0, tf.float64)[..., None] + tf.zeros_like(y64)
        a = tf.cast(self.a, tf.float64) + tf.zeros_like(y64)
        z = tf.zeros_like(y64)
        for i in range(y.shape[-1]):  # z_i needs z_{<i}: solve the triangular system in order
            r = self._rest(z, tf.float64)[..., i]
            wi, ai, yi = w0[..., i], a[..., i], y64[..., i]
            lo, hi = yi - tf.abs(ai) / wi, yi + tf.abs(ai) / wi
            for _ in range(_BISECTION_STEPS):
                mid = 0.5 * (lo + hi)
                above = mid + ai / wi * tf.tanh(wi * mid + r) > yi
                lo, hi = tf.where(above, lo, mid), tf.where(above, mid, hi)
            zi = 0.5 * (lo + hi)
            t = tf.tanh(wi * zi + r)  # one Newton step polishes the bracket's midpoint
            zi = zi - (zi + ai / wi * t - yi) / (1.0 + ai * (1.0 - t ** 2))
            z = tf.concat([z[..., :i], zi[..., None], z[..., i + 1:]], axis=-1)
        return tf.cast(z, dtype)

    def _inverse_log_det_jacobian(self, y):
        return -self._forward_log_det_jacobian(self._inverse(y))


@FLOWS.register("convflow")
class ConvFlow(AmortizedFlowLayer):
    """A ConvFlow step: ``len(dilations)`` ConvFlow layers (:class:`ConvFlowBijector`), applied in the
    order of ``dilations``.

    Forward per layer: y = z + u ⊙ tanh(c), c_i = w_0 z_i + Σ_{j≥1} w_j z_{i−jd} + b_i;
    log|det ∂y/∂z| = Σ_i log(1 + u_i w_0 (1 − tanh² c_i)), summed over the layers. Inverse: a
    triangular solve, dimension by dimension (bisection and a Newton step). Constraints, from raw ω and
    α: w_0 = softplus(ω + log(e − 1)) + 0.01 > 0 and a = u w_0 = softplus(α + log(e − 1)) − 1 + 0.001 > −1,
    so each diagonal term is ≥ 0.001 and raw parameters at 0 give w_0 ≈ 1, a ≈ 0 (nearly the identity).

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        kernel_size: k, the taps w_0 … w_{k−1} of each causal convolution (≥ 1).
        dilations: the dilation d of each layer (≥ 1), default (1, 2, 4).
        amortized: take every layer's raw (ω, w_1 … w_{k−1}, α, b) per event from the context through
            one linear layer (VAE posteriors); otherwise they are one weight and a context is ignored.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Zheng, Yang & Carbonell (2017), Convolutional Normalizing Flows, arXiv:1711.02255.
    """

    def __init__(self, kernel_size=2, dilations=(1, 2, 4), **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.dilations = int(kernel_size), [int(d) for d in dilations]
        if self.kernel_size < 1 or not self.dilations or min(self.dilations) < 1:
            raise ValueError("convflow needs kernel_size >= 1 and dilations >= 1")

    def _sizes(self, dim):
        return [1, self.kernel_size - 1, dim, dim]  # ω, taps, α, b per layer

    def parameter_shapes(self, dim):
        return {"params": (sum(self._sizes(dim)) * len(self.dilations),)}

    def weight_initializers(self):
        return {"params": keras.initializers.RandomNormal(stddev=0.1)}

    def layer_parameters(self, context=None):
        """[(w_0, taps, a, b)] per layer, constrained (see the module docstring)."""
        raw = self.raw_parameters(context)["params"]
        out = []
        for chunk in tf.split(raw, len(self.dilations), axis=-1):
            omega, taps, alpha, b = tf.split(chunk, self._sizes(self.dim), axis=-1)
            w0 = tf.math.softplus(omega[..., 0] + _ONE) + _W0_FLOOR
            a = tf.math.softplus(alpha + _ONE) - 1.0 + _A_FLOOR
            out.append((w0, taps, a, b))
        return out

    def bijector(self, context=None):
        layers = [ConvFlowBijector(*p, dilation=d) for p, d in zip(self.layer_parameters(context), self.dilations)]
        return tfb.Chain(layers[::-1])

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "dilations": self.dilations}
