"""Feature scalers fit on the training background only, then applied unchanged to everything else.

Inputs are (N, F) tables or (N, R, F) object grids with an optional (N, R) mask of real slots.
Statistics are per feature (last axis), pooled over events and real slots (``per_slot=False``) or
kept per (slot, feature) (``per_slot=True``). Padded slots are excluded from the statistics and
stay exactly 0 after ``transform``. ``log_columns`` are mapped by log1p first (they must be
non-negative: energies, momenta, masses). A constant column gets scale 1 (no division by zero).

Fitting on background only matters: the original DarkFlow code scaled signal with its own
statistics, which hides real differences between signal and background.

Scalers are plain JSON-serialisable state (``get_config`` / ``from_config``, ``save`` / ``load``),
so a model can store its preprocessing with its weights.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .._atomic import atomic_path


class Scaler:
    """Base class: ``x' = (f(x) - center) / scale`` with ``f`` = log1p on ``log_columns``."""

    name = "base"

    def __init__(self, log_columns: Sequence[int] = (), per_slot: bool = False):
        self.log_columns = [int(c) for c in log_columns]
        self.per_slot = bool(per_slot)
        self.center_ = None
        self.scale_ = None

    # -- statistics, overridden by subclasses
    def _statistics(self, values: np.ndarray):
        raise NotImplementedError

    def _statistics_or_identity(self, values: np.ndarray):
        """Statistics of ``values``; a slot never filled in the training data gets centre 0, scale 1."""
        if len(values) == 0:
            return np.zeros(values.shape[-1]), np.ones(values.shape[-1])
        return self._statistics(values)

    # -- public API
    def fit(self, x, mask=None) -> "Scaler":
        x = self._forward_log(np.asarray(x, np.float64))
        if self.per_slot and x.ndim == 3:
            stats = [self._statistics_or_identity(x[:, r][self._rows(mask, r, len(x))]) for r in range(x.shape[1])]
            center, scale = (np.stack(s) for s in zip(*stats))
        else:
            flat = x.reshape(-1, x.shape[-1])
            if mask is not None:
                flat = flat[np.asarray(mask, bool).reshape(-1)]
            center, scale = self._statistics_or_identity(flat)
        self.center_ = center
        self.scale_ = np.where(scale > 0, scale, 1.0)  # constant column: leave it centred, unscaled
        return self

    def transform(self, x, mask=None) -> np.ndarray:
        self._check_fitted()
        x = np.asarray(x)
        out = ((self._forward_log(x.astype(np.float64)) - self.center_) / self.scale_).astype(np.float32)
        return self._zero_padding(out, mask)

    def fit_transform(self, x, mask=None) -> np.ndarray:
        return self.fit(x, mask).transform(x, mask)

    def inverse_transform(self, x, mask=None) -> np.ndarray:
        self._check_fitted()
        out = np.asarray(x, np.float64) * self.scale_ + self.center_
        if self.log_columns:
            out[..., self.log_columns] = np.expm1(out[..., self.log_columns])
        return self._zero_padding(out.astype(np.float32), mask)

    # -- serialisation
    def get_config(self) -> dict:
        return {"name": self.name, "log_columns": self.log_columns, "per_slot": self.per_slot,
                "center": None if self.center_ is None else np.asarray(self.center_).tolist(),
                "scale": None if self.scale_ is None else np.asarray(self.scale_).tolist()}

    @classmethod
    def from_config(cls, config: dict) -> "Scaler":
        scaler = get_scaler(config["name"], log_columns=config.get("log_columns", ()),
                            per_slot=config.get("per_slot", False))
        if config.get("center") is not None:
            scaler.center_ = np.asarray(config["center"], np.float64)
            scaler.scale_ = np.asarray(config["scale"], np.float64)
        return scaler

    def save(self, path) -> Path:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.get_config(), indent=1))
        return Path(path)

    @staticmethod
    def load(path) -> "Scaler":
        return Scaler.from_config(json.loads(Path(path).read_text()))

    # -- helpers
    def _forward_log(self, x: np.ndarray) -> np.ndarray:
        if not self.log_columns:
            return x
        cols = x[..., self.log_columns]
        if np.any(cols < 0):
            bad = self.log_columns[int(np.argwhere(cols < 0)[0][-1])]
            raise ValueError(f"log transform of column {bad} needs non-negative values, found {cols.min():g}")
        x = x.copy()
        x[..., self.log_columns] = np.log1p(cols)
        return x

    @staticmethod
    def _rows(mask, r, n):
        return np.ones(n, bool) if mask is None else np.asarray(mask, bool)[:, r]

    @staticmethod
    def _zero_padding(out: np.ndarray, mask) -> np.ndarray:
        if mask is not None:
            out[~np.asarray(mask, bool)] = 0.0
        return out

    def _check_fitted(self):
        if self.center_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() on the training background")


class StandardScaler(Scaler):
    """Centre by the mean, scale by the standard deviation."""

    name = "standard"

    def _statistics(self, values):
        return values.mean(axis=0), values.std(axis=0)


class RobustScaler(Scaler):
    """Centre by the median, scale by the inter-quartile range (robust to the long pT tails)."""

    name = "robust"

    def _statistics(self, values):
        q25, q50, q75 = np.percentile(values, [25, 50, 75], axis=0)
        return q50, q75 - q25


class MinMaxScaler(Scaler):
    """Map the training range to [0, 1]."""

    name = "minmax"

    def _statistics(self, values):
        low, high = values.min(axis=0), values.max(axis=0)
        return low, high - low


class IdentityScaler(Scaler):
    """No scaling (log columns still apply)."""

    name = "none"

    def _statistics(self, values):
        width = values.shape[-1]
        return np.zeros(width), np.ones(width)


SCALERS = {cls.name: cls for cls in (StandardScaler, RobustScaler, MinMaxScaler, IdentityScaler)}


def get_scaler(name: str, **kwargs) -> Scaler:
    """Scaler by name: ``standard``, ``robust``, ``minmax`` or ``none``."""
    try:
        return SCALERS[name](**kwargs)
    except KeyError:
        raise KeyError(f"unknown scaler {name!r}; available: {', '.join(SCALERS)}") from None
