"""The shared body of the autoencoders: preprocessing, encoder/decoder, reconstruction loss, metrics.

Inputs are a dict ``{"x": (batch, slots, features), "mask": (batch, slots)}`` (what
:func:`tfp_anomaly.data.make_dataset` yields) or a bare ``x`` (:mod:`tfp_anomaly.data.arrays`). The
model owns the fitted scaler (:class:`ScalerLayer`), so it is fed raw features and a saved model
carries its preprocessing. ``call`` returns a dict of tensors (reconstruction, latent quantities);
``objective`` turns it into the training loss and its terms, ``compute_loss`` reports one metric per
term. Per-event weights reach ``objective`` as ``sample_weight`` (batch,), and every per-event term of
the loss becomes the weighted mean Σ w_i ℓ_i / Σ w_i (:func:`tfp_anomaly.losses.weighted_mean`). They
come as Keras's ``sample_weight``, which Keras 3 *drops when the target is None*
(``pack_x_y_sample_weight``): give a placeholder target the models ignore, a ``tf.data`` dataset of
``(x, (), w)`` or ``model.fit(x, np.zeros(len(w)), sample_weight=w)``.
Every model has the same two inference entry points: :meth:`Autoencoder.encode` (an
:class:`Encoding`) and :meth:`Autoencoder.score_terms` (per-event quantities for
:mod:`tfp_anomaly.scoring`), compiled once per model by :meth:`ScoreTerms.compiled_score_terms`.
"""
from __future__ import annotations

from typing import NamedTuple

import keras
from keras.src.losses.loss import scale_loss_for_distribution
import tensorflow as tf

from .. import losses
from ..data.arrays import split_mask
from ..seeds import draw_counter, next_seed
from .networks import build_networks, legacy_network, network_entry
from .preprocessing import ScalerLayer


def event_weights(sample_weight):
    """Keras's ``sample_weight`` of a batch as per-event weights, a (batch,) float32 tensor; None stays
    None. The weights are not checked here (a graph cannot raise a readable error): whoever reads them
    from the data refuses negative or non-finite ones (e.g.
    :func:`tfp_anomaly.report.metrics.check_weights`)."""
    if sample_weight is None:
        return None
    return tf.reshape(tf.cast(sample_weight, tf.float32), [-1])


class Encoding(NamedTuple):
    """What :meth:`Autoencoder.encode` gives for a batch, the same fields for every model.

    Args:
        hidden: (batch, hidden) the encoder network's output h (the context of amortized flows).
        loc: (batch, latent_dim) the encoding e(x): the posterior mean μ of a VAE, z of a SWAE.
        log_var: (batch, latent_dim) log σ² of a VAE's Gaussian posterior q(z_0|x); None for a
            deterministic encoder (SWAE).
    """

    hidden: tf.Tensor
    loc: tf.Tensor
    log_var: tf.Tensor | None = None


class ScoreTerms:
    """Mixin of every model :mod:`tfp_anomaly.scoring` scores: ``score_terms(inputs, seed)`` compiled
    with ``tf.function`` once per model object and kept by the model (one trace per input structure)."""

    def compiled_score_terms(self):
        """``tf.function(self.score_terms)``, created on first use."""
        fn = self.__dict__.get("_compiled_score_terms")
        if fn is None:
            fn = tf.function(self.score_terms, reduce_retracing=True)
            # set through __dict__: Keras tracks attributes set on a model, a tf.function is no state of it
            self.__dict__["_compiled_score_terms"] = fn
        return fn


class Autoencoder(ScoreTerms, keras.Model):
    """Base of the autoencoders: x → scaler → encoder network → latent head(s) → decoder network → x̂.

    A subclass adds its latent heads (``build_heads``), its :meth:`encode`, its ``call`` and its
    training :meth:`objective`; this class owns the scaler, the networks, the reconstruction loss
    (:mod:`tfp_anomaly.losses`), the seeded random stream and the metrics.

    Args:
        input_shape: shape of one event: ``(slots, features)`` for an object grid, ``(features,)`` for
            a feature vector.
        latent_dim: dimension d of the latent space.
        network: ``{"type": <a name of tfp_anomaly.models.NETWORKS>, **options}`` (default a dense MLP).
        reconstruction: the reconstruction loss, a name of :data:`tfp_anomaly.losses.RECONSTRUCTIONS`
            or ``{"name": ..., **options}``.
        scaler: the fitted scaler's config (:class:`ScalerLayer`), applied inside the model; None for
            input that is already scaled.
        seed: seed of the model's stateless random stream (posterior samples, prior samples, SW
            directions): a saved or checkpointed model resumes it.
    """

    #: names of the per-event loss terms, reported as metrics
    terms: tuple = ()

    def __init__(self, input_shape, latent_dim=15, network=None, reconstruction="mse", scaler=None, seed=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(s) for s in input_shape)
        self.latent_dim = int(latent_dim)
        self.network = dict(network or {"type": "dense"})
        self.reconstruction_spec = reconstruction
        self.reconstruction = losses.get_reconstruction(reconstruction)
        self.reconstruction.create_weights(self, self.event_shape[-1])
        self.scaler_config = scaler
        self.seed = int(seed)
        self.preprocess = None if scaler is None else ScalerLayer(scaler, name="scaler")
        self.encoder, self.decoder = build_networks(self.network, self.event_shape, self.latent_dim,
                                                    self.reconstruction.params_per_feature)
        # the random stream (posterior samples, SW directions, prior samples) is stateless, seeded by
        # (seed, draws so far) with the counter a model weight: a saved or checkpointed model resumes it
        self.draws = draw_counter(self, "draws")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.terms}

    def next_seed(self) -> tf.Tensor:
        """A fresh stateless seed (shape (2,), int32) for every random draw."""
        return next_seed(self.seed, self.draws)

    @property
    def metrics(self):
        return super().metrics + list(self.trackers.values())

    def scaled(self, inputs):
        """(scaled x, slot mask). A bare object matrix gets the mask of its rows that are not all
        zero (the grid pads with zero rows; a real object has E, pT > 0)."""
        x, mask = split_mask(inputs)
        x = tf.convert_to_tensor(x, tf.float32)
        if mask is None and len(self.event_shape) == 2:
            mask = tf.reduce_any(tf.not_equal(x, 0.0), axis=-1)
        return (x if self.preprocess is None else self.preprocess(x, slot_mask=mask)), mask

    def hidden(self, x, mask, training=None):
        """The encoder's hidden vector h of scaled x; set and graph encoders also take the slot mask."""
        if network_entry(self.network.get("type", "dense")).needs_blocks:
            return self.encoder([x, tf.cast(mask, x.dtype)], training=training)
        return self.encoder(x, training=training)

    def build(self, input_shape=None):
        if self.built:
            return
        self.build_heads()
        x = tf.zeros((2,) + self.event_shape)
        self.call({"x": x, "mask": tf.ones((2,) + self.event_shape[:1], bool)} if len(self.event_shape) == 2 else x)
        self.built = True

    def build_heads(self):
        raise NotImplementedError

    def encode(self, inputs, training=None) -> Encoding:
        """The :class:`Encoding` of a batch: hidden vector h, encoding e(x) and (VAE) log σ²."""
        raise NotImplementedError

    def reconstruction_loss(self, inputs, out):
        x, mask = self.scaled(inputs)
        return self.reconstruction.loss(x, out, mask)

    def reconstruction_terms(self, inputs, out) -> dict:
        """The model's own reconstruction loss, the masked MSE of its point reconstruction, the mean
        square of the scaled input itself (``input_norm``) and, on object matrices, the Chamfer distance
        between input and reconstructed rows; all on scaled features."""
        x, mask = self.scaled(inputs)
        point = self.reconstruction.point(out)
        mse = losses.MaskedMSE()
        terms = {"reconstruction": self.reconstruction.loss(x, out, mask), "mse": mse.loss(x, point, mask),
                 "input_norm": mse.loss(x, tf.zeros_like(x), mask)}
        if len(self.event_shape) == 2:
            terms["chamfer"] = losses.chamfer_distance(x, point)  # padded slots are zero rows (losses.Chamfer)
        return terms

    def score_terms(self, inputs, seed) -> dict:
        raise NotImplementedError

    def objective(self, x, y_pred, training=True, step=None, sample_weight=None):
        """(the batch's scalar loss, {term: per-event or batch values}); ``step``: optimiser steps so far;
        ``sample_weight``: None, or per-event weights (batch,) ≥ 0 that turn every batch mean of a
        per-event term into the weighted mean Σ w_i ℓ_i / Σ w_i (None is exactly the unweighted loss)."""
        raise NotImplementedError

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The training loss of a batch, Keras's hook: ``sample_weight`` (Keras's per-event weights,
        any shape with one entry per event) is passed to :meth:`objective` as a (batch,) float tensor."""
        step = self.optimizer.iterations if getattr(self, "optimizer", None) is not None else None
        weights = event_weights(sample_weight)
        loss, terms = self.objective(x, y_pred, training, step, sample_weight=weights)
        self.report(terms, weights)
        # Keras's convention under a tf.distribute strategy: each replica's loss divided by the number of
        # replicas, so that the summed gradients are those of the whole batch (identity in one process)
        return scale_loss_for_distribution(loss)

    def report(self, values: dict, sample_weight=None):
        """Update the term metrics. A per-event term is averaged over the epoch with the event weights
        (Σ w ℓ / Σ w over every event seen; the plain mean without weights); a batch-level term (the
        SWAE's sliced distance) is the unweighted mean of its batch values."""
        for name, value in values.items():
            if sample_weight is not None and value.shape.rank:
                self.trackers[name].update_state(value, sample_weight=sample_weight)
            else:
                self.trackers[name].update_state(value)

    @classmethod
    def from_config(cls, config):
        # a model saved before network options were checked may hold options its builders ignored
        return cls(**{**config, "network": legacy_network(config.get("network"))})

    def get_config(self):
        return {**super().get_config(), "input_shape": list(self.event_shape), "latent_dim": self.latent_dim,
                "network": self.network, "reconstruction": self.reconstruction_spec, "scaler": self.scaler_config,
                "seed": self.seed}
