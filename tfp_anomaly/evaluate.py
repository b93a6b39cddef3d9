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
from .data import Events, arrays
from .data.observables import compute as compute_observables
from .inputs import (background_part, file_format, model_input, observable_names, prepare_data, read_background,
                     representation, signal_part_map)
from .report.results import LATENT_ROWS, ScoredRun, scores_writer
from .streaming import MemoryPart
from .rundir import RunDirectory
from .scoring import Scorer, member_terms


def describe(model, config: dict, summary: dict) -> dict:
    """The model's metadata shown in the report."""
    return {"type": config["model"]["type"], "prior": str(getattr(model, "prior_name", "") or ""),
            "flow": str(getattr(model, "flow_spec", "") or ""), "latent_dim": int(model.latent_dim),
            "parameters": int(model.count_params()), "epochs": summary.get("epochs_done"),
            "train_events": (summary.get("events") or {}).get("train"),
            "ensemble": int(getattr(model, "ensemble_size", 1)), "diagnostics": summary.get("diagnostics"),
            "seed": int(config["training"]["seed"]), "config_digest": config_digest(config)}


#: configuration keys that do not make a run another model: its training seed (runs that differ in it
#: alone are seeds of one model, aggregated by the report), how training reports progress and the look
#: of the report
SEED_KEYS = (("training", "seed"), ("training", "verbose"), ("training", "tensorboard"), ("report", "style"))


def config_digest(config: dict) -> str:
    """16 hex digits identifying the model a configuration trains, whatever its training seed: the digest of
    the configuration without :data:`SEED_KEYS`. Runs of one digest are seeds of one model."""
    import copy

    config = copy.deepcopy(config)
    for section, key in SEED_KEYS:
        (config.get(section) or {}).pop(key, None)
    return _digest(config)


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


def run_input_kind(config: dict, shape: tuple) -> str:
    """What files a run reads: ``"events"`` for a run on observables (its (K,) input is computed from
    events) or on an object grid, ``"table"`` for a feature table (:func:`input_kind` of ``shape``)."""
    return "events" if observable_names(config) else input_kind(shape)


def describe_run_input(config: dict, shape: tuple) -> str:
    """The input of a run's model in words: its representation for a run on events, else by the shape."""
    if run_input_kind(config, shape) == "events":
        return f"events as {representation(config).describe()}"
    return describe_input(shape)


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
        if fmt.kind != run_input_kind(config, shape):
            holds = "events" if fmt.kind == "events" else "a feature table"
            raise ValueError(f"{path}: holds {holds} ({fmt.name}), but the model of run {run_dir} takes "
                             f"{describe_run_input(config, shape)}")
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
    """(part, meta) of an independent ``background``: files (label-1 events removed and counted, read
    chunk by chunk on the run's grid or feature matrix) or model input as given; checked against the run."""
    shape = run.input_shape()
    if isinstance(background, (dict, np.ndarray)):
        check_input(background, shape, "background")
        return MemoryPart(background), {"background": "model input given to score_run"}
    paths = check_background_files(run, background, config, shape)
    if run_input_kind(config, shape) == "table":
        table, _ = read_background(config, paths)
        check_columns(run, table, paths)
    part, removed = background_part(config, paths)
    return part, {"background": [str(p.resolve()) for p in paths], "background_signal_events_removed": removed}


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 0 ≤ I < N (``score --shard``); a ValueError naming the option otherwise."""
    index, _, count = str(text).partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        raise ValueError(f"--shard {text}: expected I/N, e.g. 0/4 (shard I of N, counted from 0)") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: expected 0 <= I < N")
    return index, count


def shard_range(n: int, batch_size: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """The events [first, stop) of a sample of ``n`` events that ``shard`` (I, N) scores: the I-th of N
    near-equal runs of whole batches, so that the shards together score every event exactly as one
    process does (:func:`tfp_anomaly.scoring.compute_terms`)."""
    if shard is None:
        return 0, n
    index, count = shard
    batches = -(-n // batch_size)
    first, stop = batches * index // count, batches * (index + 1) // count
    return min(first * batch_size, n), min(stop * batch_size, n)


def _as_part(config: dict, sample):
    """A signal given to :func:`score_run` as events, a feature table or model input, as a part."""
    if isinstance(sample, (dict, np.ndarray)):
        return MemoryPart(sample)
    if hasattr(sample, "chunks"):
        return sample
    weights = sample.weight if config["data"].get("weights") and hasattr(sample, "weight") else None
    ids = getattr(sample, "event_id", None)
    physics = compute_observables(sample) if isinstance(sample, Events) else None
    return MemoryPart(model_input(config, sample), weights, ids, observables=physics)


def _check_part(part, shape: tuple, source: str) -> None:
    if part.n_events == 0:
        raise ValueError(f"{source}: no {'background ' if source == 'background' else ''}event to score")
    first = next(part.chunks(1))
    check_input(first.inputs, shape, source)


def score_part(model, scorer: Scorer, part, shard=None, progress: bool = False):
    """Score the events of ``part`` that ``shard`` (I, N) falls on (all without), chunk by chunk: yields
    ``(chunk, scores, terms)``; batches are numbered from the sample's start, so any chunking and any
    sharding gives the scores of one pass (:func:`tfp_anomaly.scoring.compute_terms`)."""
    from .streaming import rechunk

    n, size = part.n_events, scorer.batch_size
    rows = min(size, n)
    first, stop = shard_range(n, rows, shard)
    chunk_events = max(1, (1 << 18) // rows) * rows
    bar = _progress_bar(stop - first) if progress else None
    done = 0
    for chunk in rechunk(part.events(first, stop, chunk_events), chunk_events):
        terms = scorer.terms(model, chunk.inputs, first_batch=(first + done) // rows, rows=rows)
        yield chunk, scorer.score(model, chunk.inputs, terms=terms), terms
        done += len(chunk.event_id)
        if bar is not None:
            bar.update(done)


def _progress_bar(n):
    from keras.utils import Progbar

    return Progbar(n, unit_name="event")


def score_run(run_dir, methods="all", signals: dict | None = None, name: str | None = None,
              batch_size: int = 4096, seed: int = 0, max_signal_events: int | None = None,
              progress: bool = False, background=None, shard: tuple[int, int] | None = None) -> ScoredRun:
    """Score the run in ``run_dir``; ``signals`` ({name: Events/FeatureTable/array}) default to the
    configuration's ``data.signals``. ``background`` (files, or model input {"x", "mask"} / array) is
    scored instead of the run's test split; the scores are fitted on the training background either way
    (the events of :func:`tfp_anomaly.streaming.fit_rows`). Every sample is read and scored chunk by
    chunk and written as it goes (files larger than memory, ``data.stream``), with each event's id,
    file and weight. ``shard`` (I, N): score only the I-th of N runs of batches of every sample and
    write ``scores.shard-I-of-N.h5`` (:func:`tfp_anomaly.report.results.merge` joins them).
    Returns the :class:`ScoredRun` (also saved as ``scores.h5``)."""
    run = RunDirectory(run_dir)
    config = check_run(run)
    shape = run.input_shape()
    independent = None if background is None else background_input(run, config, background)
    model = run.load_model()
    prepared = prepare_data(config)
    run.check_split(prepared.split)
    scorer = Scorer(methods, batch_size=batch_size, seed=seed).fit(model, prepared.fit, progress=progress)
    prepared.fit = None  # fitted: the training sample's memory goes back before the samples are read
    if signals is None:
        signals = signal_part_map(config, max_signal_events)
    else:
        signals = {n: _as_part(config, s) for n, s in signals.items()}
        if max_signal_events:
            signals = {n: _limited(p, max_signal_events) for n, p in signals.items()}
    if not signals:
        raise ValueError(f"{run}: no signal to score: set data.signals in the configuration or pass --signal")
    x_background, origin = independent or (prepared.part("test"), {"background": TEST_SPLIT})
    for sample, part in signals.items():  # every signal fits the model before the first is scored
        _check_part(part, shape, f"signal {sample!r}")
    samples = {"background": x_background, **signals}
    scorer_config = scorer.get_config()
    meta = {**describe(model, config, run.read_summary()), "run_dir": str(run), **origin,
            "encoder_only": sorted(n for n, m in scorer.methods.items() if m.encoder_only),
            "files": _files(prepared, origin, signals), "scorer_digest": _digest(scorer_config)}
    if shard is not None:
        meta["shard"] = {"index": shard[0], "count": shard[1]}
    path = run.scores_file if shard is None else run.shard_file(*shard)
    latent = {}
    with scores_writer(path) as writer:
        for sample, part in samples.items():
            rows = []
            for chunk, scores, terms in score_part(model, scorer, part, shard, progress):
                writer.append(sample, scores, chunk.event_id, chunk.file, chunk.weights, chunk.observables)
                first = member_terms(terms, 0) if getattr(model, "ensemble_size", 1) > 1 else terms  # plots: member 0
                if sum(len(r) for r in rows) < LATENT_ROWS:
                    rows.append(first["latent"][:LATENT_ROWS])
            if not rows:  # a shard that falls on none of this sample's batches
                writer.append(sample, {m: np.zeros(0) for m in scorer.methods}, np.zeros(0, np.int64),
                              np.zeros(0, np.int16), None if not _weighted(part) else np.zeros(0),
                              {name: np.zeros(0) for name in (getattr(part, "observables", None) or ())} or None)
            latent[sample] = np.concatenate(rows)[:LATENT_ROWS] if rows else np.zeros((0, model.latent_dim), np.float32)
        writer.finish(name or run.name, meta, latent, run.read_history())
    if shard is None:
        run.write_scorer(scorer_config)
    return ScoredRun.load(path)


def _weighted(part) -> bool:
    return getattr(part, "weighted", getattr(part, "weights", None) is not None)


def _limited(part, limit: int):
    from .streaming import MemoryPart as Memory

    if isinstance(part, Memory):
        index = slice(0, min(part.n_events, int(limit)))
        observables = None if part.observables is None else {k: v[index] for k, v in part.observables.items()}
        return Memory(arrays.take(part.inputs, index), None if part.weights is None else part.weights[index],
                      part.event_id[index], part.file[index], observables)
    part.n_events = min(part.n_events, int(limit))
    return part


def _files(prepared, origin: dict, signals: dict) -> dict:
    """The files each sample's ``file`` numbers refer to."""
    files = {"background": origin["background"] if isinstance(origin["background"], list)
             else prepared.report.get("files", [])}
    for name, part in signals.items():
        files[name] = [str(p) for p in getattr(getattr(part, "files", None), "paths", [])]
    return files


def _digest(state: dict) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]
