"""A flow density model: p(x | c) = N(g⁻¹(x; c); 0, I) · |det ∂g⁻¹/∂x| for a chain g of flow steps.

The chain's bijector g maps base samples u ~ N(0, I) to data x (the sampling direction), so the
density uses g⁻¹: for MAF and autoregressive splines that is one conditioner pass (Papamakarios et
al. 2017), for couplings both directions are one pass, for IAF it is d passes. Evaluation goes
through ``tfd.TransformedDistribution(base, chain.bijector(context))``, built inside ``call`` from
the current Keras weights (docs/design.md: Keras owns the weights, TFP is stateless math).

Used as a density estimator of features or latent codes, and as a learned prior. Flows without an
inverse (Sylvester) cannot evaluate a density and are refused.
"""
from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from .chain import FlowChain

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="tfp_anomaly.flows")
class FlowDensity(keras.Model):
    """A normalizing-flow density model with a standard normal base.

    log p(x | c) = log N(g⁻¹(x; c); 0, I) + log|det ∂g⁻¹/∂x|, with g the bijector of a
    :class:`~.chain.FlowChain` (the sampling direction u → x). ``call(x, context=None)`` returns
    log p(x | context) and adds the mean negative log-likelihood as the model loss, so
    ``compile(optimizer)`` + ``fit(x)`` trains by maximum likelihood; ``sample(n, context=None,
    seed=None)`` draws x = g(u), u ~ N(0, I). The chain must have an inverse (no Sylvester steps).

    Shapes: x: (batch, dim) → log_prob: (batch,); context: (batch, context_dim).

    Args:
        spec: the chain's steps, as for :class:`~.chain.FlowChain`.
        step_kwargs: options for every step that accepts them, as for :class:`~.chain.FlowChain`.
        **kwargs: ``keras.Model`` arguments.

    References:
        Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow for Density Estimation,
        arXiv:1705.07057; Dinh, Sohl-Dickstein & Bengio (2016), Density estimation using Real NVP,
        arXiv:1605.08803.
    """

    def __init__(self, spec="realnvp*4", step_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.step_kwargs = spec, dict(step_kwargs or {})
        self.flow = FlowChain(spec, step_kwargs=self.step_kwargs, name="flow")
        if not self.flow.has_inverse:
            names = sorted({s.flow_name for s in self.flow.steps if not s.has_inverse})
            raise ValueError(f"a density needs an invertible flow; {', '.join(names)} has no inverse")

    def build(self, x_shape, context_shape=None):
        self.flow.build(x_shape, context_shape)
        super().build(x_shape)

    def distribution(self, context=None) -> tfd.Distribution:
        """The model as a TFP distribution (event shape (dim,)), for the current weights."""
        base = tfd.MultivariateNormalDiag(loc=tf.zeros(self.flow.dim))
        return tfd.TransformedDistribution(base, self.flow.bijector(context))

    def call(self, x, context=None, training=None):
        log_prob = self.distribution(context).log_prob(x)
        self.add_loss(-tf.reduce_mean(log_prob))
        return log_prob

    def sample(self, n: int, context=None, seed=None):
        return self.distribution(context).sample(n, seed=seed)

    def get_config(self):
        return {**super().get_config(), "spec": self.spec, "step_kwargs": self.step_kwargs}
