"""Variational autoencoder with an optional normalizing-flow posterior (:class:`VAE`, whose docstring
states the loss), and its importance-weighted bound."""
from __future__ import annotations

import keras
import tensorflow as tf

from .. import losses, seeds
from ..flows import FlowChain
from .base import Autoencoder, Encoding
from .strategies import STAGES

# log σ² is clamped so σ = exp(½ log σ²) and its square stay finite in float32
LOG_VAR_RANGE = (-12.0, 12.0)


def _repeat_samples(t, samples: int):
    """(N, ...) → (K·N, ...): the batch repeated K times, sample-major (row k·N + i is event i)."""
    return tf.reshape(tf.repeat(t[None], samples, axis=0), tf.concat([[-1], tf.shape(t)[1:]], 0))


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class VAE(Autoencoder):
    """A VAE whose approximate posterior is a Gaussian pushed through a chain of flows.

    q(z_0|x) = N(μ(x), diag σ²(x)); z_K = f_K ∘ ⋯ ∘ f_1(z_0), every step given the encoder's hidden
    vector h as context (amortized flows take their parameters from it); p(z) = N(0, I). The loss per
    event is −log p(x|z_K) + β_t · KL with

    * no flow: the closed form KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_i (μ_i² + σ_i² − log σ_i² − 1);
    * a flow: the single-sample estimate log q_0(z_0) − Σ_k log|det ∂f_k/∂z_{k−1}| − log p(z_K)
      (Rezende & Mohamed 2015, eq. 15; van den Berg et al. 2018);
    * ``darkflow_compat=True``: the closed form of z_0 only, ignoring the flow terms, as the original
      DarkFlow code did (for comparisons; not a correct ELBO).

    With a likelihood reconstruction (``gaussian``, ``likelihood``: −log p(x|z) summed over the real
    features, :mod:`tfp_anomaly.losses`) and β = 1 the loss is the negative ELBO; ``mse`` (a *mean*
    over features next to a KL *summed* over latent dimensions) is kept for comparison with DarkFlow,
    whose scale lets the posterior collapse onto the prior. β_t = β · min(1, step / kl_warmup_steps)
    while training (linear KL warm-up, Bowman et al. 2016); evaluation uses β. ``free_bits`` = λ > 0
    trains on Σ_i max(λ, E_batch KL_i): a latent dimension whose KL is below λ nats costs nothing more,
    so the optimiser has no reason to close it (with a flow posterior, whose KL does not split over
    dimensions, max(λ·d, E_batch KL)). Metrics and scores use the true KL. With per-event weights
    (Keras ``sample_weight``, e.g. the Dark Machines event weights) every E_batch is the weighted mean
    Σ_i w_i (·)_i / Σ_i w_i, and the ``reconstruction`` and ``kl`` metrics are weighted means too.

    The importance-weighted bound log p(x) ≥ L_K = E[log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)],
    z_k ~ q(z|x), tightens with K and is L_1 = ELBO; :meth:`log_importance_weights` gives the log w_k,
    the score term ``iwae`` is −L̂_K.

    Args:
        input_shape, latent_dim, network, scaler, seed: as :class:`tfp_anomaly.models.Autoencoder`.
        flow: the posterior flow chain, a :class:`tfp_anomaly.flows.FlowChain` spec such as
            ``"planar*6"`` or ``"iaf, reverse, iaf"``; None for the Gaussian posterior.
        flow_kwargs: options passed to every step of the chain that accepts them (``amortized``, …).
        beta: β, the weight of the KL term.
        kl_warmup_steps: optimiser steps over which β_t ramps up linearly (0: no warm-up).
        free_bits: λ in nats per latent dimension (default 0.5; 0 trains on the plain ELBO).
        iwae_samples: K of the ``iwae`` and ``elbo`` scores and the diagnostics (K more decoder passes
            per scored event; 0 leaves them out).
        darkflow_compat: the original DarkFlow KL of z_0 only (see above).
        stage: ``joint``, ``vae`` (flow bypassed and frozen) or ``flow`` (only the flow trains); set by
            the flow-training strategy (:mod:`tfp_anomaly.models.strategies`), saved with the model.
        reconstruction: default ``"gaussian"``, a Gaussian likelihood with a learned scale per feature
            summed over the real features; ``"mse"`` is DarkFlow's mean squared error.

    Defaults keep the latent space in use on the embedded sample (``docs/benchmarks.md``: all 15 units
    active, where mse with β = 1 leaves none).

    References:
        Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114 (2013).
        Rezende & Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770 (2015).
        van den Berg, Hasenclever, Tomczak & Welling, "Sylvester Normalizing Flows", arXiv:1803.05649 (2018).
        Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", arXiv:1509.00519 (2016).
        Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow" (free bits),
        arXiv:1606.04934 (2016).
        Bowman et al., "Generating Sentences from a Continuous Space" (KL warm-up), arXiv:1511.06349 (2016).
    """

    terms = ("reconstruction", "kl")

    def __init__(self, input_shape, flow=None, flow_kwargs=None, beta=1.0, kl_warmup_steps=0, free_bits=0.5,
                 iwae_samples=16, darkflow_compat=False, stage="joint", reconstruction="gaussian", **kwargs):
        super().__init__(input_shape, reconstruction=reconstruction, **kwargs)
        self.flow_spec, self.flow_kwargs = flow, dict(flow_kwargs or {})
        self.beta, self.kl_warmup_steps = float(beta), int(kl_warmup_steps)
        self.free_bits, self.iwae_samples = float(free_bits), int(iwae_samples)
        if self.free_bits < 0 or self.iwae_samples < 0:
            raise ValueError(f"free_bits and iwae_samples must be ≥ 0, got {free_bits} and {iwae_samples}")
        self.darkflow_compat = bool(darkflow_compat)
        self.flow = None if not flow else FlowChain(flow, step_kwargs=self.flow_kwargs, name="flow")
        STAGES.lookup(stage)
        self.stage = stage

    def set_stage(self, stage: str) -> None:
        """Enter a training stage: which parts are used and trained (recompile afterwards)."""
        STAGES.lookup(stage)
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
        for variable in self.reconstruction.variables:  # the likelihood's learned scales go with the decoder
            variable.trainable = train_rest

    @property
    def encoding_head(self):
        """The layer giving the encoding (μ) from the encoder's hidden vector."""
        return self.mu_head

    @property
    def flow_used(self) -> bool:
        return self.flow is not None and STAGES[self.stage].flow_used

    def build_heads(self):
        hidden = self.encoder.output_shape[-1]
        self.mu_head = keras.layers.Dense(self.latent_dim, name="mu")
        self.log_var_head = keras.layers.Dense(self.latent_dim, name="log_var")
        self.mu_head.build((None, hidden))
        self.log_var_head.build((None, hidden))
        if self.flow is not None:
            self.flow.build((None, self.latent_dim), (None, hidden))
        self._apply_stage()

    def encode(self, inputs, training=None) -> Encoding:
        """``Encoding(h, μ, log σ²)``: the encoder's hidden vector and the Gaussian posterior q(z_0|x)."""
        h = self.hidden(*self.scaled(inputs), training=training)
        return Encoding(h, self.mu_head(h), tf.clip_by_value(self.log_var_head(h), *LOG_VAR_RANGE))

    def push(self, z0, h, training=None):
        """(z_K, Σ log|det J|): z_0 through the posterior flow (the identity without one, or in stage ``vae``)."""
        if not self.flow_used:
            return z0, tf.zeros_like(z0[:, 0])
        return self.flow(z0, context=h, training=training)

    def posterior_sample(self, h, mu, log_var, seed, training=None) -> dict:
        z0 = mu + tf.exp(0.5 * log_var) * seeds.normal(tf.shape(mu), seed)
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
        ``encoding`` = μ; ``latent`` = f(μ); ``log_prior`` = log N(f(μ); 0, I); ``iwae`` = −L̂_K, the
        importance-weighted estimate of −log p(x) with K = ``iwae_samples``, and ``elbo`` = −mean_k log w_k
        of the same draws (both as anomaly scores: higher = less likely); ``kl_per_dim``: the
        closed-form KL of q_0 per latent dimension (the diagnostics' per-dimension KL).
        """
        h, mu, log_var = self.encode(inputs, training=False)
        latent, _ = self.push(mu, h, training=False)
        out = self.decoder(latent, training=False)
        kl = self.kl(self.posterior_sample(h, mu, log_var, seed, training=False))
        terms = self.reconstruction_terms(inputs, out)
        zero = tf.zeros_like(latent)
        terms.update(kl=kl, total_loss=terms["reconstruction"] + self.beta * kl,
                     rz=tf.reduce_sum(tf.square(mu) * tf.exp(-log_var), axis=-1), encoding=mu, latent=latent,
                     log_prior=losses.diagonal_gaussian_log_prob(latent, zero, zero),
                     kl_per_dim=losses.gaussian_kl_per_dim(mu, log_var))
        if self.iwae_samples > 0:  # K decoder passes per event: iwae_samples = 0 leaves them out
            log_w = self.log_importance_weights(inputs, self.iwae_samples, seed, encoded=(h, mu, log_var))
            terms.update(iwae=-losses.log_mean_exp(log_w), elbo=-tf.reduce_mean(log_w, axis=-1))
        return terms

    def log_importance_weights(self, inputs, samples: int, seed, encoded=None):
        """(N, K) log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x) for z_k ~ q(z|x), k = 1..K, with
        log q(z_K|x) = log q_0(z_0) − Σ log|det J| for a flow posterior and −log p(x|z) the model's
        reconstruction loss (a likelihood for ``gaussian``/``likelihood``; for ``mse`` a pseudo-likelihood
        in other units, so its bound is not log p(x)). Draws with the stateless ``seed``: the same seed
        gives the same z_k. mean_k log w_k is the ELBO estimate of the same draws, logmeanexp_k the IWAE."""
        h, mu, log_var = self.encode(inputs, training=False) if encoded is None else encoded
        x, mask = self.scaled(inputs)
        n = tf.shape(mu)[0]
        h, mu, log_var = (_repeat_samples(t, samples) for t in (h, mu, log_var))
        y = self.posterior_sample(h, mu, log_var, seed, training=False)
        z = tf.reshape(y["z"], [samples, n, self.latent_dim])
        # one decoder pass per sample k: the peak memory is that of N events, not K·N
        log_px = tf.concat([-self.reconstruction.loss(x, self.decoder(z[k], training=False), mask)
                            for k in range(samples)], axis=0)
        zero = tf.zeros_like(y["z"])
        log_q = losses.diagonal_gaussian_log_prob(y["z0"], y["mu"], y["log_var"]) - y["log_det"]
        log_w = log_px + losses.diagonal_gaussian_log_prob(y["z"], zero, zero) - log_q
        return tf.transpose(tf.reshape(log_w, [samples, n]))

    def kl(self, y):
        if not self.flow_used or self.darkflow_compat:
            return losses.gaussian_kl(y["mu"], y["log_var"])
        log_q0 = losses.diagonal_gaussian_log_prob(y["z0"], y["mu"], y["log_var"])
        log_p = losses.diagonal_gaussian_log_prob(y["z"], tf.zeros_like(y["z"]), tf.zeros_like(y["z"]))
        return losses.flow_kl(log_q0, y["log_det"], log_p)

    def beta_now(self, training, step=None):
        """β_t: β, ramped up linearly over ``kl_warmup_steps`` optimiser steps while training."""
        if not training or self.kl_warmup_steps <= 0 or step is None:
            return tf.constant(self.beta)
        return self.beta * tf.minimum(1.0, tf.cast(step + 1, tf.float32) / self.kl_warmup_steps)

    def kl_objective(self, y, kl, sample_weight=None):
        """The batch's KL as the loss sees it: E_batch KL, or its free-bits version (class docstring).
        With per-event weights w (batch,) every batch mean E_batch, the per-dimension ones of free bits
        included, is the weighted mean Σ_i w_i KL_i / Σ_i w_i."""
        if self.free_bits <= 0:
            return losses.weighted_mean(kl, sample_weight)
        if not self.flow_used or self.darkflow_compat:
            per_dim = losses.weighted_mean(losses.gaussian_kl_per_dim(y["mu"], y["log_var"]), sample_weight)
            return tf.reduce_sum(tf.maximum(per_dim, self.free_bits))
        return tf.maximum(losses.weighted_mean(kl, sample_weight), self.free_bits * self.latent_dim)

    def objective(self, x, y_pred, training=True, step=None, sample_weight=None):
        """(loss, {"reconstruction": (batch,), "kl": (batch,)}): the loss of the class docstring, its
        batch means weighted by ``sample_weight`` (batch,) when given: Σ_i w_i ℓ_i / Σ_i w_i for the
        reconstruction and for the KL (:meth:`kl_objective`); the terms are per event, unweighted."""
        reconstruction = self.reconstruction_loss(x, y_pred["out"])
        kl = self.kl(y_pred)
        loss = (losses.weighted_mean(reconstruction, sample_weight)
                + self.beta_now(training, step) * self.kl_objective(y_pred, kl, sample_weight))
        return loss, {"reconstruction": reconstruction, "kl": kl}

    def get_config(self):
        return {**super().get_config(), "flow": self.flow_spec, "flow_kwargs": self.flow_kwargs, "beta": self.beta,
                "kl_warmup_steps": self.kl_warmup_steps, "free_bits": self.free_bits,
                "iwae_samples": self.iwae_samples, "darkflow_compat": self.darkflow_compat,
                "stage": self.stage}
