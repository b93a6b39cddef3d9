"""From a configuration to a trained model in a run directory (``tfp-anomaly train``).

1. The data: :func:`tfp_anomaly.inputs.prepare_data` (background read, split, model input, scaler).
2. :func:`build_model`: the model of ``model.type`` (a name of :data:`tfp_anomaly.models.MODELS`),
   its options checked against the class signature and the network's options against its builders,
   with the fitted scaler inside it. The one model builder: training, the
   :class:`tfp_anomaly.detector.AnomalyDetector` and the tuner's hypermodel all build through it.
3. :func:`run`: train into a :class:`tfp_anomaly.rundir.RunDirectory` (checkpoints after every
   epoch, the final model, the summary with the latent diagnostics of a VAE on the validation part:
   :mod:`tfp_anomaly.diagnostics`), resuming an interrupted run of the same configuration.
"""
from __future__ import annotations

import copy
import time

from . import config as config_lib
from ._signature import constructor_keywords
from .diagnostics import has_latent_posterior, latent_diagnostics
from .inputs import object_grid, prepare_data
from .rundir import RunDirectory


def model_class(config: dict):
    """The registered model class of ``model.type``."""
    from .models import MODELS

    return MODELS.lookup(config["model"].get("type"), "model.type")


#: constructor arguments set by the run itself, not by the ``model`` section
SET_BY_RUN = {"input_shape", "seed", "scaler", "stage"}  # stage: by training.flow_training


def model_options(cls) -> set[str]:
    """The options the ``model`` section may set: the class's keyword arguments (its own and its
    bases'), less :data:`SET_BY_RUN` (``training.seed``, the scaler fitted on the training part),
    plus ``ensemble`` (K members, :func:`tfp_anomaly.models.make_model`)."""
    return (constructor_keywords(cls, package="tfp_anomaly") - SET_BY_RUN) | {"ensemble"}


def _with_grid_blocks(config: dict, options: dict, input_shape) -> dict:
    """Set and graph networks learn each object's type from the grid's block layout: fill
    ``network.blocks`` from the ``grid`` section unless the configuration gives it."""
    from .models.networks import network_entry

    network = dict(options.get("network") or {})
    if not network_entry(network.get("type", "dense")).needs_blocks or "blocks" in network or len(input_shape) != 2:
        return options
    network["blocks"] = object_grid(config).block_sizes
    return {**options, "network": network}


def check_model(config: dict):
    """The model class of ``model.type``, after checking the ``model`` section against it: every option
    a keyword of the class (:func:`model_options`) and every ``model.network`` option one its builders
    take. Cheap: call it before reading data."""
    from .models.networks import check_network

    cls = model_class(config)
    options = {k: v for k, v in config["model"].items() if k != "type"}
    known = model_options(cls)
    unknown = sorted(set(options) - known)
    if unknown:
        raise config_lib.ConfigError(f"model: unknown option {unknown[0]!r} for model type "
                                     f"{config['model']['type']!r}; options: {', '.join(sorted(known))}")
    check_network(options.get("network") or {})
    return cls


def build_model(config: dict, input_shape, scaler_config: dict | None):
    """The configured model (:func:`check_model`), the fitted scaler inside it, its weights initialised
    from ``training.seed``; a :class:`tfp_anomaly.models.Ensemble` for ``model.ensemble: K``."""
    import keras

    from .models import make_model

    cls = check_model(config)
    options = _with_grid_blocks(config, {k: v for k, v in config["model"].items() if k != "type"}, input_shape)
    seed = int(config["training"]["seed"])
    keras.utils.set_random_seed(seed)  # weight initialisation
    model = make_model(cls, tuple(input_shape), scaler=scaler_config, seed=seed, **options)
    model.build()
    return model


def _callbacks(config: dict, run_dir) -> list:
    import keras

    training, callbacks = config["training"], []
    stopping = training.get("early_stopping")
    if stopping:
        options = {"monitor": "val_loss", "restore_best_weights": True,
                   **({"patience": stopping} if isinstance(stopping, int) else stopping)}
        callbacks.append(keras.callbacks.EarlyStopping(**options))
    if training.get("tensorboard"):
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")))
    return callbacks


#: options that may change between an interrupted run and its continuation (train longer, quieter)
RESUMABLE_CHANGES = (("training", "epochs"), ("training", "verbose"))


def _comparable(config: dict) -> dict:
    config = copy.deepcopy(config)
    for section, key in RESUMABLE_CHANGES:
        config.get(section, {}).pop(key, None)
    return config


def _earlier_train_seconds(run: RunDirectory) -> float:
    """Training time of the calls before this one that continued the same run (the summary of the last
    completed call, when the checkpoint is past epoch 0): ``train_seconds`` adds up over resumptions
    and stays when a finished run is reused."""
    if run.read_state().get("epoch", 0) == 0:
        return 0.0
    return float(run.read_summary().get("train_seconds", 0.0))


def _fit(config: dict, run: RunDirectory, model, prepared, callbacks):
    from .models.training import train

    training = config["training"]
    return train(model, prepared.parts["train"], prepared.parts["val"], run_dir=run,
                 epochs=int(training["epochs"]), batch_size=int(training["batch_size"]),
                 seed=int(training["seed"]), learning_rate=float(training["learning_rate"]),
                 clipnorm=training["clipnorm"], verbose=training["verbose"], jit_compile=training["jit_compile"],
                 steps_per_execution=int(training["steps_per_execution"]),
                 flow_training=training["flow_training"], first_stage_epochs=training["first_stage_epochs"],
                 callbacks=list(callbacks) + _callbacks(config, run.path))


def run(config: dict, run_dir, overwrite: bool = False, callbacks=()) -> dict:
    """Train the configured model into ``run_dir`` (a :class:`tfp_anomaly.rundir.RunDirectory`) and
    return the summary (also in ``summary.json``)."""
    run = RunDirectory(run_dir)
    check_model(config)
    run.claim(config, overwrite, comparable=_comparable)
    prepared = prepare_data(config)
    run.write_json(run.DATA, prepared.report)
    run.write_split(prepared.split)
    model = build_model(config, prepared.input_shape, prepared.scaler.get_config())
    earlier = _earlier_train_seconds(run)
    start = time.perf_counter()
    model, history = _fit(config, run, model, prepared, callbacks)
    seconds = time.perf_counter() - start
    run.save_model(model)
    logs = {k: [float(v) for v in values] for k, values in history.history.items()}
    state = run.read_state()
    summary = {"model": config["model"]["type"], "input_shape": list(prepared.input_shape),
               "parameters": int(model.count_params()), "epochs_done": state.get("epoch", 0),
               "epochs_this_call": len(history.epoch),
               "train_seconds": round(earlier + seconds, 2), "final": {k: v[-1] for k, v in logs.items() if v},
               "best_val_loss": state.get("best"), "events": prepared.report["split"]}
    if has_latent_posterior(model):
        seed = int(config["training"]["seed"])
        summary["diagnostics"] = latent_diagnostics(model, prepared.parts["val"], seed=seed)
    run.write_json(run.SUMMARY, summary)
    return summary
