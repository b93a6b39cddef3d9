"""The Keras Tuner HyperModel of the toolkit's autoencoders.

One hypermodel serves every family: the run configuration (``model.type: vae | swae``, network,
flow, prior, training) is the fixed part and ``search.space`` (:mod:`tuning.space`) declares what
varies, so the ConvVAE/dense VAE with or without a posterior flow (family, steps, hidden size) and
the SWAE (prior, λ, projections, p) share one encoder/decoder space (conv vs dense, depth, widths,
latent dimension, learning rate, batch size) declared once in YAML (``examples/configs/search_*.yaml``).
"""
from __future__ import annotations

import copy

import keras_tuner as kt

from tfp_anomaly import config as config_lib
from tfp_anomaly.experiment import build_model
from tfp_anomaly.models.training import compile_model, fit_phases

from .space import sample_config


def compile_options(training: dict) -> dict:
    """The compile settings of a ``training`` section."""
    return {"learning_rate": float(training["learning_rate"]), "clipnorm": training["clipnorm"],
            "jit_compile": training["jit_compile"], "steps_per_execution": int(training["steps_per_execution"])}


def run_section(config: dict) -> dict:
    """The configuration without its ``search`` section: what a trial trains (and ``tfp-anomaly train`` reads)."""
    config = copy.deepcopy(config)
    config.pop("search", None)
    return config


class AutoencoderHyperModel(kt.HyperModel):
    """``build(hp)``: the configured model with the hyper-parameters of ``hp``, compiled;
    ``fit(hp, model, ...)``: trains it on the prepared training background (seeded epochs, validation
    loss on the validation background)."""

    def __init__(self, config: dict, prepared, extra_callbacks=()):
        super().__init__(name="autoencoder", tunable=True)
        self.config, self.space = run_section(config), config["search"]["space"]
        self.prepared = prepared
        self.extra_callbacks = list(extra_callbacks)

    def trial_config(self, hp) -> dict:
        config = sample_config(hp, self.config, self.space)
        config_lib.check(config, "search.space")
        return config

    def build(self, hp):
        config = self.trial_config(hp)
        model = build_model(config, self.prepared.input_shape, self.prepared.scaler.get_config())
        compile_model(model, **compile_options(config["training"]))
        return model

    def fit(self, hp, model, *args, epochs=None, initial_epoch=0, callbacks=(), **kwargs):
        """The trial's epochs, phase by phase of its ``training.flow_training`` strategy."""
        training = self.trial_config(hp)["training"]
        return fit_phases(model, self.prepared.training_part("train"), self.prepared.training_part("val"),
                          int(epochs or training["epochs"]), initial_epoch, int(training["batch_size"]),
                          int(training["seed"]), list(callbacks) + self.extra_callbacks,
                          kwargs.pop("verbose", training["verbose"]), compile_options=compile_options(training),
                          flow_training=training["flow_training"], first_stage_epochs=training["first_stage_epochs"])
