"""The fitted scaler as a Keras layer, so a saved model carries its preprocessing.

x' = (f(x) − center) / scale (or the Gauss-rank map of the quantile scaler) with f = log1p on the log
columns, padded slots set to zero: the same
transform as :class:`tfp_anomaly.data.preprocessing.Scaler` (fit on the training background only),
whose ``get_config()`` this layer takes and stores in its own config.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from scipy.special import ndtri

from ..data.preprocessing import QuantileScaler


def _affine(layer, x):
    return (x - layer.center) / layer.scale


def _cdf(q_t, x_t, side):
    """Linear interpolation of the CDF levels (K points on [0, 1]) at x_t (F, N) between the quantiles
    q_t (F, K); ``side="right"`` gives the top of a tied band (``np.interp``), ``"left"`` its bottom."""
    k = q_t.shape[1]
    upper = tf.searchsorted(q_t, x_t, side=side)  # in [0, K]
    j = tf.clip_by_value(upper - 1, 0, k - 2)
    lo, hi = tf.gather(q_t, j, batch_dims=1), tf.gather(q_t, j + 1, batch_dims=1)
    frac = tf.clip_by_value(tf.math.divide_no_nan(x_t - lo, hi - lo), 0.0, 1.0)
    p = (tf.cast(j, x_t.dtype) + frac) / (k - 1)
    return tf.where(upper == 0, 0.0, tf.where(upper == k, 1.0, p))


def _gauss_rank(layer, x):
    """Φ⁻¹ of the interpolated background CDF (middle of tied bands), logarithmic beyond the range:
    QuantileScaler.transform in TF."""
    q = layer.quantiles  # (K, F)
    flat = tf.reshape(x, (-1, q.shape[1]))
    q_t = tf.constant(np.ascontiguousarray(q.T))  # (F, K)
    x_t = tf.transpose(flat)  # (F, N)
    p = 0.5 * (_cdf(q_t, x_t, "right") + _cdf(q_t, x_t, "left"))
    if layer.bounds == "edge":
        p = tf.where(x_t <= q_t[:, :1], 0.0, tf.where(x_t >= q_t[:, -1:], 1.0, p))
    tail = layer.tail_probability
    # the clamp of QuantileScaler: Φ⁻¹ limited to ±Φ⁻¹(1 − tail); 1 − 1e-7 is not a float32, so the
    # edge value comes from float64 and ndtri only sees probabilities inside the clamp
    edge = float(ndtri(1.0 - tail))
    inside = tf.math.ndtri(tf.clip_by_value(p, 1e-6, 1.0 - 1e-6))
    z = tf.where(p <= tail, -edge, tf.where(p >= 1.0 - tail, edge, inside))
    scale = tf.constant(layer.scale[:, None].astype(q.dtype))
    z = tf.where(x_t > q_t[:, -1:], edge + tf.math.log1p(tf.maximum(x_t - q_t[:, -1:], 0.0) / scale), z)
    z = tf.where(x_t < q_t[:, :1], -edge - tf.math.log1p(tf.maximum(q_t[:, :1] - x_t, 0.0) / scale), z)
    return tf.reshape(tf.transpose(z), tf.shape(x))


#: scaler name → its transform in TensorFlow (after the log columns); every other scaler is affine
TRANSFORMS = {"quantile": _gauss_rank}


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class ScalerLayer(keras.layers.Layer):
    r"""A fitted :class:`tfp_anomaly.data.preprocessing.Scaler` as the first layer of a model, so that a
    saved model takes raw features and carries its preprocessing.

    With f = log1p(max(x, 0)) on the log columns and the identity elsewhere,

        affine scalers (standard, robust, min-max, identity):  x' = (f(x) − c) / s,
        the quantile scaler:  x' = Φ⁻¹(F̂(f(x))), F̂ the background's CDF interpolated between its
            quantiles, clamped to ±Φ⁻¹(1 − p) inside the training range and growing as
            ±[Φ⁻¹(1 − p) + log(1 + d/s)] at a distance d beyond it (p =
            ``QuantileScaler.TAIL_PROBABILITY``; as ``QuantileScaler.transform``),

    and x' = 0 on padded slots when a slot mask is given: the transform of the scaler, in TensorFlow.

    Args:
        scaler_config: ``Scaler.get_config()`` of a scaler fitted on the training background
            (``name``, ``center`` c and ``scale`` s of shape (F,) or, per slot, (slots, F),
            ``log_columns``; the quantile scaler's ``quantiles`` (K, F) and ``bounds``); stored in
            this layer's config.
        **kwargs: ``keras.layers.Layer`` arguments.

    Shapes:
        x: (batch, slots, F) or (batch, F), raw features; slot_mask: (batch, slots) or None;
        output: the shape of x.
    """

    def __init__(self, scaler_config: dict, **kwargs):
        super().__init__(**kwargs)
        if scaler_config.get("center") is None:
            raise ValueError("ScalerLayer needs a fitted scaler (call Scaler.fit on the training background)")
        self.scaler_config = dict(scaler_config)
        self.center = np.asarray(scaler_config["center"], "float32")
        self.scale = np.asarray(scaler_config["scale"], "float32")
        self.log_columns = list(scaler_config.get("log_columns", []))
        if scaler_config.get("quantiles") is not None:
            self.quantiles = np.asarray(scaler_config["quantiles"], "float64")
            self.tail_probability = QuantileScaler.TAIL_PROBABILITY
            self.bounds = scaler_config.get("bounds", "edge")
        self.transform = TRANSFORMS.get(scaler_config.get("name"), _affine)

    def call(self, x, slot_mask=None):
        dtype = x.dtype
        if self.transform is _gauss_rank:
            # float64, as QuantileScaler: a tied (discrete) value must land in the middle of its band of
            # equal quantiles, and in float32 a value or a log1p 1 ulp off the band moves it to the edge
            x = tf.cast(x, tf.float64)
        if self.log_columns:
            columns = np.zeros(x.shape[-1], bool)
            columns[self.log_columns] = True
            x = tf.where(columns, tf.math.log1p(tf.maximum(x, 0.0)), x)
        out = tf.cast(self.transform(self, x), dtype)
        if slot_mask is not None:
            out = out * tf.cast(slot_mask, out.dtype)[..., None]
        return out

    def get_config(self):
        return {**super().get_config(), "scaler_config": self.scaler_config}
