"""The flow-layer base classes and the flow registry :data:`FLOWS`.

The rules of the house (docs/design.md): Keras owns the weights, TFP is stateless math. A flow step is a
``keras.layers.Layer`` that holds its weights and conditioner sub-layers; inside ``call`` it builds
its ``tfb.Bijector`` from the current weights and the optional ``context`` and returns
``(z_out, log_det)`` with ``log_det`` of shape (batch,). ``bijector(context)`` hands the same
bijector out, e.g. for ``tfd.TransformedDistribution``.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from ..registry import Registry

tfb = tfp.bijectors


def _register_with_keras(name: str, cls: type) -> type:
    return keras.saving.register_keras_serializable(package="tfp_anomaly.flows")(cls)


#: name → flow-layer class. ``@FLOWS.register("name")`` on a :class:`FlowLayer` subclass adds a flow,
#: sets its ``flow_name`` and registers it with Keras (so ``.keras`` files load it); ``FLOWS.lookup(name)``
#: finds one.
FLOWS = Registry("flow", name_attribute="flow_name", on_register=_register_with_keras)


def per_event(log_det, z) -> tf.Tensor:
    """Broadcast a log-determinant (scalar or per event) to shape (batch,)."""
    return tf.broadcast_to(tf.cast(log_det, z.dtype), tf.shape(z)[:1])


class FlowLayer(keras.layers.Layer):
    """Base of every flow step: a Keras layer computing z_out = f(z; context) and log|det ∂f/∂z|.

    Subclasses implement ``build_flow(dim, context_dim)`` (create weights and conditioners) and
    ``bijector(context=None)`` (the ``tfb.Bijector`` f for the current weights). Then
    ``call(z, context=None)`` returns ``(f(z), log|det ∂f/∂z|)`` and, where the flow has an inverse
    (``has_inverse``), ``inverse(y, context=None)`` returns ``(f⁻¹(y), log|det ∂f⁻¹/∂y|)``.
    Shapes: ``z, y: (batch, dim)``, ``context: (batch, context_dim)``, log-dets ``(batch,)``.

    Args:
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).
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


class FlowSequence(FlowLayer):
    """Base of the flows made of sub-steps applied in order (:class:`~.chain.FlowChain`, Glow's step).

    Forward: y = f_K ∘ ⋯ ∘ f_1(z), every step given the same context; log|det ∂y/∂z| = Σ_k log|det J_k|.
    ``bijector(context)`` is the equivalent ``tfb.Chain``. Subclasses hold the steps as sub-layers and
    list them, in order, in ``parts()``.
    """

    def parts(self) -> list[FlowLayer]:
        raise NotImplementedError

    def build_flow(self, dim, context_dim):
        context = None if context_dim is None else (None, context_dim)
        for step in self.parts():
            step.build((None, dim), context)

    def call(self, z, context=None, training=None):
        total = per_event(0.0, z)
        for step in self.parts():
            z, log_det = step(z, context=context, training=training)
            total = total + log_det
        return z, total

    def bijector(self, context=None):
        return tfb.Chain([step.bijector(context) for step in reversed(self.parts())])


class AmortizedFlowLayer(FlowLayer):
    """Base of the flows whose parameters are either free weights or, amortized, a linear function
    of the context (one set per event, as in VAE posteriors).

    A subclass names its raw (unconstrained) parameters and their per-event shapes in
    ``parameter_shapes(dim)``, and the initialisers of the free weights in ``weight_initializers()``;
    ``raw_parameters(context)`` returns them for a call, and the subclass constrains them and builds its
    bijector. Free: one weight per name, of shape ``shape``, shared by all events. Amortized: one
    ``keras.layers.Dense`` (attribute ``params``) maps the context to all of them, concatenated in the
    order of ``parameter_shapes``; each comes back as ``(batch, *shape)``.

    The attribute ``params``, the weights' names, shapes and creation order are those of the saved
    models of earlier releases: keep them, or older ``.keras`` files no longer load to the same weights.

    Args:
        amortized: take the parameters from ``context: (batch, context_dim)`` per event instead of
            weights; such a layer must be called with a context.
        **kwargs: ``keras.layers.Layer`` arguments.
    """

    def __init__(self, amortized=False, **kwargs):
        super().__init__(**kwargs)
        self.amortized = bool(amortized)

    def parameter_shapes(self, dim: int) -> dict[str, tuple[int, ...]]:
        """Name → per-event shape of each raw parameter, in the order they are created and concatenated."""
        raise NotImplementedError

    def weight_initializers(self) -> dict:
        """Name → initialiser of each free weight (used when not amortized)."""
        raise NotImplementedError

    def context_initializer(self):
        """Kernel initialiser of the amortizing ``Dense``: small, so every event starts near one flow."""
        return keras.initializers.RandomNormal(stddev=0.01)

    def build_flow(self, dim, context_dim):
        shapes = self.parameter_shapes(dim)
        if self.amortized:
            width = sum(math.prod(shape) for shape in shapes.values())
            self.params = keras.layers.Dense(width, kernel_initializer=self.context_initializer())
            self.params.build((None, context_dim))
        else:
            initializers = self.weight_initializers()
            self.raw = {name: self.add_weight(shape=shape, initializer=initializers[name], name=name)
                        for name, shape in shapes.items()}

    def raw_parameters(self, context=None) -> dict[str, tf.Tensor]:
        """Name → raw parameter: ``shape`` (free weights) or ``(batch, *shape)`` (amortized)."""
        shapes = self.parameter_shapes(self.dim)
        if not self.amortized:
            return {name: tf.convert_to_tensor(self.raw[name]) for name in shapes}
        flat = tf.split(self.params(context), [math.prod(shape) for shape in shapes.values()], axis=-1)
        return {name: tf.reshape(part, (-1, *shape)) for (name, shape), part in zip(shapes.items(), flat)}

    def get_config(self):
        return {**super().get_config(), "amortized": self.amortized}
