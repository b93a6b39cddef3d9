"""The scores of one trained model on a test set: what ``tfp-anomaly score`` writes and ``report`` reads.

The file (``RUN/scores.h5`` of a run directory, :mod:`tfp_anomaly.rundir`; written to a temporary file,
then renamed):

    attrs["meta"]                JSON: name, model type, prior, flow, parameters, scoring config, ...
    background/<method>          (N_B,) scores of the held-out background test events
    signal/<signal>/<method>     (N_S,) scores of each signal sample
    latent/background            (n, d) encodings of up to LATENT_ROWS background events (pair plots)
    latent/<signal>              (n, d) encodings of up to LATENT_ROWS events of each signal
    events/background/event_id   (N_B,) each scored event's id in its file (``event_id`` of the format)
    events/background/file       (N_B,) the number of its file in ``meta["files"]["background"]``
    events/background/weight     (N_B,) its weight, when the run uses event weights (``data.weights``)
    events/s<k>/...              the same for each signal, in the order of ``signal/``
    history                      JSON of the training history (attrs), when the run has one

Method and signal names are kept verbatim in attributes (they may contain ``+``, ``:`` or ``*``).
Scores are written chunk by chunk (:class:`ScoresWriter`), so scoring a file larger than memory never
holds its scores; ``tfp-anomaly score --shard I/N`` writes one file per shard, and :func:`merge` puts
the shards of a run back together in event order (``tfp-anomaly report`` does so).
Files written before the ``events`` group existed load with empty :attr:`ScoredRun.events`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

#: encodings kept per sample for the latent pair plots
LATENT_ROWS = 2000


@dataclasses.dataclass
class ScoredRun:
    """Scores of one model: ``background[method]``, ``signals[signal][method]``, ``latent[sample]``."""

    name: str
    meta: dict
    background: dict
    signals: dict
    latent: dict = dataclasses.field(default_factory=dict)
    history: dict | None = None
    #: sample ("background" or a signal name) → {"event_id", "file"[, "weight"]} of the scored events
    events: dict = dataclasses.field(default_factory=dict)
    observables: dict = dataclasses.field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(self.background)

    @property
    def weights(self) -> dict | None:
        """``{sample: (N,) event weights}`` when every sample carries weights, else None (unweighted)."""
        samples = ["background", *self.signals]
        if all("weight" in self.events.get(sample, {}) for sample in samples):
            return {sample: self.events[sample]["weight"] for sample in samples}
        return None

    def save(self, path) -> Path:
        import h5py

        path = Path(path)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["name"] = self.name
            f.attrs["meta"] = json.dumps(self.meta, default=str)
            if self.history is not None:
                f.attrs["history"] = json.dumps(self.history)
            _write_group(f.create_group("background"), self.background)
            signals = f.create_group("signal")
            for k, (signal, scores) in enumerate(self.signals.items()):
                group = signals.create_group(f"s{k}")
                group.attrs["name"] = signal
                _write_group(group, scores)
            _write_group(f.create_group("latent"), self.latent)
            if self.events:
                events = f.create_group("events")
                for k, sample in enumerate(["background", *self.signals]):
                    if sample in self.events:
                        _write_columns(events.create_group("background" if k == 0 else f"s{k - 1}"),
                                       self.events[sample])
        return path

    @classmethod
    def load(cls, path) -> "ScoredRun":
        """The scores saved in ``path``; ``FileNotFoundError`` when it is missing, ``ValueError`` naming
        the file when it is a directory, not HDF5 (truncated, overwritten) or not a scores file."""
        import h5py

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"scores file not found: {path} (run `tfp-anomaly score` first)")
        if path.is_dir():
            raise ValueError(f"{path}: is a directory, not a scores file")
        again = "; score the run again (tfp-anomaly score)"
        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise ValueError(f"{path}: not a readable scores file, truncated or corrupt HDF5 "
                             f"({' '.join(str(err).split())}){again}") from None
        try:
            with handle as f:
                history = json.loads(f.attrs["history"]) if "history" in f.attrs else None
                groups = sorted(f["signal"].items(), key=lambda kv: int(kv[0][1:]))
                signals = {g.attrs["name"]: _read_group(g) for _, g in groups}
                events = {}
                if "events" in f:
                    for sample, key in [("background", "background"), *((g.attrs["name"], k) for k, g in groups)]:
                        if key in f["events"]:
                            events[sample] = {name: d[()] for name, d in f["events"][key].items()}
                return cls(str(f.attrs["name"]), json.loads(f.attrs["meta"]), _read_group(f["background"]), signals,
                           _read_group(f["latent"]), history, events)
        except KeyError as err:
            raise ValueError(f"{path}: not a scores file of tfp-anomaly score (no {err.args[0] if err.args else err}"
                             f"){again}") from None
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: damaged scores file ({' '.join(str(err).split())}){again}") from None


def _write_group(group, arrays: dict) -> None:
    for k, (name, values) in enumerate(arrays.items()):
        dataset = group.create_dataset(f"d{k}", data=np.asarray(values), compression="gzip")
        dataset.attrs["name"] = name


def _read_group(group) -> dict:
    items = sorted(group.items(), key=lambda kv: int(kv[0][1:]))
    return {d.attrs["name"]: d[()] for _, d in items}


def _write_columns(group, columns: dict) -> None:
    for name, values in columns.items():
        group.create_dataset(name, data=np.asarray(values), compression="gzip")


class ScoresWriter:
    """The scores of a run written sample by sample and chunk by chunk into an open HDF5 file (the layout
    of the module docstring); made by :func:`scores_writer`.

    ``append(sample, scores, event_id, file, weight=None)`` adds the next events of ``sample``
    (``"background"`` first, then each signal); ``finish(name, meta, latent, history)`` writes the
    attributes and the latent rows."""

    def __init__(self, handle):
        self.handle, self.finished, self._groups = handle, False, {}
        for group in ("background", "signal", "events"):
            handle.create_group(group)

    def _group(self, sample: str):
        if sample not in self._groups:
            if sample == "background":
                scores, events = self.handle["background"], self.handle["events"].create_group("background")
            else:
                key = f"s{len(self.handle['signal'])}"
                scores = self.handle["signal"].create_group(key)
                scores.attrs["name"] = sample
                events = self.handle["events"].create_group(key)
            self._groups[sample] = (scores, events)
        return self._groups[sample]

    def append(self, sample: str, scores: dict, event_id, file, weight=None) -> None:
        scores_group, events_group = self._group(sample)
        for k, (method, values) in enumerate(scores.items()):
            _extend(scores_group, f"d{k}", np.asarray(values, np.float64), name=method)
        columns = {"event_id": event_id, "file": file, **({} if weight is None else {"weight": weight})}
        for column, values in columns.items():
            _extend(events_group, column, np.asarray(values))

    def finish(self, name: str, meta: dict, latent: dict, history: dict | None = None) -> None:
        self.handle.attrs["name"] = name
        self.handle.attrs["meta"] = json.dumps(meta, default=str)
        if history is not None:
            self.handle.attrs["history"] = json.dumps(history)
        _write_group(self.handle.create_group("latent"), latent)
        self.finished = True


@contextlib.contextmanager
def scores_writer(path):
    """A :class:`ScoresWriter` into a temporary file beside ``path``, renamed onto ``path`` when the
    block ends after :meth:`ScoresWriter.finish`; removed (``path`` untouched) on any exception."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            writer = ScoresWriter(handle)
            yield writer
            if not writer.finished:
                raise RuntimeError(f"{path}: scores not finished (ScoresWriter.finish was not called)")


def _extend(group, key: str, values: np.ndarray, name: str | None = None) -> None:
    if key not in group:
        dataset = group.create_dataset(key, data=values, maxshape=(None,) + values.shape[1:],
                                       chunks=(max(1, min(len(values), 1 << 16)),) + values.shape[1:]
                                       if len(values) else None, compression="gzip")
        if name is not None:
            dataset.attrs["name"] = name
        return
    dataset = group[key]
    old = dataset.shape[0]
    dataset.resize((old + len(values),) + values.shape[1:])
    dataset[old:] = values


def merge(shards: list) -> ScoredRun:
    """One :class:`ScoredRun` of the shards of a run (``score --shard I/N``), given in shard order: the
    scores and events of every sample concatenated, the first :data:`LATENT_ROWS` latent rows of the shards. The shards must
    score the same methods and samples of the same run with the same fitted scorer
    (``meta["scorer_digest"]``); the error says which differs."""
    first = shards[0]
    for index, shard in enumerate(shards):
        info = shard.meta.get("shard") or {}
        if info.get("index") != index or info.get("count") != len(shards):
            raise ValueError(f"shard {index + 1} of {len(shards)}: the file holds shard {info.get('index')} of "
                             f"{info.get('count')}")
        if shard.methods != first.methods or list(shard.signals) != list(first.signals):
            raise ValueError(f"shard {index}: scores other methods or samples than shard 0 "
                             f"({shard.methods} / {list(shard.signals)})")
        if shard.meta.get("scorer_digest") != first.meta.get("scorer_digest"):
            raise ValueError(f"shard {index}: scored with another fitted scorer than shard 0 (the run changed between "
                             "the shards); score every shard again")

    def joined(get):
        parts = [get(shard) for shard in shards]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    signals = {name: joined(lambda r, n=name: r.signals[n]) for name in first.signals}
    events = {sample: joined(lambda r, s=sample: r.events.get(s, {})) for sample in first.events}
    meta = {**first.meta, "shard": {"merged": len(shards)}}
    latent = {sample: np.concatenate([shard.latent[sample] for shard in shards])[:LATENT_ROWS] for sample in first.latent}
    return ScoredRun(first.name, meta, joined(lambda r: r.background), signals, latent, first.history, events)
