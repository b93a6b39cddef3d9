"""From a configuration to a trained model in a run directory (``tfp-anomaly train``).

1. The data: :func:`tfp_anomaly.inputs.prepare_data` (background read, split, model input, scaler).
2. :func:`build_model`: the model of ``model.type`` (a name of :data:`tfp_anomaly.models.MODELS`),
   its options checked against the class signature and the network's options against its builders,
   with the fitted scaler inside it. The one model builder: training, the
   :class:`tfp_anomaly.detector.AnomalyDetector` and the tuner's hypermodel all build through it.
3. :func:`run`: train into a :class:`tfp_anomaly.rundir.RunDirectory` (checkpoints after every
   epoch, the final model, the summary with the latent diagnostics of a VAE on the validation part:
   :mod:`tfp_anomaly.diagnostics`), resuming an interrupted run of the same configuration.

Everything that can be checked without reading data is checked before the run directory is touched
(:func:`check_before_run`: the configuration's keys and values, the model options, the background
files, the run directory), and a run that fails before its first epoch leaves no trace: the corrected
command is never refused as "a run of a different configuration".
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import time
from pathlib import Path

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


def _check_flow(options: dict) -> None:
    """``model.flow`` parses and its entries' options exist (:func:`tfp_anomaly.flows.chain.check_options`);
    every ``model.flow_kwargs`` option is taken by a step of the chain."""
    from .flows.chain import check_options

    flow = options.get("flow")
    if not flow:
        return
    try:
        check_options(flow)
    except TypeError as err:
        raise config_lib.UnknownOptionError(f"model.flow: {err}") from None
    except ValueError as err:
        raise config_lib.ConfigError(f"model.flow: {err}") from None
    try:
        check_options(flow, options.get("flow_kwargs") or {})
    except TypeError as err:
        raise config_lib.UnknownOptionError(f"model.flow_kwargs: {err}") from None


def _check_prior(cls, options: dict) -> None:
    """``model.prior`` is a registered prior (or a saved distribution) and every ``model.prior_kwargs``
    option is an argument of its factory."""
    from . import priors

    prior = options.get("prior", inspect.signature(cls.__init__).parameters["prior"].default)
    kwargs = options.get("prior_kwargs") or {}
    if not isinstance(prior, (str, dict)):
        return  # a tfd.Distribution given in Python: the model checks its event shape
    if isinstance(prior, dict):
        try:
            priors.deserialize_distribution(prior)
        except (TypeError, ValueError) as err:
            raise config_lib.ConfigError(f"model.prior: not a prior name nor a saved distribution ({err})") from None
        if kwargs:
            raise config_lib.ConfigError("model.prior_kwargs: only for a prior given by name")
        return
    accepted = priors.prior_options(prior)  # an unknown name: "model.prior: unknown prior ...; available: ..."
    unknown = sorted(set(kwargs) - accepted, key=str)
    if unknown:
        raise config_lib.UnknownOptionError(f"model.prior_kwargs: unknown option {unknown[0]!r} of prior {prior!r}; "
                                            f"its options: {', '.join(sorted(accepted)) or 'none'}")


def _check_reconstruction(options: dict) -> None:
    from .losses import get_reconstruction

    if "reconstruction" not in options:
        return
    try:
        get_reconstruction(options["reconstruction"])
    except TypeError as err:
        raise config_lib.UnknownOptionError(f"model.reconstruction: {err}") from None


def check_model(config: dict):
    """The model class of ``model.type``, after checking the ``model`` section against it: every option
    a keyword of the class (:func:`model_options`) of the type :data:`tfp_anomaly.config.MODEL_OPTIONS`
    gives it, every ``model.network`` option one its builders take, the flow spec and every
    ``model.flow_kwargs`` option one its steps take, the prior and its ``model.prior_kwargs``, the
    reconstruction. Cheap (no layer is made): call it before reading data."""
    from .models.networks import check_network

    if not isinstance(config.get("model"), dict):
        raise config_lib.ConfigError(f"no 'model' section (a mapping, at least model.type: vae or swae), "
                                     f"got {config.get('model')!r}")
    config_lib.check_values(config, "configuration", only=["model"])
    cls = model_class(config)
    options = {k: v for k, v in config["model"].items() if k != "type"}
    known = model_options(cls)
    unknown = sorted(set(options) - known)
    if unknown:
        raise config_lib.ConfigError(f"model: unknown option {unknown[0]!r} for model type "
                                     f"{config['model']['type']!r}; options: {', '.join(sorted(known))}")
    check_network(options.get("network") or {})
    if "flow" in known:
        _check_flow(options)
    if "prior" in known:
        _check_prior(cls, options)
    _check_reconstruction(options)
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


def _callbacks(config: dict, run_dir, chief: bool = True) -> list:
    import keras

    training, callbacks = config["training"], []
    stopping = training.get("early_stopping")
    if stopping:
        options = {"monitor": "val_loss", "restore_best_weights": True,
                   **({"patience": stopping} if isinstance(stopping, int) else stopping)}
        callbacks.append(keras.callbacks.EarlyStopping(**options))
    if training.get("tensorboard") and chief:  # the chief alone writes the run directory
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")))
    return callbacks


#: options that may change between an interrupted run and its continuation (train longer, quieter)
RESUMABLE_CHANGES = (("training", "epochs"), ("training", "verbose"), ("training", "strategy"))


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


def _fit(config: dict, run: RunDirectory, model, prepared, callbacks, chief: bool = True):
    from .models.training import train

    training = config["training"]
    return train(model, prepared.training_part("train"), prepared.training_part("val"), run_dir=run,
                 epochs=int(training["epochs"]), batch_size=int(training["batch_size"]),
                 seed=int(training["seed"]), learning_rate=float(training["learning_rate"]),
                 clipnorm=training["clipnorm"], verbose=training["verbose"], jit_compile=training["jit_compile"],
                 steps_per_execution=int(training["steps_per_execution"]),
                 flow_training=training["flow_training"], first_stage_epochs=training["first_stage_epochs"],
                 callbacks=list(callbacks) + _callbacks(config, run.path, chief), strategy=training.get("strategy", "none"))


def _is_run_file(name: str) -> bool:
    """Whether ``name`` is a file a run directory holds (:class:`RunDirectory`'s files, temporary and
    lock files, TensorBoard logs, HLS exports)."""
    names = {value if "." in value else f"{value}.keras"
             for key, value in vars(RunDirectory).items() if key.isupper() and isinstance(value, str)}
    return name in names or name.startswith((".", "hls_")) or name == "tensorboard"


def check_run_directory(run: RunDirectory, overwrite: bool = False) -> None:
    """Refuse, before anything is written, a run directory that is a file, a directory that holds
    files but no run, and (with ``overwrite``) a run directory that holds files of something else,
    which overwriting would delete."""
    path = run.path
    if path.exists() and not path.is_dir():
        raise ValueError(f"run directory {path}: exists and is not a directory; choose another --run-dir")
    if not path.is_dir():
        parent = next(p for p in Path(path).absolute().parents if p.exists())
        if not parent.is_dir():
            raise ValueError(f"run directory {path}: {parent} is a file, not a directory; choose another --run-dir")
        return
    foreign = sorted(p.name for p in path.iterdir() if not _is_run_file(p.name))
    if foreign and not run.exists():
        raise ValueError(f"run directory {path}: holds files but no run ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); choose a new or empty --run-dir")
    if foreign and overwrite:
        raise ValueError(f"run directory {path}: --overwrite would delete files that are not part of a run "
                         f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); not deleting it")


def check_inputs(config: dict) -> None:
    """The background files of ``data.background`` exist (the embedded sample always does); nothing is read."""
    from .inputs import SAMPLE, background_paths

    if (config.get("data") or {}).get("background") != SAMPLE:
        background_paths({**config, "data": config.get("data") or {}})


def check_before_run(config: dict, run_dir, overwrite: bool = False):
    """Everything :func:`run` can check without reading data, in the order a user fixes it: the
    configuration (:func:`tfp_anomaly.config.check`), the model section (:func:`check_model`), the
    background files, the run directory (:func:`check_run_directory`). Returns the model class."""
    config_lib.check(config, "configuration")
    cls = check_model(config)
    check_inputs(config)
    check_run_directory(RunDirectory(run_dir), overwrite)
    return cls


def _unclaim(run: RunDirectory) -> None:
    """Remove what a run that failed before its first epoch wrote (its configuration, data report, split)."""
    for name in (run.CONFIG, run.DATA, run.SPLIT):
        with contextlib.suppress(FileNotFoundError):
            run.file(name).unlink()


def run(config: dict, run_dir, overwrite: bool = False, callbacks=()) -> dict:
    """Train the configured model into ``run_dir`` (a :class:`tfp_anomaly.rundir.RunDirectory`) and
    return the summary (also in ``summary.json``).

    :func:`check_before_run` runs first; a new run (or an ``overwrite``) that fails before training
    starts (reading the data, building the model, an interruption) leaves the directory as it was."""
    from . import distribute

    run = RunDirectory(run_dir)
    name = config["training"].get("strategy", "none")
    distribute.strategy(name)  # first of all: a multi-worker strategy must precede every TensorFlow operation
    if name == "multi_worker" and not distribute.worker_info().is_chief:
        return _run_as_worker(config, run, callbacks)
    check_before_run(config, run.path, overwrite)
    created, fresh = not run.path.exists(), overwrite or not run.exists()
    try:
        with run.lock():
            run.claim(config, overwrite, comparable=_comparable)
            try:
                prepared = prepare_data(config)
                model = build_model(config, prepared.input_shape, prepared.scaler.get_config())
            except BaseException:
                if fresh:
                    _unclaim(run)
                raise
            run.write_json(run.DATA, prepared.report)
            run.write_split(prepared.split)
            return _train_and_summarise(config, run, model, prepared, callbacks)
    except BaseException:
        if created and fresh:  # only ever an empty directory this call made
            with contextlib.suppress(OSError):
                Path(run.path).rmdir()
        raise


def _run_as_worker(config: dict, run: RunDirectory, callbacks) -> dict:
    """A worker other than the chief (``training.strategy: multi_worker``): the same data, model and
    training steps as the chief, whose run directory it resumes from and never writes (its checkpoints
    go to a temporary directory of its own: :func:`tfp_anomaly.models.training.train`). Returns a summary
    of its training, written nowhere."""
    config_lib.check(config, "configuration")
    check_model(config)
    prepared = prepare_data(config)
    model = build_model(config, prepared.input_shape, prepared.scaler.get_config())
    start = time.perf_counter()
    model, history = _fit(config, run, model, prepared, callbacks, chief=False)
    logs = {k: [float(v) for v in values] for k, values in history.history.items()}
    return {"model": config["model"]["type"], "input_shape": list(prepared.input_shape),
            "parameters": int(model.count_params()), "epochs_done": int(config["training"]["epochs"]),
            "epochs_this_call": len(history.epoch), "train_seconds": round(time.perf_counter() - start, 2),
            "final": {k: v[-1] for k, v in logs.items() if v}, "worker": True}


def _train_and_summarise(config: dict, run: RunDirectory, model, prepared, callbacks) -> dict:
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
        summary["diagnostics"] = latent_diagnostics(model, prepared.sample("val"), seed=seed)
    run.write_json(run.SUMMARY, summary)
    return summary
