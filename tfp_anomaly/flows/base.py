"""The flow-layer base class and the flow registry.

The rules of the house (DESIGN.md): Keras owns the weights, TFP is stateless math. A flow step is a
``keras.layers.Layer`` that holds its weights and conditioner sub-layers; inside ``call`` it builds
its ``tfb.Bijector`` from the current weights and the optional ``context`` and returns
``(z_out, log_det)`` with ``log_det`` of shape (batch,). ``bijector(context)`` hands the same
bijector out, e.g. for ``tfd.TransformedDistribution``.
"""
from __future__ import annotations

import keras
import tensorflow as tf

REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: register a flow layer under ``name`` and with Keras serialisation."""

    def wrap(cls):
        if name in REGISTRY:
            raise ValueError(f"flow name {name!r} registered twice")
        cls.flow_name = name
        REGISTRY[name] = cls
        return keras.saving.register_keras_serializable(package="tfp_anomaly.flows")(cls)

    return wrap


def per_event(log_det, z) -> tf.Tensor:
    """Broadcast a log-determinant (scalar or per event) to shape (batch,)."""
    return tf.broadcast_to(tf.cast(log_det, z.dtype), tf.shape(z)[:1])


class FlowLayer(keras.layers.Layer):
    """Base of every flow step.

    Subclasses implement ``build_flow(dim, context_dim)`` (create weights / conditioners) and
    ``bijector(context=None)``. ``call(z, context=None)`` returns ``(bijector.forward(z), log|det J|)``;
    ``inverse(y, context=None)`` returns ``(z, log|det J^{-1}|)`` where the flow has an inverse
    (``has_inverse``).
    """

    has_inverse = True
    #: amortized flows take their parameters from the context per event; they need a context
    amortized = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dim = None
        self.context_dim = None

    def build(self, z_shape, context_shape=None):
        self.dim = int(z_shape[-1])
        self.context_dim = None if context_shape is None else int(context_shape[-1])
        if self.amortized and self.context_dim is None:
            raise ValueError(f"{type(self).__name__} is amortized: call it with a context tensor")
        self.build_flow(self.dim, self.context_dim)
        super().build(z_shape)

    def build_flow(self, dim: int, context_dim: int | None) -> None:
        raise NotImplementedError

    # Keras rebuilds a loaded layer from this before restoring weights: keep the context shape too
    def get_build_config(self):
        return {"dim": self.dim, "context_dim": self.context_dim}

    def build_from_config(self, config):
        if config and config.get("dim") is not None:
            context = None if config.get("context_dim") is None else (None, config["context_dim"])
            self.build((None, config["dim"]), context)

    def bijector(self, context=None):
        raise NotImplementedError

    def call(self, z, context=None, training=None):
        bijector = self.bijector(context)
        y = bijector.forward(z)
        return y, per_event(bijector.forward_log_det_jacobian(z, event_ndims=1), z)

    def inverse(self, y, context=None):
        if not self.has_inverse:
            raise NotImplementedError(f"{type(self).__name__} has no inverse (see its docstring)")
        bijector = self.bijector(context)
        return bijector.inverse(y), per_event(bijector.inverse_log_det_jacobian(y, event_ndims=1), y)

    def compute_output_spec(self, z, context=None, training=None):
        return (keras.KerasTensor(z.shape, z.dtype), keras.KerasTensor(z.shape[:1], z.dtype))
