"""The run directory: the files of one trained model, and every read and write of them.

``tfp-anomaly train`` writes a run directory, ``score`` and ``export-hls`` read it, a search writes its
best trial as one. This module alone knows the file names; every file is written to a temporary
name and renamed (:mod:`tfp_anomaly.atomic`), so an interruption leaves the old file or none::

    RUN/config.yaml    the resolved configuration the run was trained with
    RUN/data.json      what was read: files, events, removed events, grid or feature columns, split
    RUN/split.npz      the indices of the train/val/test parts in the background read
    RUN/last.keras     the model after the last finished epoch, with RUN/state.json (next epoch, best value,
                       the SHA-256 of last.keras, the history rows): one checkpoint (below)
    RUN/best.keras     the model at the best validation loss so far
    RUN/history.csv    one row of losses per epoch (written from state.json's rows)
    RUN/model.keras    the final model (its fitted scaler inside)
    RUN/summary.json   parameters, epochs, training time, final losses, latent diagnostics
    RUN/scores.h5      the scores of ``tfp-anomaly score`` (tfp_anomaly.report.ScoredRun)
    RUN/scorer.json    the fitted scoring statistics
    RUN/.lock          the lock of the process training into the directory (pid, host, start time)

**One run at a time.** Training into a run directory holds an exclusive ``flock`` on ``RUN/.lock``
(:meth:`RunDirectory.lock`: ``tfp-anomaly train`` for the whole run, :meth:`RunDirectory.claim` and
:func:`tfp_anomaly.models.training.train` whenever their caller does not hold it already); a second
process that tries to train into the directory fails at once with :class:`RunLockedError` naming the
holder (pid, host, start time, command). The lock nests within a process; it is released (and the file
removed) at the end of the outermost ``with run.lock():`` block, by :meth:`RunDirectory.release` or when
the process exits, and the kernel drops it if the process dies, so a killed run never blocks the next.

**The checkpoint is one unit.** ``last.keras`` and ``state.json`` are two files, each renamed into
place atomically, but an interruption can fall between the two renames. So ``state.json`` records the
SHA-256 and size of the ``last.keras`` it belongs to, the history rows up to its epoch and the
``previous`` state; it is written *before* the new ``last.keras`` is renamed into place. On resuming,
:meth:`RunDirectory.checkpoint` accepts ``last.keras`` only when it is the one ``state.json`` names
(interrupted after the rename) or the one its ``previous`` state names (interrupted between the two
renames: the run resumes one epoch earlier), rewrites ``history.csv`` from the rows of that epoch, and
refuses anything else with :class:`CheckpointError`: no epoch is ever trained twice and no history
row is lost or doubled.
"""
from __future__ import annotations

import atexit
import contextlib
import csv
import datetime
import fcntl
import hashlib
import io
import json
import os
import shutil
import socket
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np

from . import config as config_lib
from .atomic import atomic_path, save_model


class RunLockedError(ValueError):
    """Another process holds the run directory's lock; the message names it (pid, host, start time)."""


class CheckpointError(ValueError):
    """``last.keras`` and ``state.json`` do not form a checkpoint; the message names the files."""


class _Lock:
    """One held ``flock`` on a run directory's lock file: the open descriptor, the file and how often
    this process took it (:meth:`RunDirectory.acquire` nests)."""

    def __init__(self, fd: int, path: Path):
        self.fd, self.path, self.count = fd, path, 0


#: the run directories this process holds, by resolved path (a process never blocks on its own lock)
_HELD: dict[str, _Lock] = {}
_HELD_GUARD = threading.Lock()


def _holder_text(content: str) -> str:
    """The holder recorded in a lock file, in words."""
    try:
        holder = json.loads(content)
        return (f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}"
                + (f": {holder['command']}" if holder.get("command") else ""))
    except (ValueError, KeyError, TypeError):
        return "holder not recorded yet" if not content.strip() else f"holder {content.strip()[:200]!r}"


def _take_lock(lock_file: Path) -> int:
    """An open descriptor holding an exclusive ``flock`` on ``lock_file``, the holder written into it;
    :class:`RunLockedError` when another open file holds it. Changes no file when it fails."""
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with os.fdopen(fd, "r") as handle:
                holder = _holder_text(handle.read(4096))
            raise RunLockedError(f"{lock_file.parent}: in use by another run ({holder}); wait for it to end "
                                 "or choose another --run-dir") from None
        # a holder releasing removes the file; if that happened between our open and flock we hold a
        # lock on a file no one else will ever open: take the one now at the path instead
        try:
            here, there = os.fstat(fd), os.stat(lock_file)
            current = (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else ""}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(holder).encode())
    return fd


def _drop_lock(lock: _Lock) -> None:
    """Remove the lock file (while still holding it, so no one else holds a lock on it) and release."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock.path)
    os.close(lock.fd)


@atexit.register
def _release_all() -> None:
    with _HELD_GUARD:
        for lock in _HELD.values():
            _drop_lock(lock)
        _HELD.clear()


def file_digest(path) -> dict:
    """``{"sha256": ..., "size": ...}`` of a file: what :meth:`RunDirectory.checkpoint` compares."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "size": size}


class RunDirectory:
    """The files of one run in directory ``path`` (module docstring); ``str(run)`` is the path.

    Args:
        path: the run directory (need not exist yet for a run about to be trained).
    """

    CONFIG = "config.yaml"
    DATA = "data.json"
    SPLIT = "split.npz"
    LAST = "last"      # .keras
    BEST = "best"      # .keras
    MODEL = "model"    # .keras
    STATE = "state.json"
    HISTORY = "history.csv"
    SUMMARY = "summary.json"
    SCORES = "scores.h5"
    SCORER = "scorer.json"
    LOCK = ".lock"

    def __init__(self, path):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        """The path of one of the run's files (a name of this class, e.g. ``RunDirectory.SCORES``)."""
        return self.path / name

    def model_file(self, which: str = MODEL) -> Path:
        """``RUN/<which>.keras`` (``model``, ``last`` or ``best``)."""
        return self.path / f"{which}.keras"

    def exists(self) -> bool:
        """True when the directory holds a run (its ``config.yaml``)."""
        return self.file(self.CONFIG).exists()

    # ------------------------------------------------------------------ the lock
    def _key(self) -> str:
        return os.path.realpath(self.path)

    def acquire(self) -> None:
        """Take the run's lock (creating the directory), or raise :class:`RunLockedError` naming the
        process that holds it; nests within a process (each call needs a :meth:`release`)."""
        with _HELD_GUARD:
            lock = _HELD.get(self._key())
            if lock is None:
                if self.path.exists() and not self.path.is_dir():
                    raise ValueError(f"{self.path}: not a directory (a run directory was expected)")
                self.path.mkdir(parents=True, exist_ok=True)
                lock_file = Path(self._key()) / self.LOCK
                lock = _HELD[self._key()] = _Lock(_take_lock(lock_file), lock_file)
            lock.count += 1

    def release(self) -> None:
        """Undo one :meth:`acquire`; the last one releases the lock and removes ``RUN/.lock``."""
        with _HELD_GUARD:
            lock = _HELD.get(self._key())
            if lock is None:
                return
            lock.count -= 1
            if lock.count <= 0:
                del _HELD[self._key()]
                _drop_lock(lock)

    def holds_lock(self) -> bool:
        """True when this process holds the run's lock."""
        with _HELD_GUARD:
            return self._key() in _HELD

    @contextlib.contextmanager
    def lock(self):
        """``with run.lock():`` hold the run's lock for the block (:meth:`acquire`, :meth:`release`)."""
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    # ------------------------------------------------------------------ configuration
    def read_config(self) -> dict:
        """The resolved configuration the run was trained with."""
        import yaml

        path = self.file(self.CONFIG)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path}: not a run directory (a file, not a directory)")
        if not path.exists():
            raise FileNotFoundError(f"{self.path}: not a run directory (no {self.CONFIG})")
        try:
            config = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise config_lib.ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
        if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
            raise config_lib.ConfigError(f"{path}: not the configuration of a run (a mapping with a 'model' section)")
        return config

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.file(self.CONFIG)) as tmp:
            tmp.write_text(config_lib.dump(config))

    def claim(self, config: dict, overwrite: bool = False, comparable=lambda c: c) -> None:
        """Take the directory for a run of ``config``: take its lock (:meth:`acquire`; when the caller
        does not hold it already, it is held until :meth:`release` or the process ends), then write
        ``config.yaml``. Refuses (changing no file) a directory that holds a run whose configuration
        differs (after ``comparable``, which drops the keys that may change between an interrupted
        run and its continuation) unless ``overwrite``, which deletes it (only ever a directory
        recognisable as a run), and a run whose checkpoint is broken (:meth:`checkpoint`)."""
        taken = not self.holds_lock()
        if taken:
            self.acquire()
        try:
            if overwrite and self.exists():
                self._clear()
            # a run written before a key existed holds that key's default
            elif self.exists():
                if comparable(config_lib.merge(config_lib.DEFAULTS, self.read_config())) \
                        != comparable(config_lib.merge(config_lib.DEFAULTS, config)):
                    raise config_lib.ConfigError(f"{self.path} holds a run of a different configuration "
                                                 f"({self.file(self.CONFIG)}); choose another --run-dir or pass "
                                                 "--overwrite")
                self.checkpoint(repair=False)
            self.write_config(config)
        except BaseException:
            if taken:
                self.release()
            raise

    def _clear(self) -> None:
        """Delete the run's files, all but the lock this process holds."""
        for child in self.path.iterdir():
            if child.name == self.LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    # ------------------------------------------------------------------ JSON files
    def read_json(self, name: str, default=None):
        """The content of ``RUN/<name>`` (a JSON file of the run), or ``default`` when it is absent;
        a ValueError naming the file when it is not JSON."""
        path = self.file(name)
        if not path.exists():
            return default
        try:
            return json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err}); the file is damaged") from None

    def write_json(self, name: str, content) -> None:
        with atomic_path(self.file(name)) as tmp:
            tmp.write_text(json.dumps(content, indent=2, default=str))

    def read_summary(self) -> dict:
        """``summary.json`` (``{}`` before the run finished)."""
        summary = self.read_json(self.SUMMARY, {})
        if not isinstance(summary, dict):
            raise ValueError(f"{self.file(self.SUMMARY)}: not a run summary (a JSON object)")
        return summary

    def read_state(self) -> dict:
        """The checkpoint's ``state.json`` (next epoch, best value, ...), ``{}`` before the first epoch;
        :class:`CheckpointError` when it is damaged."""
        try:
            state = self.read_json(self.STATE, {})
        except ValueError as err:
            raise CheckpointError(f"{err}: delete {self.STATE} and {self.LAST}.keras to train the run afresh, "
                                  "or pass --overwrite") from None
        if not isinstance(state, dict) or (state and not isinstance(state.get("epoch"), int)):
            raise CheckpointError(f"{self.file(self.STATE)}: not a checkpoint state (a JSON object with an integer "
                                  "'epoch'); the file is damaged")
        return state

    # ------------------------------------------------------------------ checkpoint
    def write_checkpoint(self, model, epoch: int, best: float | None, monitor: str, row: dict) -> None:
        """The checkpoint after ``epoch`` epochs (module docstring): ``model`` to a temporary file,
        ``state.json`` naming it (its digest, the history rows up to ``epoch`` with ``row`` last, the
        state before as ``previous``), the model renamed to ``last.keras``, ``history.csv`` rewritten."""
        before = self.read_state()
        continues = before.get("epoch") == epoch - 1 and self.model_file(self.LAST).exists()
        earlier = (before["history"] if "history" in before else self._history_rows_or_none() or []) if continues else []
        rows = [r for r in earlier if r.get("epoch", 0) < epoch - 1]
        rows.append({"epoch": epoch - 1, **{k: _plain(v) for k, v in row.items() if k != "epoch"}})
        # what a kill between the state and the rename leaves: the last.keras on disk, of epoch - 1 (a
        # state of a release without digests gets the digest of the file it goes with)
        previous = {"epoch": before["epoch"], "best": before.get("best"), "monitor": before.get("monitor"),
                    "last": before.get("last") or file_digest(self.model_file(self.LAST))} if continues else None
        with atomic_path(self.model_file(self.LAST), suffix=".partial.keras") as tmp:
            model.save(tmp)
            state = {"epoch": epoch, "best": best, "monitor": monitor, "last": file_digest(tmp),
                     "history": rows, "previous": previous}
            self.write_json(self.STATE, state)  # a kill from here to the rename resumes from `previous`
        self.write_history(rows)

    def checkpoint(self, repair: bool = True) -> dict:
        """The state to resume from: ``{}`` when there is no checkpoint, else ``state.json`` (or its
        ``previous`` state, when an interruption fell between writing it and renaming ``last.keras``)
        after checking that ``last.keras`` is the model it names. With ``repair``, ``history.csv`` is
        rewritten from the rows of that state. :class:`CheckpointError` when the files do not belong
        together (``last.keras`` replaced, truncated or missing). A ``state.json`` of a release without
        digests is taken as it is."""
        state = self.read_state()
        last = self.model_file(self.LAST)
        if not state or state["epoch"] == 0:
            return {}
        if "last" not in state:  # written before checkpoints carried a digest
            return state if last.exists() else {}
        if not last.exists() and state.get("previous") is None and state.get("history") is not None:
            return {}  # interrupted before the first model landed: nothing to resume from
        if not last.exists():
            raise CheckpointError(f"{self.file(self.STATE)} records epoch {state['epoch']}, but {last} is missing: "
                                  "the checkpoint is incomplete; pass --overwrite to train the run afresh")
        digest = file_digest(last)
        previous = state.get("previous") or {}
        if digest == state["last"]:
            chosen = state
        elif previous.get("last") == digest:
            chosen = {**previous, "history": state.get("history", []), "previous": None}
        else:
            raise CheckpointError(f"{last} is not the model {self.file(self.STATE)} records for epoch "
                                  f"{state['epoch']} (SHA-256 {digest['sha256'][:12]}..., {digest['size']} bytes, "
                                  f"expected {state['last']['sha256'][:12]}..., {state['last']['size']} bytes): "
                                  "the checkpoint was changed; pass --overwrite to train the run afresh")
        rows = [r for r in chosen.get("history", []) if r.get("epoch", 0) < chosen["epoch"]]
        chosen = {**chosen, "history": rows}
        if repair:
            if chosen != state:  # the state of the epoch resumed from, so the next checkpoint builds on it
                self.write_json(self.STATE, chosen)
            if rows != self._history_rows_or_none():
                self.write_history(rows)
        return chosen

    # ------------------------------------------------------------------ split
    def write_split(self, split) -> None:
        """Store ``split`` (a :class:`tfp_anomaly.data.Split` or its ``{"train", "val", "test"}`` indices)
        as one byte per event (:meth:`~tfp_anomaly.data.Split.codes`, compressed)."""
        codes = _split_of(split).codes()
        with atomic_path(self.file(self.SPLIT)) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, codes=codes)

    def read_split(self):
        """The run's :class:`tfp_anomaly.data.Split` (``split.npz``: part codes, or the index arrays of
        runs written before the codes)."""
        from .data.splits import Split

        path = self.file(self.SPLIT)
        if not path.exists():
            raise FileNotFoundError(f"{self.path}: no {self.SPLIT} (the run's train/val/test indices); "
                                    "the run directory is incomplete")
        try:
            saved = dict(np.load(path))
            return Split.from_codes(saved["codes"]) if "codes" in saved else Split(**saved)
        except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path}: not the run's split (a NumPy .npz file): {err}") from None

    def check_split(self, split) -> None:
        """Raise when ``split`` (made now from the configuration) differs from the run's ``split.npz``:
        the input files changed, and scores could fall on events the model trained on."""
        saved, now = self.read_split().codes(), _split_of(split).codes()
        if len(saved) != len(now):
            raise ValueError(f"{self.path}: the background read now has {len(now):,} events where the model was "
                             f"trained on a split of {len(saved):,} ({self.SPLIT}): the input files changed")
        differ = np.flatnonzero(saved != now)
        if len(differ):
            raise ValueError(f"{self.path}: the background read now does not split as when the model was trained "
                             f"(event {differ[0]} is in another part than in {self.SPLIT}): the input files changed")

    # ------------------------------------------------------------------ models
    def save_model(self, model, which: str = MODEL) -> None:
        save_model(model, self.model_file(which))

    def load_model(self, which: str = MODEL):
        """``RUN/<which>.keras`` (the final model by default, its scaler inside)."""
        from .models import load_model

        path = self.model_file(which)
        if not path.exists():
            raise FileNotFoundError(f"{self.path}: no {path.name} (train the run to the end first: tfp-anomaly train)")
        return load_model(path)

    # ------------------------------------------------------------------ results
    def _history_rows_or_none(self):
        try:
            return self._history_rows()
        except ValueError:
            return None

    def _history_rows(self) -> list[dict] | None:
        path = self.file(self.HISTORY)
        if not path.exists():
            return None
        try:
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
            return [{k: (int(v) if k == "epoch" else (float(v) if v not in ("", None) else None))
                     for k, v in row.items()} for row in rows]
        except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a table of losses per epoch ({err}); the file is damaged") from None

    def write_history(self, rows: list[dict]) -> None:
        """``history.csv`` from ``rows`` (``{"epoch": e, metric: value}``): a column per metric."""
        keys = sorted({k for row in rows for k in row if k != "epoch"})
        out = io.StringIO()
        writer = csv.DictWriter(out, ["epoch", *keys], restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        with atomic_path(self.file(self.HISTORY)) as tmp:
            tmp.write_text(out.getvalue())

    def read_history(self) -> dict | None:
        """``history.csv`` as ``{metric: [per epoch]}``, or None; a ValueError naming the file when it
        is not a table of numbers."""
        rows = self._history_rows()
        if rows is None:
            return None
        keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
        return {k: [float("nan") if row.get(k) is None else row[k] for row in rows] for k in keys}

    def input_shape(self) -> tuple:
        """The shape of one event the run's model takes: ``summary.json``'s ``input_shape``, else the model's."""
        summary = self.read_summary()
        if "input_shape" in summary:
            return tuple(int(n) for n in summary["input_shape"])
        return tuple(self.load_model().event_shape)

    def training_columns(self) -> list[str] | None:
        """The feature-table columns the run trained on (``data.json``), None for events."""
        return self.read_json(self.DATA, {}).get("columns")

    @property
    def scores_file(self) -> Path:
        return self.file(self.SCORES)

    def shard_file(self, index: int, count: int) -> Path:
        """``RUN/scores.shard-I-of-N.h5``: the scores of shard I of N (``tfp-anomaly score --shard I/N``)."""
        return self.file(f"scores.shard-{index}-of-{count}.h5")

    def shard_files(self) -> dict:
        """``{N: {I: path}}`` of the shard score files in the run directory."""
        found: dict = {}
        for path in sorted(self.path.glob("scores.shard-*-of-*.h5")):
            index, _, count = path.name[len("scores.shard-"):-len(".h5")].partition("-of-")
            if index.isdigit() and count.isdigit():
                found.setdefault(int(count), {})[int(index)] = path
        return found

    def load_scores(self):
        """The run's scores (:class:`tfp_anomaly.report.ScoredRun`): ``scores.h5``, or the shards of
        ``score --shard I/N`` merged in order when they are all there and newer than ``scores.h5``
        (an incomplete set of shards, or shards of several counts, is an error naming the files)."""
        from .report.results import ScoredRun, merge

        shards = self.shard_files()
        whole = self.scores_file
        if not shards:
            return ScoredRun.load(whole)
        if len(shards) > 1:
            raise ValueError(f"{self.path}: shards of {' and '.join(str(n) for n in sorted(shards))} shards; "
                             "remove the files of the shards that are not current")
        (count, files), = shards.items()
        newest_whole = whole.stat().st_mtime if whole.exists() else -1.0
        if whole.exists() and max(p.stat().st_mtime for p in files.values()) < newest_whole:
            return ScoredRun.load(whole)
        missing = [str(i) for i in range(count) if i not in files]
        if missing:
            raise FileNotFoundError(f"{self.path}: shard(s) {', '.join(missing)} of {count} missing (tfp-anomaly score "
                                    f"{self.path} --shard I/{count}), found {', '.join(p.name for p in files.values())}")
        return merge([ScoredRun.load(files[i]) for i in range(count)])

    def write_scorer(self, state: dict) -> None:
        with atomic_path(self.file(self.SCORER)) as tmp:
            tmp.write_text(json.dumps(state))


def _split_of(split):
    from .data.splits import Split

    return split if hasattr(split, "codes") else Split(**split)  # a Split, or a streamed run's codes


def _plain(value):
    """A log value as a JSON number (NaN and inf as strings JSON can hold)."""
    value = float(value)
    return value if np.isfinite(value) else str(value)
