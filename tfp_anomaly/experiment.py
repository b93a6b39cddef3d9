"""From a configuration to a trained model in a run directory (``tfp-anomaly train``).

Steps, each a function a user can call on its own:

1. :func:`load_background`: read the ``data.background`` files (any registered event format, or the
   LHCO high-level feature tables; ``sample`` is the embedded Pythia 8 background); events with truth
   label 1 are removed and counted, so labelled files (LHCO R&D, ADC2021 with labels) can be named
   directly: training sees background only. :func:`load_signals` reads ``data.signals`` (for scoring)
   and :func:`model_input` turns either into the model's input.
2. :func:`prepare_data`: seeded train/val/test split, the object grid (events) or the feature matrix
   (tables), and the scaler fitted on the *training* part only.
3. :func:`build_model`: the model of ``model.type`` (a name of :data:`tfp_anomaly.models.MODELS`),
   its options checked against the class signature, with the fitted scaler inside it.
4. :func:`run`: train into ``RUN_DIR`` (``config.yaml``, ``data.json``, ``split.npz``,
   ``last.keras`` + ``state.json`` after every epoch, ``best.keras``, ``history.csv``, ``model.keras``,
   ``summary.json``, with the latent diagnostics of a VAE on the validation part:
   :mod:`tfp_anomaly.diagnostics`), resuming an interrupted run of the same configuration.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from . import config as config_lib
from .atomic import atomic_path
from ._signature import constructor_keywords
from .data import ObjectGrid, Scaler, concatenate, formats, get_scaler, load_sample, read_lhco_scalars, split_indices
from .data.sample import manifest as sample_manifest
from .diagnostics import has_latent_posterior, latent_diagnostics

RUN_CONFIG = "config.yaml"


@dataclasses.dataclass
class Prepared:
    """Model-ready arrays: ``parts[name]`` is ``{"x", "mask"}`` (events) or an (N, F) array (tables)."""

    parts: dict
    input_shape: tuple
    scaler: Scaler
    split: dict
    report: dict


#: ``data.background`` / ``data.signals`` value naming the embedded Pythia sample (tfp_anomaly.data.load_sample)
SAMPLE = "sample"


def _resolve(config: dict, files, key: str) -> list[Path]:
    files = [files] if isinstance(files, str) else list(files)
    root = Path(config["data"]["dir"]) if config["data"].get("dir") else Path()
    paths = [Path(f) if Path(f).is_absolute() else root / f for f in files]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{key}: file not found: {path}")
    return paths


def background_paths(config: dict) -> list[Path]:
    """The background files of ``data.background`` resolved against ``data.dir`` (``sample``: the embedded one)."""
    files = config["data"].get("background")
    if not files:
        raise config_lib.ConfigError("data.background: no background file given")
    return _resolve(config, files, "data.background")


def read_files(config: dict, paths: list[Path], key: str):
    """(Events or FeatureTable, report) of ``paths`` read with the ``data`` section's options; one kind only."""
    data = config["data"]
    file_formats = [formats.detect(p) if data["format"] == "auto" else formats.get(data["format"]) for p in paths]
    kinds = {fmt.kind for fmt in file_formats}
    if len(kinds) > 1:
        raise ValueError(f"{key} mixes event files and feature tables: {[str(p) for p in paths]}")
    if kinds == {"table"}:
        table = read_lhco_scalars(paths, nonfinite=data["nonfinite"], **_table_options(data))
        return table, {"files": [str(p) for p in paths], "kind": "table", "reader": table.report,
                       "columns": table.names}
    parts = []
    for path, fmt in zip(paths, file_formats):
        options = {"on_error": data["on_error"]} if fmt.name == "darkmachines" else {}
        parts.append(formats.read_events(path, fmt.name, **options).to_unit(data["unit"]))
    table = concatenate(parts)
    return table, {"files": [str(p) for p in paths], "kind": "events", "unit": data["unit"],
                   "skipped_lines": int(sum(p.meta.get("n_skipped", 0) for p in parts))}


def _labels(table):
    return table.labels if hasattr(table, "labels") else table.label


def load_background(config: dict):
    """(Events or FeatureTable of background only, report)."""
    data = config["data"]
    if data.get("background") == SAMPLE:
        table = load_sample("background", unit=data["unit"])
        report = {"files": ["embedded sample: background"], "kind": "events", "unit": data["unit"], "skipped_lines": 0}
    else:
        table, report = read_files(config, background_paths(config), "data.background")
    labels = _labels(table)
    keep = np.ones(len(table), bool) if labels is None else labels == 0
    report["signal_events_removed"] = int((~keep).sum())
    table = table[np.flatnonzero(keep)]
    if data.get("max_events"):
        table = table[np.arange(min(int(data["max_events"]), len(table)))]
    report["background_events"] = len(table)
    return table, report


def signal_name(path) -> str:
    """A signal file's sample name: its name up to the first dot (``qstar.csv.gz`` → ``qstar``)."""
    return Path(path).name.split(".")[0]


def load_signals(config: dict, max_events: int | None = None) -> dict:
    """``{name: Events or FeatureTable}`` of ``data.signals``: ``sample`` (the embedded signals, one per
    process), a mapping name → file(s), or a list of files (named by file stem). Labelled files give
    their label-1 events only. An empty dict when none are configured."""
    spec = config["data"].get("signals")
    if not spec:
        return {}
    if spec == SAMPLE:
        names = [n for n, e in sample_manifest()["files"].items() if e["kind"] == "signal"]
        signals = {n: load_sample(n, unit=config["data"]["unit"]) for n in names}
    else:
        mapping = spec if isinstance(spec, dict) else {signal_name(f): f for f in
                                                       ([spec] if isinstance(spec, str) else spec)}
        signals = {}
        for name, files in mapping.items():
            table, _ = read_files(config, _resolve(config, files, f"data.signals.{name}"), f"data.signals.{name}")
            labels = _labels(table)
            signals[str(name)] = table if labels is None or not labels.any() else table[np.flatnonzero(labels == 1)]
    if max_events:
        signals = {n: t[np.arange(min(int(max_events), len(t)))] for n, t in signals.items()}
    return signals


def model_input(config: dict, table):
    """The model's input for events or tables read with this configuration: ``{"x", "mask"}`` on the
    configured object grid, or the (N, F) feature matrix."""
    if hasattr(table, "features"):
        return table.features.astype(np.float32)
    grid = ObjectGrid.from_config(config.get("grid") or {"preset": "darkflow"})
    x, mask = grid.transform(table)
    return {"x": x, "mask": mask}


#: ``data.features`` options passed to the LHCO feature-table reader (tfp_anomaly.data.read_lhco_scalars)
TABLE_OPTIONS = ("drop", "recompute_tau21")


def _table_options(data: dict) -> dict:
    features = data.get("features") or {}
    return {key: features[key] for key in TABLE_OPTIONS if key in features}


def prepare_data(config: dict) -> Prepared:
    """Read the background, split it (seeded), build the model input and fit the scaler on the training part."""
    table, report = load_background(config)
    split = split_indices(len(table), config["split"]["fractions"], config["split"]["seed"])
    if len(split.train) == 0 or len(split.val) == 0:
        raise ValueError(f"split {config['split']['fractions']} of {len(table)} events leaves an empty "
                         "training or validation part")
    if report["kind"] == "events":
        grid = ObjectGrid.from_config(config.get("grid") or {"preset": "darkflow"})
        x, mask, overflow = grid.transform(table, return_overflow=True)
        report.update(grid=grid.get_config(), objects_beyond_caps=overflow)
    else:
        x, mask = model_input(config, table), None
    scaler_options = dict(config["scaler"])
    scaler = get_scaler(scaler_options.pop("name"), **scaler_options)
    scaler.fit(x[split.train], None if mask is None else mask[split.train])
    parts = {}
    for name, index in split.parts().items():
        parts[name] = x[index] if mask is None else {"x": x[index], "mask": mask[index]}
    report["split"] = {name: len(index) for name, index in split.parts().items()}
    return Prepared(parts, tuple(x.shape[1:]), scaler, split.parts(), report)


def model_class(config: dict):
    """The registered model class of ``model.type``."""
    from .models import MODELS

    name = config["model"].get("type")
    if name not in MODELS:
        raise KeyError(f"model.type: unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name]


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
    network["blocks"] = ObjectGrid.from_config(config.get("grid") or {"preset": "darkflow"}).block_sizes
    return {**options, "network": network}


def build_model(config: dict, input_shape, scaler_config: dict | None):
    """The configured model, its options checked against the class signature, the fitted scaler inside it."""
    import keras

    from .models import make_model

    cls = model_class(config)
    options = {k: v for k, v in config["model"].items() if k != "type"}
    known = model_options(cls)
    unknown = sorted(set(options) - known)
    if unknown:
        raise config_lib.ConfigError(f"model: unknown option {unknown[0]!r} for model type "
                                     f"{config['model']['type']!r}; options: {', '.join(sorted(known))}")
    options = _with_grid_blocks(config, options, input_shape)
    seed = int(config["training"]["seed"])
    keras.utils.set_random_seed(seed)  # weight initialisation
    model = make_model(cls, tuple(input_shape), scaler=scaler_config, seed=seed, **options)
    model.build()
    return model


def _callbacks(config: dict, run_dir: Path) -> list:
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


def _claim_run_dir(run_dir: Path, config: dict, overwrite: bool) -> None:
    """Write ``config.yaml``; refuse a directory that holds a run of a different configuration
    (one that differs in more than :data:`RESUMABLE_CHANGES`) unless ``overwrite``."""
    import shutil
    import yaml

    path = run_dir / RUN_CONFIG
    if overwrite and path.exists():  # only ever delete what is recognisably a run directory
        shutil.rmtree(run_dir)
    # a run written before a key existed holds that key's default
    elif path.exists() and _comparable(config_lib.merge(config_lib.DEFAULTS, yaml.safe_load(path.read_text()))) \
            != _comparable(config_lib.merge(config_lib.DEFAULTS, config)):
        raise config_lib.ConfigError(f"{run_dir} holds a run of a different configuration ({path}); "
                                     "choose another --run-dir or pass --overwrite")
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(config_lib.dump(config))


def _write_json(path: Path, content) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content, indent=2, default=str))


def _earlier_train_seconds(run_dir: Path) -> float:
    """Training time of the calls before this one that continued the same run (the summary of the last
    completed call, when the checkpoint is past epoch 0): ``train_seconds`` adds up over resumptions
    and stays when a finished run is reused."""
    from .models.training import read_state

    path = run_dir / "summary.json"
    if not path.exists() or read_state(run_dir).get("epoch", 0) == 0:
        return 0.0
    return float(json.loads(path.read_text()).get("train_seconds", 0.0))


def run(config: dict, run_dir, overwrite: bool = False, callbacks=()) -> dict:
    """Train the configured model into ``run_dir`` and return the summary (also in ``summary.json``)."""
    from .models.training import train

    run_dir = Path(run_dir)
    _claim_run_dir(run_dir, config, overwrite)
    prepared = prepare_data(config)
    _write_json(run_dir / "data.json", prepared.report)
    with atomic_path(run_dir / "split.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **prepared.split)
    model = build_model(config, prepared.input_shape, prepared.scaler.get_config())
    training = config["training"]
    earlier = _earlier_train_seconds(run_dir)
    start = time.perf_counter()
    model, history = train(model, prepared.parts["train"], prepared.parts["val"], run_dir=run_dir,
                           epochs=int(training["epochs"]), batch_size=int(training["batch_size"]),
                           seed=int(training["seed"]), learning_rate=float(training["learning_rate"]),
                           clipnorm=training["clipnorm"], verbose=training["verbose"],
                           jit_compile=training["jit_compile"],
                           steps_per_execution=int(training["steps_per_execution"]),
                           flow_training=training["flow_training"], first_stage_epochs=training["first_stage_epochs"],
                           callbacks=list(callbacks) + _callbacks(config, run_dir))
    seconds = time.perf_counter() - start
    partial = run_dir / ".model.partial.keras"
    model.save(partial)
    partial.replace(run_dir / "model.keras")
    logs = {k: [float(v) for v in values] for k, values in history.history.items()}
    from .models.training import read_state

    summary = {"model": config["model"]["type"], "input_shape": list(prepared.input_shape),
               "parameters": int(model.count_params()), "epochs_done": read_state(run_dir).get("epoch", 0),
               "epochs_this_call": len(history.epoch),
               "train_seconds": round(earlier + seconds, 2), "final": {k: v[-1] for k, v in logs.items() if v},
               "best_val_loss": read_state(run_dir).get("best"),
               "events": prepared.report["split"]}
    if has_latent_posterior(model):
        summary["diagnostics"] = latent_diagnostics(model, prepared.parts["val"], seed=int(training["seed"]))
    _write_json(run_dir / "summary.json", summary)
    return summary
