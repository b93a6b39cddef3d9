"""The fitted scaler as a Keras layer, so a saved model carries its preprocessing.

x' = (f(x) − center) / scale with f = log1p on the log columns, padded slots set to zero: the same
transform as :class:`tfp_anomaly.data.preprocessing.Scaler` (fit on the training background only),
whose ``get_config()`` this layer takes and stores in its own config.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class ScalerLayer(keras.layers.Layer):
    def __init__(self, scaler_config: dict, **kwargs):
        super().__init__(**kwargs)
        if scaler_config.get("center") is None:
            raise ValueError("ScalerLayer needs a fitted scaler (call Scaler.fit on the training background)")
        self.scaler_config = dict(scaler_config)
        self.center = np.asarray(scaler_config["center"], "float32")
        self.scale = np.asarray(scaler_config["scale"], "float32")
        self.log_columns = list(scaler_config.get("log_columns", []))

    def call(self, x, slot_mask=None):
        if self.log_columns:
            columns = np.zeros(x.shape[-1], bool)
            columns[self.log_columns] = True
            x = tf.where(columns, tf.math.log1p(tf.maximum(x, 0.0)), x)
        out = (x - self.center) / self.scale
        if slot_mask is not None:
            out = out * tf.cast(slot_mask, out.dtype)[..., None]
        return out

    def get_config(self):
        return {**super().get_config(), "scaler_config": self.scaler_config}
