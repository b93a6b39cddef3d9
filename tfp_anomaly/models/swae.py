"""Sliced-Wasserstein autoencoder (Kolouri, Pope, Martin & Rohde 2018, arXiv:1804.01947).

A deterministic encoder z = e(x); loss = reconstruction + λ · SW_p^p(z_batch, prior samples), the
sliced distance along ``num_projections`` random unit directions drawn afresh every step, and a fresh
batch of prior samples of the same size. The prior is any of :mod:`tfp_anomaly.priors`, or a user's
``tfd.Distribution``, saved with the model by its class and parameters
(:func:`tfp_anomaly.priors.serialize_distribution`).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from .. import losses, priors
from .base import Autoencoder, Encoding


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class SWAE(Autoencoder):
    """Sliced-Wasserstein autoencoder: a deterministic encoder z = e(x) pushed toward a prior p(z).

    Loss per batch B (Kolouri et al. 2018, eq. 13):

        L = mean_{x∈B} ℓ(x, d(e(x))) + λ · SW_p^p({e(x)}_B, {z'_j ~ p}),
        SW_p^p(A, C) = (1/L) Σ_l (1/|B|) Σ_i |sort(θ_lᵀA)_i − sort(θ_lᵀC)_i|^p,

    with ℓ the reconstruction loss and θ_1..θ_L unit directions drawn uniformly on the sphere afresh
    every step (stateless, from the model's seeded stream). Any prior one can *sample* works.

    With per-event weights w (Keras ``sample_weight``) the mean over B is Σ_i w_i ℓ_i / Σ_i w_i and
    the encodings enter the sliced distance as the weighted empirical measure Σ_i w_i δ_{e(x_i)} / Σ w
    (:func:`tfp_anomaly.losses.weighted_sliced_wasserstein_power`), still against |B| prior samples.
    The ``reconstruction`` metric is then a weighted mean; ``sliced_wasserstein`` is the mean of the
    batch values.

    Args:
        input_shape, latent_dim, network, reconstruction, scaler, seed: as :class:`Autoencoder`.
        prior: a name of :data:`tfp_anomaly.priors.PRIORS` (``gaussian``, ``uniform``, ``ring``,
            ``sphere``, ``mixture``, …) or a ``tfd.Distribution`` with event shape (latent_dim,) (saved
            with the model by its class and constant parameters: a public TFP class, or one registered
            in :data:`tfp_anomaly.priors.DISTRIBUTIONS`), or its saved form (a mapping with ``class``).
        prior_kwargs: keyword arguments of the named prior.
        lam: λ, the weight of the sliced-Wasserstein term.
        num_projections: L, the number of random directions per step.
        p: the order p of the sliced distance.

    References:
        Kolouri, Pope, Martin & Rohde, "Sliced-Wasserstein Autoencoder: An Embarrassingly Simple
        Generative Model", arXiv:1804.01947 (2018).
    """

    terms = ("reconstruction", "sliced_wasserstein")

    def __init__(self, input_shape, prior="gaussian", prior_kwargs=None, lam=1.0, num_projections=50, p=2.0,
                 **kwargs):
        super().__init__(input_shape, **kwargs)
        self.prior_kwargs = dict(prior_kwargs or {})
        self.prior = priors.get_prior(prior, self.latent_dim, **self.prior_kwargs)
        self.named_prior = isinstance(prior, str)
        # a user's distribution is shown as custom:<its name>; its log-density is scored when it has one
        self.prior_name = prior if self.named_prior else f"custom:{self.prior.name}"
        self.prior_log_prob = (priors.has_informative_density(prior) if self.named_prior
                               else priors.has_log_prob(self.prior))
        self.lam, self.num_projections, self.p = float(lam), int(num_projections), float(p)

    def build_heads(self):
        self.z_head = keras.layers.Dense(self.latent_dim, name="z")
        self.z_head.build((None, self.encoder.output_shape[-1]))

    @property
    def encoding_head(self):
        """The layer giving the encoding z from the encoder's hidden vector."""
        return self.z_head

    def encode(self, inputs, training=None) -> Encoding:
        """``Encoding(h, z)``: the encoder's hidden vector and the deterministic encoding z = e(x)."""
        h = self.hidden(*self.scaled(inputs), training=training)
        return Encoding(h, self.z_head(h))

    def call(self, inputs, training=None):
        z = self.encode(inputs, training=training).loc
        out = self.decoder(z, training=training)
        return {"out": out, "reconstruction": self.reconstruction.point(out), "z": z}

    def score_terms(self, inputs, seed=None) -> dict:
        """Per-event quantities for :mod:`tfp_anomaly.scoring` (deterministic): the reconstruction
        terms, ``encoding`` = ``latent`` = z and, when the prior has an informative density
        (:func:`tfp_anomaly.priors.has_informative_density`; a user's distribution when it has a
        ``log_prob``), ``log_prior`` = log p(z)."""
        z = self.encode(inputs, training=False).loc
        terms = {**self.reconstruction_terms(inputs, self.decoder(z, training=False)), "encoding": z, "latent": z}
        if self.prior_log_prob:
            terms["log_prior"] = self.prior.log_prob(z)
        return terms

    def sliced_wasserstein(self, z, sample_weight=None):
        """SW_p^p between the encodings z (batch, d), weighted by ``sample_weight`` (batch,) when given,
        and as many fresh prior samples, along ``num_projections`` fresh directions."""
        target = tf.cast(self.prior.sample(tf.shape(z)[0], seed=self.next_seed()), z.dtype)
        directions = losses.random_directions(self.num_projections, self.latent_dim, self.next_seed())
        if sample_weight is None:
            return losses.sliced_wasserstein(z, target, directions, self.p) ** self.p
        return losses.weighted_sliced_wasserstein_power(z, target, directions, sample_weight, self.p)

    def objective(self, x, y_pred, training=True, step=None, sample_weight=None):
        """(loss, {"reconstruction": (batch,), "sliced_wasserstein": scalar}) of the class docstring,
        weighted by ``sample_weight`` (batch,) when given."""
        reconstruction = self.reconstruction_loss(x, y_pred["out"])
        sw = self.sliced_wasserstein(y_pred["z"], sample_weight)
        return (losses.weighted_mean(reconstruction, sample_weight) + self.lam * sw,
                {"reconstruction": reconstruction, "sliced_wasserstein": sw})

    def get_config(self):
        prior = self.prior_name if self.named_prior else priors.serialize_distribution(self.prior)
        return {**super().get_config(), "prior": prior, "prior_kwargs": self.prior_kwargs,
                "lam": self.lam, "num_projections": self.num_projections, "p": self.p}
