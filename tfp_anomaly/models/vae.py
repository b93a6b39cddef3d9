"""Variational autoencoder with an optional normalizing-flow posterior.

q(z_0|x) = N(μ(x), diag σ²(x)); z_K = f_K ∘ ⋯ ∘ f_1(z_0) with a chain of the flow library, every step
given the encoder's hidden vector h as context (amortized flows take their parameters from it).
Loss per event = reconstruction + β_t · KL with

* no flow: the closed form KL(N(μ, σ²) ‖ N(0, I));
* a flow: the single-sample estimate log q_0(z_0) − Σ_k log|det J_k| − log p(z_K), p = N(0, I)
  (Rezende & Mohamed 2015, eq. 15; van den Berg et al. 2018);
* ``darkflow_compat=True``: the closed form of z_0 only, ignoring the flow terms, as the original
  DarkFlow code did (for comparisons; not a correct ELBO).

β_t = β · min(1, step / kl_warmup_steps) while training (linear KL warm-up, Bowman et al. 2016);
evaluation uses β, so validation losses of different epochs compare.

``stage`` (:mod:`tfp_anomaly.models.strategies`): ``joint``, ``vae`` (flow bypassed and frozen) or
``flow`` (only the flow trains); set by the training strategy, saved with the model.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from .. import losses
from ..flows import FlowChain
from .base import Autoencoder
from .strategies import STAGES

# log σ² is clamped so σ = exp(½ log σ²) and its square stay finite in float32
LOG_VAR_RANGE = (-12.0, 12.0)


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class VAE(Autoencoder):
    terms = ("reconstruction", "kl")

    def __init__(self, input_shape, flow=None, flow_kwargs=None, beta=1.0, kl_warmup_steps=0,
                 darkflow_compat=False, stage="joint", **kwargs):
        super().__init__(input_shape, **kwargs)
        self.flow_spec, self.flow_kwargs = flow, dict(flow_kwargs or {})
        self.beta, self.kl_warmup_steps = float(beta), int(kl_warmup_steps)
        self.darkflow_compat = bool(darkflow_compat)
        self.flow = None if not flow else FlowChain(flow, step_kwargs=self.flow_kwargs, name="flow")
        if stage not in STAGES:
            raise KeyError(f"unknown training stage {stage!r}; stages: {', '.join(STAGES)}")
        self.stage = stage

    def set_stage(self, stage: str) -> None:
        """Enter a training stage: which parts are used and trained (recompile afterwards)."""
        if stage not in STAGES:
            raise KeyError(f"unknown training stage {stage!r}; stages: {', '.join(STAGES)}")
        if stage != "joint" and self.flow is None:
            raise ValueError(f"stage {stage!r} needs a posterior flow")
        self.stage = stage
        self._apply_stage()

    def _apply_stage(self):
        _, train_flow, train_rest = STAGES[self.stage]
        for part in (self.encoder, self.decoder, getattr(self, "mu_head", None), getattr(self, "log_var_head", None)):
            if part is not None:
                part.trainable = train_rest
        if self.flow is not None:
            self.flow.trainable = train_flow

    @property
    def encoding_head(self):
        """The layer giving the encoding (μ) from the encoder's hidden vector."""
        return self.mu_head

    @property
    def flow_used(self) -> bool:
        return self.flow is not None and STAGES[self.stage][0]

    def build_heads(self):
        hidden = self.encoder.output_shape[-1]
        self.mu_head = keras.layers.Dense(self.latent_dim, name="mu")
        self.log_var_head = keras.layers.Dense(self.latent_dim, name="log_var")
        self.mu_head.build((None, hidden))
        self.log_var_head.build((None, hidden))
        if self.flow is not None:
            self.flow.build((None, self.latent_dim), (None, hidden))
        self._apply_stage()

    def encode(self, inputs, training=None):
        """(h, μ, log σ²): the encoder's hidden vector and the Gaussian posterior q(z_0|x)."""
        h = self.hidden(*self.scaled(inputs), training=training)
        return h, self.mu_head(h), tf.clip_by_value(self.log_var_head(h), *LOG_VAR_RANGE)

    def push(self, z0, h, training=None):
        """(z_K, Σ log|det J|): z_0 through the posterior flow (the identity without one, or in stage ``vae``)."""
        if not self.flow_used:
            return z0, tf.zeros_like(z0[:, 0])
        return self.flow(z0, context=h, training=training)

    def posterior_sample(self, h, mu, log_var, seed, training=None) -> dict:
        z0 = mu + tf.exp(0.5 * log_var) * tf.random.stateless_normal(tf.shape(mu), seed)
        z, log_det = self.push(z0, h, training=training)
        return {"mu": mu, "log_var": log_var, "z0": z0, "z": z, "log_det": log_det}

    def call(self, inputs, training=None):
        h, mu, log_var = self.encode(inputs, training=training)
        y = self.posterior_sample(h, mu, log_var, self.next_seed(), training=training)
        out = self.decoder(y["z"], training=training)
        return {"out": out, "reconstruction": self.reconstruction.point(out), **y}

    def score_terms(self, inputs, seed) -> dict:
        """Per-event quantities for :mod:`tfp_anomaly.scoring`, deterministic given ``seed``.

        The reconstruction is decoded from the posterior mean pushed through the flow, z = f(μ);
        the KL is the closed form without a flow and the single-sample flow estimate (drawn with
        ``seed``) with one; ``total_loss`` = reconstruction loss + β·KL; ``rz`` = Σ μ²/σ²;
        ``encoding`` = μ; ``latent`` = f(μ); ``log_prior`` = log N(f(μ); 0, I).
        """
        h, mu, log_var = self.encode(inputs, training=False)
        latent, _ = self.push(mu, h, training=False)
        out = self.decoder(latent, training=False)
        kl = self.kl(self.posterior_sample(h, mu, log_var, seed, training=False))
        terms = self.reconstruction_terms(inputs, out)
        zero = tf.zeros_like(latent)
        return {**terms, "kl": kl, "total_loss": terms["reconstruction"] + self.beta * kl,
                "rz": tf.reduce_sum(tf.square(mu) * tf.exp(-log_var), axis=-1), "encoding": mu, "latent": latent,
                "log_prior": losses.diagonal_gaussian_log_prob(latent, zero, zero)}

    def kl(self, y):
        if not self.flow_used or self.darkflow_compat:
            return losses.gaussian_kl(y["mu"], y["log_var"])
        log_q0 = losses.diagonal_gaussian_log_prob(y["z0"], y["mu"], y["log_var"])
        log_p = losses.diagonal_gaussian_log_prob(y["z"], tf.zeros_like(y["z"]), tf.zeros_like(y["z"]))
        return losses.flow_kl(log_q0, y["log_det"], log_p)

    def beta_now(self, training):
        if not training or self.kl_warmup_steps <= 0 or getattr(self, "optimizer", None) is None:
            return tf.constant(self.beta)
        step = tf.cast(self.optimizer.iterations + 1, tf.float32)
        return self.beta * tf.minimum(1.0, step / self.kl_warmup_steps)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reconstruction = self.reconstruction_loss(x, y_pred["out"])
        kl = self.kl(y_pred)
        self.report({"reconstruction": reconstruction, "kl": kl})
        return tf.reduce_mean(reconstruction + self.beta_now(training) * kl)

    def get_config(self):
        return {**super().get_config(), "flow": self.flow_spec, "flow_kwargs": self.flow_kwargs, "beta": self.beta,
                "kl_warmup_steps": self.kl_warmup_steps, "darkflow_compat": self.darkflow_compat,
                "stage": self.stage}
