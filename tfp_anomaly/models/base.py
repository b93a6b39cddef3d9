"""The shared body of the autoencoders: preprocessing, encoder/decoder, reconstruction loss, metrics.

Inputs are a dict ``{"x": (batch, slots, features), "mask": (batch, slots)}`` (what
:func:`tfp_anomaly.data.make_dataset` yields) or a bare ``x``. The model owns the fitted scaler
(:class:`ScalerLayer`), so it is fed raw features and a saved model carries its preprocessing.
``call`` returns a dict of tensors (reconstruction, latent quantities); ``compute_loss`` turns it into
the training objective and updates one metric per loss term.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from .. import losses
from .networks import build_networks, network_entry
from .preprocessing import ScalerLayer


def split_inputs(inputs):
    if isinstance(inputs, dict):
        return inputs["x"], inputs.get("mask")
    return inputs, None


class Autoencoder(keras.Model):
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
        self.draws = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="draws")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.terms}

    def next_seed(self) -> tf.Tensor:
        """A fresh stateless seed (shape (2,), int32) for every random draw."""
        count = self.draws.assign_add(1)
        return tf.cast(tf.stack([tf.constant(self.seed, tf.int64), count]) % (2 ** 31 - 1), tf.int32)

    @property
    def metrics(self):
        return super().metrics + list(self.trackers.values())

    def scaled(self, inputs):
        """(scaled x, slot mask). A bare object matrix gets the mask of its rows that are not all
        zero (the grid pads with zero rows; a real object has E, pT > 0)."""
        x, mask = split_inputs(inputs)
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

    def objective(self, x, y_pred, training=True, step=None):
        """(the batch's scalar loss, {term: per-event or batch values}); ``step``: optimiser steps so far."""
        raise NotImplementedError

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        step = self.optimizer.iterations if getattr(self, "optimizer", None) is not None else None
        loss, terms = self.objective(x, y_pred, training, step)
        self.report(terms)
        return loss

    def report(self, values: dict):
        for name, value in values.items():
            self.trackers[name].update_state(value)

    def get_config(self):
        return {**super().get_config(), "input_shape": list(self.event_shape), "latent_dim": self.latent_dim,
                "network": self.network, "reconstruction": self.reconstruction_spec, "scaler": self.scaler_config,
                "seed": self.seed}
