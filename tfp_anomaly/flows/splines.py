"""Rational-quadratic spline parameters (Durkan, Bekasov, Murray & Papamakarios 2019, arXiv:1906.04032)."""
from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

MIN_BIN_WIDTH = 1e-3
MIN_SLOPE = 1e-3
_IDENTITY_SLOPE_SHIFT = math.log(math.expm1(1.0))  # softplus(0 + shift) = 1: zero init is the identity


def params_per_dim(nbins: int) -> int:
    """K widths, K heights and K − 1 interior knot slopes per transformed dimension."""
    return 3 * nbins - 1


def spline(raw, nbins: int, bound: float):
    """A ``tfb.RationalQuadraticSpline`` on [−B, B] (identity, i.e. linear tails, outside) from raw
    network outputs of shape (..., units, 3K − 1). Widths and heights: softmax scaled to 2B with a
    minimum bin size; slopes: softplus plus a minimum, so every bin is strictly monotone."""
    width = 2.0 * bound
    w, h, s = raw[..., :nbins], raw[..., nbins:2 * nbins], raw[..., 2 * nbins:]
    scale = width - nbins * MIN_BIN_WIDTH
    return tfb.RationalQuadraticSpline(
        bin_widths=tf.math.softmax(w, axis=-1) * scale + MIN_BIN_WIDTH,
        bin_heights=tf.math.softmax(h, axis=-1) * scale + MIN_BIN_WIDTH,
        knot_slopes=tf.math.softplus(s + _IDENTITY_SLOPE_SHIFT) + MIN_SLOPE,
        range_min=-bound)
