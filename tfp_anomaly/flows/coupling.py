"""Coupling flows: NICE (Dinh et al. 2014, arXiv:1410.8516), RealNVP (Dinh et al. 2016,
arXiv:1605.08803) and rational-quadratic spline couplings (Durkan et al. 2019, arXiv:1906.04032).

The input is split into x_a (first half) and x_b; x_a passes unchanged and conditions an
element-wise invertible map of x_b through a network of (x_a, context):

* NICE, additive:      y_b = x_b + t(x_a),            log|det| = 0;
* RealNVP, affine:     y_b = x_b · exp(s(x_a)) + t(x_a), log|det| = Σ s;
* spline:              y_b = RQS_θ(x_a)(x_b),          log|det| = Σ log RQS'.

``parity=1`` swaps the roles of the halves (by reversing the vector around the coupling), so
consecutive couplings alternate; :class:`~.chain.FlowChain` sets it automatically. Built on
``tfb.RealNVP`` with our Keras-3 :class:`~.conditioners.MLP` as the conditioner.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from . import splines
from .base import FLOWS, FlowLayer
from .conditioners import MLP

tfb = tfp.bijectors


def reverse(dim: int):
    return tfb.Permute(permutation=list(range(dim - 1, -1, -1)))


class _Coupling(FlowLayer):
    """Shared part of the coupling flows: an :class:`~.conditioners.MLP` of (x_a, context) inside
    ``tfb.RealNVP``; ``inner`` makes the element-wise map of x_b from the network output."""

    params_per_dim = 1

    def __init__(self, hidden_units=(64, 64), parity=0, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = list(hidden_units)
        self.parity = int(parity)
        self.activation = activation

    def build_flow(self, dim, context_dim):
        if dim < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 dimensions, got {dim}")
        self.num_masked = dim // 2
        self.net = MLP(self.hidden_units, (dim - self.num_masked) * self.params_per_dim, self.activation)
        self.net.build((None, self.num_masked + (context_dim or 0)))

    def inner(self, raw, units):
        raise NotImplementedError

    def bijector(self, context=None):
        def bijector_fn(x_a, units, **_):
            inputs = x_a if context is None else tf.concat([x_a, tf.cast(context, x_a.dtype)], axis=-1)
            raw = self.net(inputs)
            return self.inner(tf.reshape(raw, (-1, units, self.params_per_dim)), units)

        core = tfb.RealNVP(num_masked=self.num_masked, bijector_fn=bijector_fn)
        return tfb.Chain([reverse(self.dim), core, reverse(self.dim)]) if self.parity % 2 else core

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "parity": self.parity,
                "activation": self.activation}


@FLOWS.register("nice")
class NICE(_Coupling):
    """Additive coupling (volume preserving).

    Forward: y_a = z_a, y_b = z_b + t(z_a, context); log|det ∂y/∂z| = 0. Inverse: z_b = y_b − t(y_a,
    context). z_a is the first ⌊dim/2⌋ dimensions (the last ones, reversed, with ``parity=1``), z_b
    the rest; t is an MLP whose output layer starts at zero, so the step starts as the identity.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        hidden_units: widths of the hidden layers of the :class:`~.conditioners.MLP` conditioner.
        parity: 0 or 1; 1 swaps the roles of the halves. :class:`~.chain.FlowChain` alternates it.
        activation: the conditioner's hidden activation.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Dinh, Krueger & Bengio (2014), NICE: Non-linear Independent Components Estimation,
        arXiv:1410.8516.
    """

    def inner(self, raw, units):
        return tfb.Shift(raw[..., 0])


@FLOWS.register("realnvp")
class RealNVP(_Coupling):
    """Affine coupling.

    Forward: y_a = z_a, y_b = z_b exp(s) + t with (t, ŝ) = MLP(z_a, context) and s = c tanh(ŝ/c);
    log|det ∂y/∂z| = Σ s. Inverse: z_b = (y_b − t) exp(−s). Halves as for :class:`NICE`. The soft
    clamp c keeps exp(s) from overflowing float32 however the network drifts.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        log_scale_clamp: c, the bound of the log-scale s.
        **kwargs: ``hidden_units``, ``parity``, ``activation`` (as for :class:`NICE`) and
            ``keras.layers.Layer`` arguments.

    References:
        Dinh, Sohl-Dickstein & Bengio (2016), Density estimation using Real NVP, arXiv:1605.08803.
    """

    params_per_dim = 2

    def __init__(self, log_scale_clamp=5.0, **kwargs):
        super().__init__(**kwargs)
        self.log_scale_clamp = float(log_scale_clamp)

    def inner(self, raw, units):
        c = self.log_scale_clamp
        return tfb.Chain([tfb.Shift(raw[..., 0]), tfb.Scale(log_scale=c * tf.tanh(raw[..., 1] / c))])

    def get_config(self):
        return {**super().get_config(), "log_scale_clamp": self.log_scale_clamp}


@FLOWS.register("spline_coupling")
class SplineCoupling(_Coupling):
    """Rational-quadratic spline coupling.

    Forward: y_a = z_a, y_b = RQS_θ(z_b) element-wise, θ = MLP(z_a, context) the 3K − 1 raw widths,
    heights and knot slopes per dimension of a monotone spline with K bins on [−B, B], the identity
    outside; log|det ∂y/∂z| = Σ log RQS′_θ(z_b). Inverse: z_b = RQS⁻¹_θ(y_b) (a quadratic per
    element). Halves as for :class:`NICE`.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        nbins: K, the number of bins.
        bound: B, the half-width of the spline's interval.
        **kwargs: ``hidden_units``, ``parity``, ``activation`` (as for :class:`NICE`) and
            ``keras.layers.Layer`` arguments.

    References:
        Durkan, Bekasov, Murray & Papamakarios (2019), Neural Spline Flows, arXiv:1906.04032.
    """

    def __init__(self, nbins=8, bound=5.0, **kwargs):
        super().__init__(**kwargs)
        self.nbins, self.bound = int(nbins), float(bound)
        self.params_per_dim = splines.params_per_dim(self.nbins)

    def inner(self, raw, units):
        return splines.spline(raw, self.nbins, self.bound)

    def get_config(self):
        return {**super().get_config(), "nbins": self.nbins, "bound": self.bound}
