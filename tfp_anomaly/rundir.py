"""The run directory: the files of one trained model, and every read and write of them.

``tfp-anomaly train`` writes a run directory, ``score`` and ``export-hls`` read it, a search writes its
best trial as one. This module alone knows the file names; every file is written to a temporary
name and renamed (:mod:`tfp_anomaly.atomic`), so an interruption leaves the old file or none::

    RUN/config.yaml    the resolved configuration the run was trained with
    RUN/data.json      what was read: files, events, removed events, grid or feature columns, split
    RUN/split.npz      the indices of the train/val/test parts in the background read
    RUN/last.keras     the model after the last finished epoch, with RUN/state.json (next epoch, best value)
    RUN/best.keras     the model at the best validation loss so far
    RUN/history.csv    one row of losses per epoch
    RUN/model.keras    the final model (its fitted scaler inside)
    RUN/summary.json   parameters, epochs, training time, final losses, latent diagnostics
    RUN/scores.h5      the scores of ``tfp-anomaly score`` (tfp_anomaly.report.ScoredRun)
    RUN/scorer.json    the fitted scoring statistics
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from . import config as config_lib
from .atomic import atomic_path, save_model


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

    # ------------------------------------------------------------------ configuration
    def read_config(self) -> dict:
        """The resolved configuration the run was trained with."""
        import yaml

        path = self.file(self.CONFIG)
        if not path.exists():
            raise FileNotFoundError(f"{self.path}: not a run directory (no {self.CONFIG})")
        return yaml.safe_load(path.read_text())

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.file(self.CONFIG)) as tmp:
            tmp.write_text(config_lib.dump(config))

    def claim(self, config: dict, overwrite: bool = False, comparable=lambda c: c) -> None:
        """Take the directory for a run of ``config``: write ``config.yaml``; refuse a directory that
        holds a run whose configuration differs (after ``comparable``, which drops the keys that may
        change between an interrupted run and its continuation) unless ``overwrite``, which deletes it
        (only ever a directory recognisable as a run)."""
        if overwrite and self.exists():
            shutil.rmtree(self.path)
        # a run written before a key existed holds that key's default
        elif self.exists() and comparable(config_lib.merge(config_lib.DEFAULTS, self.read_config())) \
                != comparable(config_lib.merge(config_lib.DEFAULTS, config)):
            raise config_lib.ConfigError(f"{self.path} holds a run of a different configuration "
                                         f"({self.file(self.CONFIG)}); choose another --run-dir or pass --overwrite")
        self.write_config(config)

    # ------------------------------------------------------------------ JSON files
    def read_json(self, name: str, default=None):
        """The content of ``RUN/<name>`` (a JSON file of the run), or ``default`` when it is absent."""
        path = self.file(name)
        return json.loads(path.read_text()) if path.exists() else default

    def write_json(self, name: str, content) -> None:
        with atomic_path(self.file(name)) as tmp:
            tmp.write_text(json.dumps(content, indent=2, default=str))

    def read_summary(self) -> dict:
        """``summary.json`` (``{}`` before the run finished)."""
        return self.read_json(self.SUMMARY, {})

    def read_state(self) -> dict:
        """The checkpoint's ``state.json`` (next epoch, best value), ``{}`` before the first epoch."""
        return self.read_json(self.STATE, {})

    def write_state(self, epoch: int, best: float | None, monitor: str) -> None:
        with atomic_path(self.file(self.STATE)) as tmp:
            tmp.write_text(json.dumps({"epoch": epoch, "best": best, "monitor": monitor}))

    # ------------------------------------------------------------------ split
    def write_split(self, split: dict) -> None:
        with atomic_path(self.file(self.SPLIT)) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **split)

    def check_split(self, split: dict) -> None:
        """Raise when ``split`` (made now from the configuration) differs from the run's ``split.npz``:
        the input files changed, and scores could fall on events the model trained on."""
        saved = np.load(self.file(self.SPLIT))
        for part, index in split.items():
            if part in saved and not np.array_equal(saved[part], index):
                raise ValueError(f"{self.path}: the background read now does not split as when the model was "
                                 f"trained (part {part!r} differs from {self.SPLIT}): the input files changed")

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

    def has_checkpoint(self) -> bool:
        return self.model_file(self.LAST).exists() and bool(self.read_state())

    # ------------------------------------------------------------------ results
    def read_history(self) -> dict | None:
        """``history.csv`` as ``{metric: [per epoch]}``, or None."""
        import pandas as pd

        path = self.file(self.HISTORY)
        if not path.exists():
            return None
        frame = pd.read_csv(path)
        return {c: frame[c].astype(float).tolist() for c in frame.columns if c != "epoch"}

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

    def write_scorer(self, state: dict) -> None:
        with atomic_path(self.file(self.SCORER)) as tmp:
            tmp.write_text(json.dumps(state))
