"""From a configuration's ``data``, ``grid``, ``split`` and ``scaler`` sections to model input.

Steps, each a function a user can call on its own:

1. :func:`load_background` reads the ``data.background`` files (any registered event format, or the
   LHCO high-level feature tables; ``sample`` is the embedded Pythia 8 background). Events with truth
   label 1 are removed and counted (:func:`background_only`), so labelled files (LHCO R&D, ADC2021
   with labels) can be named directly: training sees background only. ``data.max_events`` keeps a
   seeded random subset (``data.subset``). :func:`load_signals` reads ``data.signals``,
   :func:`read_background` an independent background given on the command line.

   Every file is checked as it is read, each failure one error naming the file: a file without
   events, event files whose objects do not fit the run's object grid
   (:meth:`~tfp_anomaly.data.ObjectGrid.check`), a signal of another representation than the run's
   background (feature table vs events), two signals of one name.
2. :func:`model_input` puts events on the configured object grid (``{"x", "mask"}``) or takes a
   feature table's (N, F) matrix.
3. :func:`prepare_data`: the seeded train/val/test split, the model input of the background and the
   scaler fitted on the *training* part only.

Everything here reads; nothing writes. Model building and training are :mod:`tfp_anomaly.experiment`,
the files of a run :mod:`tfp_anomaly.rundir`.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from . import config as config_lib
from .data import (DataFormatError, FeatureTable, ObjectGrid, Scaler, SkipLog, arrays, concatenate, formats,
                   get_scaler, load_sample, read_lhco_scalars, split_indices)
from .data.sample import manifest as sample_manifest
from .data.splits import LEGACY_SUBSET, SUBSETS, subset_indices  # noqa: F401 (SUBSETS: data.subset's values)

log = logging.getLogger(__name__)

#: ``data.background`` / ``data.signals`` value naming the embedded Pythia sample (tfp_anomaly.data.load_sample)
SAMPLE = "sample"

#: ``data.features`` options passed to the LHCO feature-table reader (tfp_anomaly.data.read_lhco_scalars)
TABLE_OPTIONS = ("drop", "recompute_tau21")

#: the grid of a configuration without a ``grid`` section
DEFAULT_GRID = {"preset": "darkflow"}

#: file name endings stripped to name a signal by its file (longest first)
SIGNAL_SUFFIXES = (".csv.gz", ".txt.gz", ".csv", ".txt", ".hdf5", ".h5", ".hdf", ".gz")


@dataclasses.dataclass
class Prepared:
    """The background of a configuration, split and ready for the model.

    Args:
        parts: ``{"train", "val", "test"}`` → model input of that part: ``{"x": (N, S, F), "mask": (N, S)}``
            for events on the object grid, an (N, F) array for a feature table.
        input_shape: the shape of one event, ``(S, F)`` or ``(F,)``.
        scaler: the scaler fitted on the training part.
        split: ``{"train", "val", "test"}`` → the indices of each part in the background read.
        report: what was read: files, events, events removed, objects beyond the grid's caps, the split.
    """

    parts: dict
    input_shape: tuple
    scaler: Scaler
    split: dict
    report: dict


def resolve_paths(config: dict, files, key: str) -> list[Path]:
    """``files`` (one or a list) as paths resolved against ``data.dir``; each must exist (the error
    names the configuration ``key`` that gave it)."""
    files = [files] if isinstance(files, (str, Path)) else list(files)
    root = Path(config["data"]["dir"]) if config["data"].get("dir") else Path()
    paths = [Path(f) if Path(f).is_absolute() else root / f for f in files]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{key}: file not found: {path}")
    return paths


def background_paths(config: dict) -> list[Path]:
    """The background files of ``data.background`` resolved against ``data.dir``."""
    files = config["data"].get("background")
    if not files:
        raise config_lib.ConfigError("data.background: no background file given")
    return resolve_paths(config, files, "data.background")


def file_format(config: dict, path: Path) -> formats.Format:
    """The format ``path`` is read with: ``data.format``, or detected from the file when ``auto``."""
    name = config["data"]["format"]
    return formats.detect(path) if name == "auto" else formats.get(name)


def _table_options(data: dict) -> dict:
    features = data.get("features") or {}
    return {key: features[key] for key in TABLE_OPTIONS if key in features}


def read_files(config: dict, paths: list[Path], key: str, file_formats=None):
    """(Events or FeatureTable, report) of ``paths`` read with the ``data`` section's options; one kind only.

    Each file must hold events, and the objects of each event file must fit the configured object grid
    (:meth:`~tfp_anomaly.data.ObjectGrid.check`); the errors name the file and ``key``."""
    data = config["data"]
    file_formats = file_formats or [file_format(config, p) for p in paths]
    kinds = {fmt.kind for fmt in file_formats}
    if len(kinds) > 1:
        raise ValueError(f"{key} mixes event files and feature tables: {[str(p) for p in paths]}")
    if kinds == {"table"}:
        table = read_lhco_scalars(paths, nonfinite=data["nonfinite"], **_table_options(data))
        for k, path in enumerate(paths):
            if not np.any(table.file_index == k):
                raise DataFormatError(path, f"no events ({key}): {table.report['files'][str(path)]['events']} in "
                                            f"the file, {table.report['files'][str(path)]['kept']} kept")
        return table, {"files": [str(p) for p in paths], "kind": "table", "reader": table.report,
                       "columns": table.names}
    grid, parts, skipped = object_grid(config), [], SkipLog()
    for path, fmt in zip(paths, file_formats):
        file_log = SkipLog()
        options = {"on_error": data["on_error"], "skipped": file_log} if fmt.name == "darkmachines" else {}
        events = formats.read_events(path, fmt.name, **options).to_unit(data["unit"])
        skipped.merge(file_log)
        if len(events) == 0:
            raise DataFormatError(path, f"no events ({key})" + (f": {file_log.summary()}" if file_log.n_skipped else ""))
        if file_log.n_skipped:
            log.warning("%s (%s): %s", path, key, file_log.summary())
        grid.check(events, f"{path} ({key})")
        parts.append(events)
    table = concatenate(parts)
    return table, {"files": [str(p) for p in paths], "kind": "events", "unit": data["unit"],
                   "skipped_lines": int(skipped.n_skipped)}


def background_only(table):
    """(the events of ``table`` without truth label 1, how many were removed); unlabelled tables whole."""
    if table.labels is None:
        return table, 0
    keep = table.labels == 0
    return table[np.flatnonzero(keep)], int((~keep).sum())


def load_background(config: dict):
    """(Events or FeatureTable of background only, report) of ``data.background``, cut to
    ``data.max_events`` events: a random subset seeded by ``split.seed`` with ``data.subset: random``,
    the first N with ``first`` (the behaviour of runs written before ``data.subset`` existed, which a
    configuration without the key keeps: :data:`LEGACY_SUBSET`)."""
    data = config["data"]
    if data.get("background") == SAMPLE:
        table = load_sample("background", unit=data["unit"])
        report = {"files": ["embedded sample: background"], "kind": "events", "unit": data["unit"], "skipped_lines": 0}
    else:
        table, report = read_files(config, background_paths(config), "data.background")
    table, report["signal_events_removed"] = background_only(table)
    if data.get("max_events"):
        how = data.get("subset", LEGACY_SUBSET)
        seed = (config.get("split") or {}).get("seed", 0)
        try:
            table = table[subset_indices(len(table), int(data["max_events"]), how, seed)]
        except ValueError as err:
            raise config_lib.ConfigError(f"data.subset: {err}") from None
        report["subset"] = {"max_events": int(data["max_events"]), "how": how, "seed": seed}
    report["background_events"] = len(table)
    return table, report


def read_background(config: dict, paths: list[Path], key: str = "--background"):
    """(background of ``paths``, events with truth label 1 removed) read with a run's ``data`` options,
    as :func:`load_background` reads its files: an independent background to score."""
    table, _ = read_files(config, paths, key)
    background, removed = background_only(table)
    if len(background) == 0:
        raise ValueError(f"{', '.join(str(p) for p in paths)}: no background event to score "
                         f"({len(table)} events, all with truth label 1)")
    return background, removed


def signal_name(path) -> str:
    """A signal file's sample name: its file name without a known data suffix (:data:`SIGNAL_SUFFIXES`):
    ``qstar.csv.gz`` → ``qstar``, ``monojet_Zp2000.0_DM_50.0_chan3.csv`` → ``monojet_Zp2000.0_DM_50.0_chan3``
    (dots inside the name are kept); a name without a known suffix is kept whole."""
    name = Path(path).name
    for suffix in SIGNAL_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return name


def signal_files(spec) -> dict:
    """``{name: file(s)}`` of a ``data.signals`` list of files (or one file), named by :func:`signal_name`;
    two files of one name are refused (name them with a mapping instead)."""
    files = [spec] if isinstance(spec, (str, Path)) else list(spec)
    mapping: dict = {}
    for f in files:
        name = signal_name(f)
        if name in mapping:
            raise config_lib.ConfigError(f"data.signals: {mapping[name]} and {f} are both named {name!r}; "
                                         "name the signals with a mapping (name: file)")
        mapping[name] = f
    return mapping


def background_kind(config: dict) -> str | None:
    """What the background of ``config`` is: ``"events"`` (on the object grid) or ``"table"`` (a
    feature matrix); None when its files cannot be found or recognised now."""
    data = config["data"]
    if data.get("background") == SAMPLE:
        return "events"
    try:
        kinds = {file_format(config, p).kind for p in background_paths(config)}
    except (FileNotFoundError, ValueError):  # ConfigError and DataFormatError are ValueErrors
        named = data.get("format", "auto")
        return formats.FORMATS[named].kind if named in formats.FORMATS else None
    return kinds.pop() if len(kinds) == 1 else None


def _check_signal_kind(config: dict, path: Path, fmt, key: str, expected: str | None) -> None:
    if expected is None or fmt.kind == expected:
        return
    background = config["data"].get("background")
    if expected == "events":
        grid = object_grid(config)
        event_formats = ", ".join(name for name, f in formats.FORMATS.items() if f.kind == "events")
        raise DataFormatError(path, f"{key}: high-level features ({fmt.name}), but the run reads events "
                                    f"onto an object grid of shape {grid.shape} (its background: {background}); "
                                    f"give a signal file of events ({event_formats})")
    raise DataFormatError(path, f"{key}: events ({fmt.name}), but the run reads a feature table (its "
                                f"background: {background}); give a signal file of the same features")


def load_signals(config: dict, max_events: int | None = None) -> dict:
    """``{name: Events or FeatureTable}`` of ``data.signals``: ``sample`` (the embedded signals, one per
    process), a mapping name → file(s), or a list of files (named by :func:`signal_name`; two of one
    name are refused). Labelled files give their label-1 events only. Each file must be of the run's
    kind (events for a run on the object grid, features for a run on a feature table: checked before
    any is read), hold events, and fit the grid. An empty dict when none are configured."""
    spec = config["data"].get("signals")
    if not spec:
        return {}
    if spec == SAMPLE:
        names = [n for n, e in sample_manifest()["files"].items() if e["kind"] == "signal"]
        signals = {n: load_sample(n, unit=config["data"]["unit"]) for n in names}
    else:
        mapping = spec if isinstance(spec, dict) else signal_files(spec)
        expected = background_kind(config)
        plan = {}
        for name, files in mapping.items():  # every file found and of the run's kind before any is read
            key = f"data.signals.{name}"
            paths = resolve_paths(config, files, key)
            file_formats = [file_format(config, p) for p in paths]
            for path, fmt in zip(paths, file_formats):
                _check_signal_kind(config, path, fmt, key, expected)
            plan[name] = (key, paths, file_formats)
        signals = {}
        for name, (key, paths, file_formats) in plan.items():
            table, _ = read_files(config, paths, key, file_formats)
            labels = table.labels
            signals[str(name)] = table if labels is None or not labels.any() else table[np.flatnonzero(labels == 1)]
    if max_events:
        signals = {n: t[np.arange(min(int(max_events), len(t)))] for n, t in signals.items()}
    return signals


def object_grid(config: dict) -> ObjectGrid:
    """The configuration's object grid (``grid`` section; the DarkFlow preset without one)."""
    return ObjectGrid.from_config(config.get("grid") or DEFAULT_GRID)


def model_input(config: dict, table):
    """The model's input for events or tables read with this configuration: ``{"x", "mask"}`` on the
    configured object grid, or the (N, F) feature matrix."""
    if isinstance(table, FeatureTable):
        return table.features.astype(np.float32)
    x, mask = object_grid(config).transform(table)
    return {"x": x, "mask": mask}


def prepare_data(config: dict) -> Prepared:
    """Read the background, split it (seeded), build the model input and fit the scaler on the training part."""
    table, report = load_background(config)
    split = split_indices(len(table), config["split"]["fractions"], config["split"]["seed"])
    if len(split.train) == 0 or len(split.val) == 0:
        raise ValueError(f"split {config['split']['fractions']} of {len(table)} events leaves an empty "
                         "training or validation part")
    if report["kind"] == "events":
        grid = object_grid(config)
        x, mask, overflow = grid.transform(table, return_overflow=True)
        report.update(grid=grid.get_config(), objects_beyond_caps=overflow,
                      objects_without_block=grid.without_block(table))
    else:
        x, mask = model_input(config, table), None
    background = x if mask is None else {"x": x, "mask": mask}
    scaler_options = dict(config["scaler"])
    scaler = get_scaler(scaler_options.pop("name"), **scaler_options)
    scaler.fit(*arrays.split_mask(arrays.take(background, split.train)))
    parts = {name: arrays.take(background, index) for name, index in split.parts().items()}
    report["split"] = {name: len(index) for name, index in split.parts().items()}
    return Prepared(parts, tuple(x.shape[1:]), scaler, split.parts(), report)
