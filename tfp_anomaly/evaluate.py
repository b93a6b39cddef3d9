"""Score a trained run directory (``tfp-anomaly score``): every applicable scoring method, fitted on the
run's training background, applied to a background the model never saw and to each signal.

The training background is read again from the run's configuration and split with its seed; the split
is checked against the run's ``split.npz``, so scores are never computed on events the model trained on
when the input files changed. The background scored is the run's held-out test split, or an
independent background (``score --background FILE ...``), as the Dark Machines challenge and real
analyses evaluate. Writes ``scores.h5`` (:class:`tfp_anomaly.report.ScoredRun`, its ``meta["background"]``
saying which background was scored) and ``scorer.json`` (the fitted scoring statistics) into the run
directory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import config as config_lib
from .data import arrays
from .inputs import file_format, load_signals, model_input, prepare_data, read_background
from .report.results import LATENT_ROWS, ScoredRun
from .rundir import RunDirectory
from .scoring import Scorer, member_terms


def describe(model, config: dict, summary: dict) -> dict:
    """The model's metadata shown in the report."""
    return {"type": config["model"]["type"], "prior": str(getattr(model, "prior_name", "") or ""),
            "flow": str(getattr(model, "flow_spec", "") or ""), "latent_dim": int(model.latent_dim),
            "parameters": int(model.count_params()), "epochs": summary.get("epochs_done"),
            "train_events": (summary.get("events") or {}).get("train"),
            "ensemble": int(getattr(model, "ensemble_size", 1)), "diagnostics": summary.get("diagnostics")}


def read_run_config(run_dir) -> dict:
    """The run's configuration (``RUN/config.yaml``), checked like any configuration
    (:func:`tfp_anomaly.config.load_resolved`): a damaged file is a
    :class:`tfp_anomaly.config.ConfigError` naming it, not a traceback."""
    run = RunDirectory(run_dir)
    if run.path.exists() and not run.path.is_dir():
        raise ValueError(f"{run.path}: not a run directory (a file, not a directory)")
    if not run.exists():
        raise FileNotFoundError(f"{run.path}: not a run directory (no {run.CONFIG})")
    return config_lib.load_resolved(run.file(run.CONFIG))


def check_run(run_dir) -> dict:
    """Check a run directory before scoring it, reading no data and loading no model: its configuration
    (:func:`read_run_config`) and its final model, there and a Keras archive. Returns the configuration."""
    import zipfile

    config = read_run_config(run_dir)
    run = RunDirectory(run_dir)
    path = run.model_file()
    if not path.exists():
        raise FileNotFoundError(f"{run.path}: no {path.name} (train the run to the end first: tfp-anomaly train)")
    if path.is_dir() or not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: corrupt or not a Keras model archive (a .keras file is a zip archive); "
                         "train the run again (tfp-anomaly train --overwrite)")
    return config


#: ``meta["background"]`` of a run scored on its own held-out test split
TEST_SPLIT = "test split"
#: the input of each kind in words, with its shape per event (error messages)
INPUT_WORDS = {"events": "events on an object grid of shape {}", "table": "a feature table of shape {}"}


def input_kind(shape: tuple) -> str:
    """``"events"`` for an object grid (rows × features per event), ``"table"`` for a feature vector."""
    return "events" if len(shape) == 2 else "table"


def describe_input(shape: tuple) -> str:
    """Model input of ``shape`` per event, in words: ``events on an object grid of shape (14, 4)``."""
    return INPUT_WORDS[input_kind(shape)].format(tuple(shape))


def check_background_files(run_dir, paths, config: dict | None = None, shape: tuple | None = None) -> list[Path]:
    """``paths`` as Paths, checked without reading them: each exists and holds the kind of input the run
    was trained on (events or a feature table). Raises naming the file and the input the run's model
    takes; ``config`` and ``shape`` default to the run's."""
    run = RunDirectory(run_dir)
    config = read_run_config(run) if config is None else config
    shape = run.input_shape() if shape is None else tuple(shape)
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise ValueError("--background: no file given")
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"background file not found: {path}")
        fmt = file_format(config, path)
        if fmt.kind != input_kind(shape):
            holds = "events" if fmt.kind == "events" else "a feature table"
            raise ValueError(f"{path}: holds {holds} ({fmt.name}), but the model of run {run_dir} takes "
                             f"{describe_input(shape)}")
    return paths


def check_input(x, shape: tuple, source: str) -> None:
    """Raise naming ``source`` when model input ``x`` ({"x", "mask"} or array) is empty or not ``shape``
    per event."""
    if arrays.n_events(x) == 0:
        raise ValueError(f"{source}: no {'background ' if source == 'background' else ''}event to score")
    if arrays.event_shape(x) != tuple(shape):
        raise ValueError(f"{source}: gives {describe_input(arrays.event_shape(x))}, but the run's model takes "
                         f"{describe_input(shape)}")


def check_columns(run: RunDirectory, table, paths) -> None:
    """Raise naming the files when a feature table's columns are not the run's (``data.json``), in order:
    the reader drops constant or duplicate columns per read, so a count alone can hide a misalignment."""
    expected = run.training_columns()
    names = getattr(table, "names", None)
    if expected is None or names is None or list(names) == list(expected):
        return
    first = next((i for i, (a, b) in enumerate(zip(names, expected)) if a != b), min(len(names), len(expected)))
    raise ValueError(f"{', '.join(str(p) for p in paths)}: columns differ from the run's training data at "
                     f"position {first} ({names[first] if first < len(names) else 'none'!r} where the run has "
                     f"{expected[first] if first < len(expected) else 'none'!r})")


def background_input(run: RunDirectory, config: dict, background) -> tuple:
    """(model input, meta) of an independent ``background``: files (read, label-1 events removed and
    counted, put on the run's grid or feature matrix) or model input as given; checked against the run."""
    shape = run.input_shape()
    if isinstance(background, (dict, np.ndarray)):
        check_input(background, shape, "background")
        return background, {"background": "model input given to score_run"}
    paths = check_background_files(run, background, config, shape)
    table, removed = read_background(config, paths)
    check_columns(run, table, paths)
    x = model_input(config, table)
    check_input(x, shape, ", ".join(str(p) for p in paths))
    return x, {"background": [str(p.resolve()) for p in paths], "background_signal_events_removed": removed}


def score_run(run_dir, methods="all", signals: dict | None = None, name: str | None = None,
              batch_size: int = 4096, seed: int = 0, max_signal_events: int | None = None,
              progress: bool = False, background=None) -> ScoredRun:
    """Score the run in ``run_dir``; ``signals`` ({name: Events/FeatureTable/array}) default to the
    configuration's ``data.signals``. ``background`` (files, or model input {"x", "mask"} / array) is
    scored instead of the run's test split; the scores are fitted on the training background either way.
    Returns the :class:`ScoredRun` (also saved as ``scores.h5``)."""
    run = RunDirectory(run_dir)
    config = check_run(run)
    independent = None if background is None else background_input(run, config, background)
    model = run.load_model()
    prepared = prepare_data(config)
    run.check_split(prepared.split)
    scorer = Scorer(methods, batch_size=batch_size, seed=seed).fit(model, prepared.parts["train"], progress=progress)
    signals = load_signals(config, max_signal_events) if signals is None else signals
    if not signals:
        raise ValueError(f"{run}: no signal to score: set data.signals in the configuration or pass --signal")
    x_background, origin = independent or (prepared.parts["test"], {"background": TEST_SPLIT})
    samples = {"background": x_background,
               **{n: (s if isinstance(s, (dict, np.ndarray)) else model_input(config, s)) for n, s in signals.items()}}
    shape = run.input_shape()
    for sample, x in list(samples.items())[1:]:  # every signal fits the model before the first is scored
        check_input(x, shape, f"signal {sample!r}")
    scores, latent = {}, {}
    for sample, x in samples.items():
        terms = scorer.terms(model, x, progress=progress)
        scores[sample] = scorer.score(model, x, terms=terms)
        first = member_terms(terms, 0) if getattr(model, "ensemble_size", 1) > 1 else terms  # plots: member 0
        latent[sample] = first["latent"][:LATENT_ROWS]
    meta = {**describe(model, config, run.read_summary()), "run_dir": str(run), **origin,
            "encoder_only": sorted(n for n, m in scorer.methods.items() if m.encoder_only)}
    background = scores.pop("background")
    result = ScoredRun(name or run.name, meta, background, scores, latent, run.read_history())
    result.save(run.scores_file)
    run.write_scorer(scorer.get_config())
    return result
