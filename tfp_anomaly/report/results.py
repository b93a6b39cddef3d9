"""The scores of one trained model on a test set: what ``tfp-anomaly score`` writes and ``report`` reads.

The file (``RUN/scores.h5`` of a run directory, :mod:`tfp_anomaly.rundir`; written to a temporary file,
then renamed):

    attrs["meta"]                JSON: name, model type, prior, flow, parameters, scoring config, ...
    background/<method>          (N_B,) scores of the held-out background test events
    signal/<signal>/<method>     (N_S,) scores of each signal sample
    latent/background            (n, d) encodings of up to LATENT_ROWS background events (pair plots)
    latent/<signal>              (n, d) encodings of up to LATENT_ROWS events of each signal
    history                      JSON of the training history (attrs), when the run has one

Method and signal names are kept verbatim in attributes (they may contain ``+``, ``:`` or ``*``).
"""
from __future__ import annotations

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

    @property
    def methods(self) -> list[str]:
        return list(self.background)

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
                signals = {g.attrs["name"]: _read_group(g) for g in f["signal"].values()}
                return cls(str(f.attrs["name"]), json.loads(f.attrs["meta"]), _read_group(f["background"]), signals,
                           _read_group(f["latent"]), history)
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
