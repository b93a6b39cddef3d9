"""Run a search (``tfp-anomaly tune CONFIG``): on one machine, or distributed with Keras Tuner's own
chief/worker mode, resumable, with a trials table and the best model as a scoreable run directory.

Distributed (Keras Tuner's mode, not a scheduler of ours): one process with ``--role chief`` runs the
oracle (a gRPC server at ``--oracle HOST:PORT``) and hands out trials; any number of ``--role worker``
processes (each its own ``--tuner-id``) train them. Within a process, ``search.strategy: mirrored``
trains each trial on all local devices (``tf.distribute.MirroredStrategy``; XLA is then off). Every process must see the same ``--out``
directory (a shared file system on a cluster): workers write their trials' checkpoints there and the
chief, when the search is over, writes the results. The roles only set ``KERASTUNER_TUNER_ID``,
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``; ``docs/tuning.md`` has a SLURM example.

Output directory::

    OUT/search/            Keras Tuner's project (oracle state, one folder per trial): a rerun resumes it
    OUT/trials.csv         one row per trial: id, status, objective, every hyper-parameter
    OUT/best/              the best trial as a run directory (config.yaml without the search section,
                           split.npz, model.keras restored from the best epoch, summary.json):
                           ``tfp-anomaly score OUT/best`` scores it
    OUT/search_report.html the best trials and objective-vs-hyper-parameter plots (self-contained)
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from tfp_anomaly import config as config_lib
from tfp_anomaly.atomic import atomic_path
from tfp_anomaly.data import arrays
from tfp_anomaly.inputs import load_signals, model_input, prepare_data
from tfp_anomaly.rundir import RunDirectory

from .hypermodel import AutoencoderHyperModel, run_section
from .objectives import LabelledValidation, background_efficiency, direction, needs_labels
from .space import check_space

#: the keys of the ``search`` section and their defaults
DEFAULTS = {"tuner": "random", "max_trials": 10, "max_epochs": None, "factor": 3, "objective": "val_loss",
            "score": "mse", "validation_signal": None, "seed": 0, "executions_per_trial": 1, "strategy": None}

#: ``search.strategy``: how each trial trains across the devices of one process (tf.distribute)
DISTRIBUTION_STRATEGIES = {None: lambda: None, "mirrored": lambda: __import__("tensorflow").distribute.MirroredStrategy()}
ROLES = ("chief", "worker")


def tuners() -> dict:
    """The Keras Tuner classes by name (``search.tuner``)."""
    import keras_tuner as kt

    return {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband}


def search_settings(config: dict) -> dict:
    """The ``search`` section with defaults, checked (unknown keys, tuner, objective, space)."""
    section = config.get("search")
    if not section:
        raise config_lib.ConfigError("no 'search' section: a search configuration needs search.space")
    unknown = sorted(set(section) - set(DEFAULTS) - {"space"})
    if unknown:
        raise config_lib.ConfigError(f"unknown key search.{unknown[0]}; search keys: {', '.join(sorted(DEFAULTS) + ['space'])}")
    settings = {**DEFAULTS, **section}
    if settings["tuner"] not in tuners():
        raise config_lib.ConfigError(f"search.tuner: unknown tuner {settings['tuner']!r}; available: {', '.join(tuners())}")
    if settings["strategy"] not in DISTRIBUTION_STRATEGIES:
        raise config_lib.ConfigError(f"search.strategy: unknown strategy {settings['strategy']!r}; use mirrored or leave it unset")
    if needs_labels(settings["objective"]):
        if settings["objective"] != "val_auc":
            background_efficiency(settings["objective"])
        if not settings["validation_signal"]:
            raise config_lib.ConfigError(f"search.objective {settings['objective']} needs labels: set "
                                         "search.validation_signal (signal files, or sample)")
    check_space(settings["space"])
    return settings


def set_role(role: str | None, oracle: str | None, tuner_id: str | None) -> None:
    """Set Keras Tuner's distribution variables for this process (nothing without a role)."""
    if role is None:
        return
    if role not in ROLES:
        raise ValueError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    if not oracle or ":" not in oracle:
        raise ValueError("--role needs --oracle HOST:PORT (the chief's address)")
    host, port = oracle.rsplit(":", 1)
    os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"] = host, port
    os.environ["KERASTUNER_TUNER_ID"] = "chief" if role == "chief" else (tuner_id or f"worker-{os.getpid()}")


def is_chief_or_alone() -> bool:
    """True unless this process is a worker of a distributed search (keras-tuner's environment variables)."""
    return "KERASTUNER_ORACLE_IP" not in os.environ or "chief" in os.environ.get("KERASTUNER_TUNER_ID", "")


def _labelled_callback(config, settings, prepared):
    signal_config = {**config, "data": {**config["data"], "signals": settings["validation_signal"]}}
    signals = load_signals(signal_config)
    x = [model_input(config, s) for s in signals.values()]
    signal = arrays.concatenate(x)
    objective = settings["objective"]
    efficiencies = (1e-3,) if objective == "val_auc" else (background_efficiency(objective),)
    return LabelledValidation(prepared.parts["train"], prepared.parts["val"], signal, settings["score"],
                              efficiencies, seed=int(settings["seed"]))


def make_tuner(config: dict, out_dir: Path, overwrite: bool = False, prepared=None):
    """The configured Keras Tuner (``search.tuner``, objective, trials) over the hypermodel of ``config``."""
    import keras_tuner as kt

    settings = search_settings(config)
    prepared = prepared or prepare_data(run_section(config))
    if prepared.streamed:
        raise ValueError("a search holds the background in memory: its model input exceeds data.stream's limit, "
                         "so set data.max_events (trials rarely need every event) or data.stream: false")
    callbacks = [_labelled_callback(config, settings, prepared)] if needs_labels(settings["objective"]) else []
    hypermodel = AutoencoderHyperModel(config, prepared, callbacks)
    budget = ({"max_epochs": int(settings["max_epochs"] or config["training"]["epochs"]), "factor": int(settings["factor"])}
              if settings["tuner"] == "hyperband" else {"max_trials": int(settings["max_trials"])})
    tuner = tuners()[settings["tuner"]](
        hypermodel, objective=kt.Objective(settings["objective"], direction(settings["objective"])),
        seed=int(settings["seed"]), executions_per_trial=int(settings["executions_per_trial"]),
        distribution_strategy=DISTRIBUTION_STRATEGIES[settings["strategy"]](),
        directory=str(out_dir), project_name="search", overwrite=overwrite, **budget)
    return tuner, prepared


def run_search(config: dict, out_dir, overwrite: bool = False, verbose=0) -> dict | None:
    """Search, then (on the chief or alone) write the results; returns :func:`write_results`' summary,
    or None on a worker."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tuner, prepared = make_tuner(config, out_dir, overwrite)
    tuner.search(epochs=int(config["training"]["epochs"]), verbose=verbose)
    if not is_chief_or_alone():
        return None
    return write_results(tuner, config, prepared, out_dir)


def trials_table(tuner):
    """One row per trial: ``trial_id``, ``status``, ``objective`` and every hyper-parameter value."""
    import pandas as pd

    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        rows.append({"trial_id": trial_id, "status": str(trial.status), "objective": trial.score,
                     **trial.hyperparameters.values})
    table = pd.DataFrame(rows)
    ascending = tuner.oracle.objective.direction == "min"
    return table.sort_values("objective", ascending=ascending, na_position="last").reset_index(drop=True)


def write_results(tuner, config: dict, prepared, out_dir: Path) -> dict:
    """``trials.csv``, ``best/`` (a run directory) and ``search_report.html``."""
    table = trials_table(tuner)
    with atomic_path(out_dir / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    best_hp = tuner.get_best_hyperparameters(1)[0]
    with warnings.catch_warnings():  # the checkpoint's optimizer state is not needed to score or retrain
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        best_model = tuner.get_best_models(1)[0]
    best_config = tuner.hypermodel.trial_config(best_hp)
    best_run = RunDirectory(out_dir / "best")
    best_run.write_config(best_config)
    best_run.write_split(prepared.split)
    best_run.save_model(best_model)
    best = table.iloc[0]
    summary = {"model": best_config["model"]["type"], "trial_id": best["trial_id"], "objective": float(best["objective"]),
               "objective_name": tuner.oracle.objective.name, "parameters": int(best_model.count_params()),
               "events": {k: len(v) for k, v in prepared.split.items()}, "trials": len(table),
               "completed": int((table["status"] == "COMPLETED").sum())}
    best_run.write_json(RunDirectory.SUMMARY, summary)
    from .report import write_search_report

    write_search_report(table, tuner.oracle.objective.name, out_dir / "search_report.html")
    return {**summary, "table": table, "best_dir": best_run.path}
