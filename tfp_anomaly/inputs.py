"""From a configuration's ``data``, ``grid``, ``split`` and ``scaler`` sections to model input.

Steps, each a function a user can call on its own:

1. :func:`load_background` reads the ``data.background`` files (any registered event format, or the
   LHCO high-level feature tables; ``sample`` is the embedded Pythia 8 background). Events with truth
   label 1 are removed and counted (:func:`background_only`), so labelled files (LHCO R&D, ADC2021
   with labels) can be named directly: training sees background only. :func:`load_signals` reads
   ``data.signals``, :func:`read_background` an independent background given on the command line.
2. :func:`model_input` puts events on the configured object grid (``{"x", "mask"}``) or takes a
   feature table's (N, F) matrix.
3. :func:`prepare_data`: the seeded train/val/test split, the model input of the background and the
   scaler fitted on the *training* part only.

Everything here reads; nothing writes. Model building and training are :mod:`tfp_anomaly.experiment`,
the files of a run :mod:`tfp_anomaly.rundir`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from . import config as config_lib
from .data import (FeatureTable, ObjectGrid, Scaler, arrays, concatenate, formats, get_scaler, load_sample,
                   read_lhco_scalars, split_indices)
from .data.sample import manifest as sample_manifest

#: ``data.background`` / ``data.signals`` value naming the embedded Pythia sample (tfp_anomaly.data.load_sample)
SAMPLE = "sample"

#: ``data.features`` options passed to the LHCO feature-table reader (tfp_anomaly.data.read_lhco_scalars)
TABLE_OPTIONS = ("drop", "recompute_tau21")

#: the grid of a configuration without a ``grid`` section
DEFAULT_GRID = {"preset": "darkflow"}


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


def read_files(config: dict, paths: list[Path], key: str):
    """(Events or FeatureTable, report) of ``paths`` read with the ``data`` section's options; one kind only."""
    data = config["data"]
    file_formats = [file_format(config, p) for p in paths]
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


def background_only(table):
    """(the events of ``table`` without truth label 1, how many were removed); unlabelled tables whole."""
    if table.labels is None:
        return table, 0
    keep = table.labels == 0
    return table[np.flatnonzero(keep)], int((~keep).sum())


def load_background(config: dict):
    """(Events or FeatureTable of background only, report) of ``data.background``, cut to
    ``data.max_events``."""
    data = config["data"]
    if data.get("background") == SAMPLE:
        table = load_sample("background", unit=data["unit"])
        report = {"files": ["embedded sample: background"], "kind": "events", "unit": data["unit"], "skipped_lines": 0}
    else:
        table, report = read_files(config, background_paths(config), "data.background")
    table, report["signal_events_removed"] = background_only(table)
    if data.get("max_events"):
        table = table[np.arange(min(int(data["max_events"]), len(table)))]
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
            key = f"data.signals.{name}"
            table, _ = read_files(config, resolve_paths(config, files, key), key)
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
        report.update(grid=grid.get_config(), objects_beyond_caps=overflow)
    else:
        x, mask = model_input(config, table), None
    background = x if mask is None else {"x": x, "mask": mask}
    scaler_options = dict(config["scaler"])
    scaler = get_scaler(scaler_options.pop("name"), **scaler_options)
    scaler.fit(*arrays.split_mask(arrays.take(background, split.train)))
    parts = {name: arrays.take(background, index) for name, index in split.parts().items()}
    report["split"] = {name: len(index) for name, index in split.parts().items()}
    return Prepared(parts, tuple(x.shape[1:]), scaler, split.parts(), report)
