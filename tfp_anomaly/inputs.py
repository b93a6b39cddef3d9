"""From a configuration's ``data``, ``grid``, ``observables``, ``split`` and ``scaler`` sections to model input.

Steps, each a function a user can call on its own:

1. :func:`load_background` reads the ``data.background`` files (any registered event format, or the
   LHCO high-level feature tables; ``sample`` is the embedded Pythia 8 background). Event files are
   read through their columnar caches (converted once: :func:`tfp_anomaly.data.store.ensure_cache`)
   and selected by :mod:`tfp_anomaly.streaming`, which reads only the events kept. Events with truth
   label 1 are removed and counted (:func:`background_only`), so labelled files (LHCO R&D, ADC2021
   with labels) can be named directly: training sees background only. ``data.max_events`` keeps a
   seeded random subset (``data.subset``). :func:`load_signals` reads ``data.signals``,
   :func:`read_background` an independent background given on the command line.

   Every file is checked as it is read, each failure one error naming the file: a file without
   events, event files whose objects do not fit the run's object grid
   (:meth:`~tfp_anomaly.data.ObjectGrid.check`) or whose observables are not finite, a signal of
   another representation than the run's background (feature table vs events), two signals of one name.
2. :func:`representation` is how events become model input (:mod:`tfp_anomaly.data.representation`):
   the object grid of the ``grid`` section, with the ``observables`` section's observables appended to
   its slots (``observables.as: grid``) or instead of it the flat vector of the observables (``as:
   flat``). :func:`model_input` gives the model input of events on it (``{"x", "mask"}`` on a grid,
   an (N, K) matrix flat), or a feature table's (N, F) matrix.
3. :func:`prepare_data`: the seeded train/val/test split, the model input of the background (in memory,
   or streamed parts when ``data.stream`` says so: :func:`streams`) and the scaler fitted on training
   events only (at most ``data.fit_events`` of them). :func:`signal_part_map` and
   :func:`background_part` give the samples to score as parts read chunk by chunk.

Everything here reads (the caches aside, written by :mod:`tfp_anomaly.data.store`); nothing else writes. Model building and training are :mod:`tfp_anomaly.experiment`,
the files of a run :mod:`tfp_anomaly.rundir`.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from . import config as config_lib
from .data import (DataFormatError, FeatureTable, ObjectGrid, Scaler, arrays, concatenate, formats, get_scaler,
                   read_lhco_scalars, split_indices)
from .data.observables import REPORT_OBSERVABLES
from .data.observables import compute as compute_observables
from .data.representation import EventObservables, make_representation
from .data.sample import manifest as sample_manifest
from .data.splits import LEGACY_SUBSET, PARTS, SUBSETS, Split, subset_indices
from .streaming import UNUSED, EventFiles, MemoryPart, StreamedPart, fit_rows, select_background

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
        parts: ``{"train", "val", "test"}`` → that part: in memory its model input (``{"x": (N, S, F),
            "mask": (N, S)}`` for events on the object grid, an (N, F) array for a feature table);
            streamed a :class:`tfp_anomaly.streaming.StreamedPart`.
        input_shape: the shape of one event, ``(S, F)`` or ``(F,)``.
        scaler: the scaler fitted on :attr:`fit`.
        split: the :class:`tfp_anomaly.data.Split` of the background read.
        report: what was read: files, events, events removed, objects beyond the grid's caps, the split.
        fit: model input of the training events the scaler and the scores are fitted on
            (:func:`tfp_anomaly.streaming.fit_rows`: at most ``data.fit_events``, all when fewer).
        weights: in memory, ``{part: (N,) event weights}`` with ``data.weights`` (None without);
            streamed, each part carries its own.
        ids: in memory, ``{part: (event ids, file numbers)}``; the files are ``report["files"]``.
        streamed: whether the parts are streamed (``data.stream``).
        observables: in memory, ``{"test": {name: (N,)}}``: the test events' physics observables
            (:data:`~tfp_anomaly.data.observables.REPORT_OBSERVABLES`, stored with their scores); a
            streamed test part computes its own chunk by chunk. None for a feature table.
    """

    parts: dict
    input_shape: tuple
    scaler: Scaler
    split: Split
    report: dict
    fit: object = None
    weights: dict | None = None
    ids: dict | None = None
    streamed: bool = False
    observables: dict | None = None

    def training_part(self, name: str):
        """The part ``name`` for :func:`tfp_anomaly.models.training.train`: the streamed part, or a
        :class:`tfp_anomaly.data.parts.ArrayPart` of the model input and weights in memory."""
        if self.streamed:
            return self.parts[name]
        from .data.parts import ArrayPart

        return ArrayPart(self.parts[name], None if self.weights is None else self.weights[name])

    def sample(self, name: str, limit: int = 200_000):
        """Model input of (at most ``limit`` of the first) events of part ``name``, in memory."""
        if not self.streamed:
            return arrays.head(self.parts[name], limit)
        return next(self.parts[name].chunks(limit)).inputs if self.parts[name].n_events else None

    def part(self, name: str):
        """The part ``name`` as something to train on or score chunk by chunk: the streamed part, or a
        :class:`tfp_anomaly.streaming.MemoryPart` of the model input held in memory."""
        if self.streamed:
            return self.parts[name]
        event_id, file = self.ids[name] if self.ids else (None, None)
        return MemoryPart(self.parts[name], None if self.weights is None else self.weights[name], event_id, file,
                          (self.observables or {}).get(name))


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
    """The format ``path`` is read with: ``data.format``, or detected from the file when ``auto``. Its
    reader's options come from the ``data`` section (``data.root`` for ROOT files:
    :func:`tfp_anomaly.data.formats.reader_options`)."""
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
        _no_observables(config, key)
        table = read_lhco_scalars(paths, nonfinite=data["nonfinite"], **_table_options(data))
        for k, path in enumerate(paths):
            if not np.any(table.file_index == k):
                raise DataFormatError(path, f"no events ({key}): {table.report['files'][str(path)]['events']} in "
                                            f"the file, {table.report['files'][str(path)]['kept']} kept")
        return table, {"files": [str(p) for p in paths], "kind": "table", "reader": table.report,
                       "columns": table.names}
    with event_files(config, paths, key, file_formats) as files:
        encoding, parts = representation(config), []
        for k, path in enumerate(paths):
            events = files.read(int(files.starts[k]), int(files.starts[k + 1]))
            check_file_events(config, encoding, events, path, key, files.infos[k])
            parts.append(events)
        table = concatenate(parts)
        return table, {"files": [str(p) for p in paths], "kind": "events", "unit": data["unit"],
                       "skipped_lines": files.n_skipped}


def event_files(config: dict, paths: list[Path], key: str, file_formats=None) -> EventFiles:
    """The event files ``paths`` of configuration key ``key`` through their caches
    (:class:`tfp_anomaly.streaming.EventFiles`), read with the ``data`` section's options (``on_error``,
    ``unit``, ``cache_dir``, and each format's reader options such as ``data.root``, part of the cache key)."""
    data = config["data"]
    file_formats = file_formats or [file_format(config, p) for p in paths]
    return EventFiles(paths, key, [fmt.name for fmt in file_formats], on_error=data["on_error"], unit=data["unit"],
                      cache_dir=data.get("cache_dir"), options=[formats.reader_options(fmt, data) for fmt in file_formats])


#: events of each file the object-grid check reads (:func:`check_file_events`)
CHECK_EVENTS = 100_000


def check_file_events(config: dict, encoding, events, path: Path, key: str, info) -> None:
    """A file of events must hold some, and they must suit the run's representation ``encoding``
    (:func:`representation`'s ``check``: the objects fit the grid, the observables are finite; on its
    first :data:`CHECK_EVENTS` events); malformed lines skipped in it are logged."""
    if len(events) == 0:
        raise DataFormatError(path, f"no events ({key})" + (f": {info.n_skipped} malformed line(s) skipped"
                                                             if info.n_skipped else ""))
    if info.n_skipped:
        log.warning("%s (%s): %d malformed line(s) skipped", path, key, info.n_skipped)
    encoding.check(events[np.arange(min(len(events), CHECK_EVENTS))], f"{path} ({key})")


def background_only(table):
    """(the events of ``table`` without truth label 1, how many were removed); unlabelled tables whole."""
    if table.labels is None:
        return table, 0
    keep = table.labels == 0
    return table[np.flatnonzero(keep)], int((~keep).sum())


def background_files(config: dict) -> tuple[list[Path], list]:
    """(paths, formats) of ``data.background``: the embedded sample's background file for ``sample``."""
    if config["data"].get("background") == SAMPLE:
        from .data.sample import sample_files

        return [sample_files()["background"]], [formats.get("darkmachines")]
    paths = background_paths(config)
    return paths, [file_format(config, p) for p in paths]


def _subset_report(config: dict) -> dict:
    data = config["data"]
    return {"max_events": int(data["max_events"]), "how": data.get("subset", LEGACY_SUBSET),
            "seed": (config.get("split") or {}).get("seed", 0)}


def select(config: dict, files: EventFiles) -> tuple[np.ndarray, dict]:
    """(row codes, counts) of the background in ``files`` (:func:`tfp_anomaly.streaming.select_background`
    with the configuration's ``data.max_events``, ``data.subset`` and ``split``)."""
    data, split = config["data"], config["split"]
    how = data.get("subset", LEGACY_SUBSET)
    if how not in SUBSETS:
        raise config_lib.ConfigError(f"data.subset: must be one of {', '.join(SUBSETS)}, got {how!r}")
    return select_background(files, data.get("max_events"), how, split["fractions"], split["seed"])


def _events_report(config: dict, paths, files: EventFiles, counts: dict) -> dict:
    sample = config["data"].get("background") == SAMPLE
    report = {"files": ["embedded sample: background"] if sample else [str(p) for p in paths], "kind": "events",
              "unit": config["data"]["unit"], "skipped_lines": files.n_skipped,
              "signal_events_removed": counts["signal_events_removed"]}
    if config["data"].get("max_events"):
        report["subset"] = _subset_report(config)
    report["background_events"] = counts["background_events"]
    return report


def load_background(config: dict):
    """(Events or FeatureTable of background only, report) of ``data.background``, cut to
    ``data.max_events`` events: a random subset seeded by ``split.seed`` with ``data.subset: random``,
    the first N with ``first`` (the behaviour of runs written before ``data.subset`` existed, which a
    configuration without the key keeps: :data:`LEGACY_SUBSET`). Event files are read through their
    caches, only the events kept."""
    paths, file_formats = background_files(config)
    if file_formats[0].kind == "table":
        return _load_table_background(config, paths, file_formats)
    with event_files(config, paths, "data.background", file_formats) as files:
        codes, counts = select(config, files)
        _check_background(config, paths, files)
        table = files.read_rows(np.flatnonzero(codes != UNUSED))
        return table, _events_report(config, paths, files, counts)


def _check_background(config: dict, paths, files: EventFiles) -> None:
    encoding = representation(config)
    for k, path in enumerate(paths):
        start = int(files.starts[k])
        events = files.read(start, min(start + CHECK_EVENTS, int(files.starts[k + 1])))
        check_file_events(config, encoding, events, path, "data.background", files.infos[k])


def _load_table_background(config: dict, paths, file_formats):
    data = config["data"]
    table, report = read_files(config, paths, "data.background", file_formats)
    table, report["signal_events_removed"] = background_only(table)
    if data.get("max_events"):
        how, seed = data.get("subset", LEGACY_SUBSET), (config.get("split") or {}).get("seed", 0)
        try:
            table = table[subset_indices(len(table), int(data["max_events"]), how, seed)]
        except ValueError as err:
            raise config_lib.ConfigError(f"data.subset: {err}") from None
        report["subset"] = _subset_report(config)
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
        event_formats = ", ".join(name for name, f in formats.FORMATS.items() if f.kind == "events")
        raise DataFormatError(path, f"{key}: high-level features ({fmt.name}), but the run reads events "
                                    f"as {representation(config).describe()} (its background: {background}); "
                                    f"give a signal file of events ({event_formats})")
    raise DataFormatError(path, f"{key}: events ({fmt.name}), but the run reads a feature table (its "
                                f"background: {background}); give a signal file of the same features")


def signal_plan(config: dict) -> dict:
    """``{name: (configuration key, paths, formats)}`` of ``data.signals``, every file found and of the
    run's kind (:func:`_check_signal_kind`) before any is read."""
    spec = config["data"].get("signals")
    if not spec:
        return {}
    if spec == SAMPLE:
        from .data.sample import sample_files

        files = sample_files()
        return {n: (f"data.signals.{n}", [files[n]], [formats.get("darkmachines")])
                for n, e in sample_manifest()["files"].items() if e["kind"] == "signal"}
    mapping = spec if isinstance(spec, dict) else signal_files(spec)
    expected = background_kind(config)
    plan = {}
    for name, files in mapping.items():
        key = f"data.signals.{name}"
        paths = resolve_paths(config, files, key)
        file_formats = [file_format(config, p) for p in paths]
        for path, fmt in zip(paths, file_formats):
            _check_signal_kind(config, path, fmt, key, expected)
        plan[str(name)] = (key, paths, file_formats)
    return plan


def _to_input(config: dict):
    """``events → model input`` on the configuration's :func:`representation`."""
    return representation(config).model_input


def file_part(config: dict, paths, key: str, file_formats=None, keep_label=None, limit=None):
    """``(part, events removed)``: the events of ``paths`` to score, read chunk by chunk through their
    caches (:class:`tfp_anomaly.streaming.StreamedPart`), or in memory for a feature table. ``keep_label``:
    1 keeps a labelled file's signal events (all of an unlabelled one), 0 its background events; ``limit``:
    the first events only. Each file is checked (events, the grid) before any is scored."""
    file_formats = file_formats or [file_format(config, p) for p in paths]
    data = config["data"]
    if file_formats[0].kind == "table":
        table, _ = read_files(config, paths, key, file_formats)
        keep = np.arange(len(table)) if table.labels is None or (keep_label == 1 and not table.labels.any()) \
            else np.flatnonzero(table.labels == keep_label)
        keep = keep[:limit] if limit else keep
        return MemoryPart(model_input(config, table[keep]), None, keep.astype(np.int64),
                          np.asarray(table.file_index)[keep].astype(np.int16)), len(table) - len(keep)
    files = event_files(config, paths, key, file_formats)
    encoding = representation(config)
    for k, path in enumerate(paths):
        start = int(files.starts[k])
        check_file_events(config, encoding, files.read(start, min(start + CHECK_EVENTS, int(files.starts[k + 1]))),
                          path, key, files.infos[k])
    labels = files.column("labels")
    codes = None
    if (labels == 1).any() or (keep_label == 0 and len(labels)):
        codes = np.where(labels == keep_label, 0, UNUSED).astype(np.uint8)
    if data.get("weights"):
        _check_weights(files, paths)
    part = StreamedPart(files, codes, 0, _to_input(config), bool(data.get("weights")), int(data["chunk_events"]), limit,
                        REPORT_OBSERVABLES)
    return part, 0 if codes is None else files.n_rows - int((codes == 0).sum())


def signal_part_map(config: dict, max_events: int | None = None) -> dict:
    """``{name: part}`` of ``data.signals`` to score (:func:`file_part`, the first ``max_events`` events)."""
    return {name: file_part(config, paths, key, file_formats, keep_label=1, limit=max_events)[0]
            for name, (key, paths, file_formats) in signal_plan(config).items()}


def background_part(config: dict, paths, key: str = "--background"):
    """``(part, events removed)`` of an independent background to score: its events without truth label 1."""
    part, removed = file_part(config, paths, key, keep_label=0)
    if part.n_events == 0:
        raise ValueError(f"{', '.join(str(p) for p in paths)}: no background event to score "
                         f"({removed} events, all with truth label 1)")
    return part, removed


def load_signals(config: dict, max_events: int | None = None) -> dict:
    """``{name: Events or FeatureTable}`` of ``data.signals``: ``sample`` (the embedded signals, one per
    process), a mapping name → file(s), or a list of files (named by :func:`signal_name`; two of one
    name are refused). Labelled files give their label-1 events only. Each file must be of the run's
    kind (events for a run on the object grid, features for a run on a feature table: checked before
    any is read), hold events, and fit the grid. An empty dict when none are configured."""
    spec = config["data"].get("signals")
    if not spec:
        return {}
    signals = {}
    for name, (key, paths, file_formats) in signal_plan(config).items():
        table, _ = read_files(config, paths, key, file_formats)
        labels = table.labels
        signals[name] = table if labels is None or not labels.any() else table[np.flatnonzero(labels == 1)]
    if max_events:
        signals = {n: t[np.arange(min(int(max_events), len(t)))] for n, t in signals.items()}
    return signals


def representation(config: dict) -> ObjectGrid | EventObservables:
    """How the configuration's events become model input
    (:func:`tfp_anomaly.data.representation.make_representation`): the object grid of the ``grid``
    section (the DarkFlow preset without one), its slots extended by the observables of the
    ``observables`` section with ``observables.as: grid``, or the flat vector of those observables
    (:class:`~tfp_anomaly.data.representation.EventObservables`) with ``as: flat``."""
    return make_representation(config.get("grid") or DEFAULT_GRID, config.get("observables"))


def object_grid(config: dict) -> ObjectGrid:
    """The object grid of the ``grid`` section (the DarkFlow preset without one), without observables:
    its rows (``block_sizes``, ``row_labels``) are those of :func:`representation` on a grid."""
    return ObjectGrid.from_config(config.get("grid") or DEFAULT_GRID)


def observable_names(config: dict) -> list[str]:
    """The ``observables.names`` of a configuration (empty without the section)."""
    return list((config.get("observables") or {}).get("names") or [])


def _no_observables(config: dict, key: str) -> None:
    names = observable_names(config)
    if names:
        raise config_lib.ConfigError(f"observables.names: {', '.join(names)} are computed from events, but {key} is "
                                     "a feature table (its columns are the model input): remove the observables "
                                     "section, or give event files")


def model_input(config: dict, table):
    """The model's input for events or tables read with this configuration: events on its
    :func:`representation` (``{"x", "mask"}`` on a grid, (N, K) observables flat), or a feature
    table's (N, F) matrix."""
    if isinstance(table, FeatureTable):
        return table.features.astype(np.float32)
    return representation(config).model_input(table)


#: ``data.stream: auto`` streams a background whose model input would take more than this many bytes
STREAM_AUTO_BYTES = 1 << 30


def streams(config: dict, n_events: int, input_shape: tuple) -> bool:
    """Whether ``data.stream`` streams a background of ``n_events`` events of ``input_shape``: ``true``,
    ``false``, or ``auto``: when its model input (float32 features and a one-byte mask per row) would
    take more than :data:`STREAM_AUTO_BYTES`."""
    stream = config["data"].get("stream", "auto")
    if stream != "auto":
        return bool(stream)
    rows = input_shape[0] if len(input_shape) == 2 else 0
    return n_events * (4 * int(np.prod(input_shape)) + rows) > STREAM_AUTO_BYTES


def _empty_part_check(config: dict, split: dict, n: int) -> None:
    if split["train"] == 0 or split["val"] == 0:
        raise ValueError(f"split {config['split']['fractions']} of {n} events leaves an empty "
                         "training or validation part")


def log_columns(config: dict, columns: list[str], energies=(), by_number: bool = True) -> list[int]:
    """The columns the scaler maps by log1p: ``scaler.log_columns`` (indices, or names of ``columns``,
    the model input's column names) and ``energies`` (the representation's energy observables), in
    column order. An unknown name or an index past the columns is a ConfigError naming the key.

    ``by_number=False`` (the flat observables vector) takes names only: column numbers there would be
    those of the grid features a base configuration means (``[0, 1]``: E and pT of the DarkFlow grid), not
    of the observables, so they are left out, with a warning."""
    chosen, numbers = set(energies), []
    for item in config["scaler"].get("log_columns") or []:
        if isinstance(item, str) and item not in columns:
            raise config_lib.ConfigError(f"scaler.log_columns: unknown column {item!r}; the model input's columns: "
                                         f"{', '.join(columns)}")
        if isinstance(item, int) and not by_number:
            numbers.append(item)
            continue
        if isinstance(item, int) and not 0 <= item < len(columns):
            raise config_lib.ConfigError(f"scaler.log_columns: column {item} of {len(columns)} "
                                         f"({', '.join(columns)}): expected 0 to {len(columns) - 1}")
        chosen.add(columns.index(item) if isinstance(item, str) else int(item))
    if numbers:
        log.warning("scaler.log_columns %s: column numbers name grid features, not the flat observables (%s); "
                    "left out (the energy observables are log-scaled anyway; name others, e.g. [HT])",
                    numbers, ", ".join(columns))
    return sorted(chosen)


def _fitted_scaler(config: dict, fit, columns: list[str], energies=(), by_number: bool = True) -> Scaler:
    """The configured scaler fitted on ``fit``, its log columns :func:`log_columns`."""
    options = {**config["scaler"], "log_columns": log_columns(config, list(columns), energies, by_number)}
    scaler = get_scaler(options.pop("name"), **options)
    return scaler.fit(*arrays.split_mask(fit))


def _check_weights(files: EventFiles, paths, rows: np.ndarray | None = None, chunk: int = 1 << 22) -> None:
    """Event weights must be finite and non-negative (``data.weights``); the error names the file and
    the event."""
    for start in range(0, files.n_rows, chunk):
        stop = min(start + chunk, files.n_rows)
        weights = files.column("weights", start, stop)
        bad = np.flatnonzero(~(np.isfinite(weights) & (weights >= 0)))
        if len(bad):
            row = start + int(bad[0])
            k = int(files.file_of(np.array([row]))[0])
            event = int(files.column("event_ids", row, row + 1)[0])
            raise DataFormatError(paths[k], f"event {event} (event {row - int(files.starts[k]) + 1} of the file) has "
                                            f"weight {weights[bad[0]]!r}: event weights must be finite and >= 0 "
                                            "(set data.weights: false to ignore the file's weights)",
                                  field="weight")


def prepare_data(config: dict) -> Prepared:
    """Read the background, split it (seeded), build the model input and fit the scaler on the training
    events of :func:`tfp_anomaly.streaming.fit_rows`; streamed (:class:`~tfp_anomaly.streaming.StreamedPart`)
    or in memory by ``data.stream`` (:func:`streams`)."""
    paths, file_formats = background_files(config)
    if file_formats[0].kind == "table":
        return _prepare_table(config)
    data, seed = config["data"], config["split"]["seed"]
    files = event_files(config, paths, "data.background", file_formats)
    try:
        codes, counts = select(config, files)
        _empty_part_check(config, counts["split"], counts["background_events"])
        _check_background(config, paths, files)
        if data.get("weights"):
            _check_weights(files, paths)
        report = _events_report(config, paths, files, counts)
        encoding = representation(config)
        report[encoding.kind] = encoding.get_config()
        fit = fit_rows(codes, data.get("fit_events"), seed)
        if streams(config, counts["background_events"], encoding.shape):
            return _prepare_streamed(config, files, codes, counts, fit, report)  # the parts keep the files open
    except BaseException:
        files.close()
        raise
    with files:
        kept = np.flatnonzero(codes != UNUSED)
        table = files.read_rows(kept)
        background, dropped = encoding.model_input(table, with_counts=True)
        report.update(dropped)
        split = Split.from_codes(codes[kept])
        indices = split.parts()
        parts = {name: arrays.take(background, index) for name, index in indices.items()}
        weights = {name: table.weight[index] for name, index in indices.items()} if data.get("weights") else None
        file_numbers = files.file_of(kept)
        ids = {name: (table.event_id[index], file_numbers[index]) for name, index in indices.items()}
        fit_input = arrays.take(background, np.searchsorted(kept, fit))
        test_observables = compute_observables(table[indices["test"]])
    report["split"] = counts["split"]
    scaler = _fitted_scaler(config, fit_input, encoding.columns, encoding.log_columns, encoding.kind == "grid")
    return Prepared(parts, encoding.shape, scaler, split, report, fit_input, weights, ids,
                    observables={"test": test_observables})


def _prepare_streamed(config: dict, files: EventFiles, codes, counts, fit, report) -> Prepared:
    """The parts streamed from ``files``; the scaler fitted on the ``fit`` rows read into memory. The
    grid counts of the report (objects beyond the caps, without a block) are those of the fit rows."""
    data, encoding = config["data"], representation(config)
    table = files.read_rows(fit)
    fit_input, dropped = encoding.model_input(table, with_counts=True)
    report.update(dropped)
    if dropped:
        report["grid_counts_of"] = f"the {len(table):,} training events the scaler is fitted on"
    report.update(streamed=True, split=counts["split"])
    parts = {name: StreamedPart(files, codes, code, encoding.model_input, bool(data.get("weights")),
                                int(data["chunk_events"]),
                                observables=REPORT_OBSERVABLES if name == "test" else ())
             for code, name in enumerate(PARTS)}
    split = _LazySplit(codes)
    scaler = _fitted_scaler(config, fit_input, encoding.columns, encoding.log_columns, encoding.kind == "grid")
    return Prepared(parts, encoding.shape, scaler, split, report, fit_input, streamed=True)


class _LazySplit:
    """The split of a streamed background as its codes (what ``split.npz`` stores), without index arrays."""

    def __init__(self, row_codes):
        self._codes = row_codes[row_codes != UNUSED]

    def codes(self):
        return self._codes

    def parts(self) -> dict:
        return Split.from_codes(self._codes).parts()


def _prepare_table(config: dict) -> Prepared:
    """A feature-table background, always in memory (one row of a few floats per event)."""
    if config["data"].get("stream") is True:
        raise config_lib.ConfigError("data.stream: true streams event files; a feature table (data.background "
                                     f"{config['data'].get('background')}) is read into memory: set data.stream: auto")
    table, report = load_background(config)
    split = split_indices(len(table), config["split"]["fractions"], config["split"]["seed"])
    counts = {name: len(index) for name, index in split.parts().items()}
    _empty_part_check(config, counts, len(table))
    x = model_input(config, table)
    parts = {name: arrays.take(x, index) for name, index in split.parts().items()}
    fit = split.train
    if config["data"].get("fit_events"):
        fit = fit[subset_indices(len(fit), int(config["data"]["fit_events"]), "random", config["split"]["seed"])]
    fit_input = arrays.take(x, fit)
    report["split"] = counts
    ids = {name: (index.astype(np.int64), np.asarray(table.file_index)[index].astype(np.int16))
           for name, index in split.parts().items()}
    scaler = _fitted_scaler(config, fit_input, list(table.names))
    return Prepared(parts, tuple(x.shape[1:]), scaler, split, report, fit_input, None, ids)
