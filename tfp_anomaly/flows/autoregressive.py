"""Autoregressive flows on a Keras-3 MADE conditioner.

* MAF (Papamakarios, Pavlakou & Murray 2017, arXiv:1705.07057): x_i = u_i · exp(s_i(x_<i)) + t_i(x_<i).
  Density evaluation (inverse) is one MADE pass; sampling (forward) takes d passes.
* IAF (Kingma et al. 2016, arXiv:1606.04934): the inverse of MAF, so the forward pass (the VAE
  posterior direction z₀ → z_K) is one pass. With a context (the encoder's hidden vector, as in
  the paper) the flow is amortized.
* Spline autoregressive (Durkan et al. 2019, arXiv:1906.04032): the affine map replaced by a
  rational-quadratic spline per dimension.

log|det| = Σ_i s_i (affine) or Σ_i log RQS_i' (spline): the Jacobian is triangular.
Built on ``tfb.MaskedAutoregressiveFlow`` with a ``bijector_fn`` that calls our MADE.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from . import splines
from .base import FlowLayer, register
from .conditioners import MADE

tfb = tfp.bijectors


class _Autoregressive(FlowLayer):
    params_per_dim = 2
    invert = False

    def __init__(self, hidden_units=(64, 64), activation="relu", log_scale_clamp=5.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = list(hidden_units)
        self.activation = activation
        self.log_scale_clamp = float(log_scale_clamp)

    def build_flow(self, dim, context_dim):
        self.made = MADE(self.hidden_units, self.params_per_dim, self.activation)
        self.made.build((None, dim), None if context_dim is None else (None, context_dim))

    def inner(self, raw):
        """Affine step; the log-scale soft-clamped to ±``log_scale_clamp`` (float32 safety)."""
        c = self.log_scale_clamp
        return tfb.Chain([tfb.Shift(raw[..., 0]), tfb.Scale(log_scale=c * tf.tanh(raw[..., 1] / c))])

    def bijector(self, context=None):
        def bijector_fn(x, **_):
            ctx = None if context is None else tf.cast(context, x.dtype)
            return self.inner(self.made(x, ctx))

        maf = tfb.MaskedAutoregressiveFlow(bijector_fn=bijector_fn)
        return tfb.Invert(maf) if self.invert else maf

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "activation": self.activation,
                "log_scale_clamp": self.log_scale_clamp}


@register("maf")
class MAF(_Autoregressive):
    """Masked autoregressive flow (fast density, slow sampling)."""


@register("iaf")
class IAF(_Autoregressive):
    """Inverse autoregressive flow (fast forward / sampling: the VAE-posterior direction)."""

    invert = True


@register("spline_autoregressive")
class SplineAutoregressive(_Autoregressive):
    """Autoregressive rational-quadratic spline flow (MAF direction)."""

    def __init__(self, nbins=8, bound=5.0, **kwargs):
        super().__init__(**kwargs)
        self.supports_jit = False  # TFP's sequential spline loop builds dynamic shapes XLA cannot compile
        self.nbins, self.bound = int(nbins), float(bound)
        self.params_per_dim = splines.params_per_dim(self.nbins)

    def inner(self, raw):
        return splines.spline(raw, self.nbins, self.bound)

    def get_config(self):
        return {**super().get_config(), "nbins": self.nbins, "bound": self.bound}
