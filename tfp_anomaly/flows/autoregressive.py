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
from .base import FLOWS, FlowLayer
from .conditioners import MADE

tfb = tfp.bijectors


class _Autoregressive(FlowLayer):
    """Shared part of the autoregressive flows: a MADE conditioner of (z_<i, context) inside
    ``tfb.MaskedAutoregressiveFlow``; ``inner`` makes the element-wise map from the MADE output."""

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


@FLOWS.register("maf")
class MAF(_Autoregressive):
    """Masked autoregressive flow (fast density, slow sampling).

    Forward (sampling direction, d conditioner passes): y_i = z_i exp(s_i) + t_i with (t_i, ŝ_i) =
    MADE(y_<i, context)_i and s_i = c tanh(ŝ_i / c); log|det ∂y/∂z| = Σ_i s_i. Inverse (density
    direction, one pass): z_i = (y_i − t_i) exp(−s_i). The clamp c keeps exp(s) finite in float32.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        hidden_units: widths of the hidden layers of the :class:`~.conditioners.MADE` conditioner.
        activation: its hidden activation.
        log_scale_clamp: c, the bound of the soft-clamped log-scale s.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow for Density Estimation,
        arXiv:1705.07057.
    """


@FLOWS.register("iaf")
class IAF(_Autoregressive):
    """Inverse autoregressive flow (fast forward: the VAE-posterior direction z₀ → z_K); the inverse of
    :class:`MAF`.

    Forward (one conditioner pass): y_i = (z_i − t_i) exp(−s_i) with (t_i, ŝ_i) = MADE(z_<i, context)_i
    and s_i = c tanh(ŝ_i / c); log|det ∂y/∂z| = −Σ_i s_i. Inverse (d passes): z_i = y_i exp(s_i) + t_i.
    With a context (e.g. the encoder's hidden vector) the flow is amortized, as in the paper.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        hidden_units, activation, log_scale_clamp, **kwargs: as for :class:`MAF`.

    References:
        Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling (2016), Improved Variational Inference
        with Inverse Autoregressive Flow, arXiv:1606.04934.
    """

    invert = True


@FLOWS.register("spline_autoregressive")
class SplineAutoregressive(_Autoregressive):
    """Autoregressive rational-quadratic spline flow (MAF direction).

    Forward (d conditioner passes): y_i = RQS_θi(z_i), θ_i = MADE(y_<i, context)_i the 3K − 1 raw
    widths, heights and knot slopes of a monotone spline with K bins on [−B, B], the identity outside;
    log|det ∂y/∂z| = Σ_i log RQS′_θi(z_i). Inverse (one pass): z_i = RQS⁻¹_θi(y_i), θ_i from y_<i.
    Not XLA-compilable (``supports_jit = False``).

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        nbins: K, the number of bins.
        bound: B, the half-width of the spline's interval.
        **kwargs: ``hidden_units`` and ``activation`` of the MADE conditioner (as for :class:`MAF`;
            ``log_scale_clamp`` is accepted but unused), and ``keras.layers.Layer`` arguments.

    References:
        Durkan, Bekasov, Murray & Papamakarios (2019), Neural Spline Flows, arXiv:1906.04032.
    """

    def __init__(self, nbins=8, bound=5.0, **kwargs):
        super().__init__(**kwargs)
        self.supports_jit = False  # TFP's sequential spline loop builds dynamic shapes XLA cannot compile
        self.nbins, self.bound = int(nbins), float(bound)
        self.params_per_dim = splines.params_per_dim(self.nbins)

    def inner(self, raw):
        return splines.spline(raw, self.nbins, self.bound)

    def get_config(self):
        return {**super().get_config(), "nbins": self.nbins, "bound": self.bound}
