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

from ..atomic import atomic_path
from ..registry import Registry


#: scaler name -> :class:`Scaler` subclass (registering sets the class's ``name``).
SCALERS = Registry("scaler", name_attribute="name")


class Scaler:
    """A per-feature affine map fit on the training background: x' = (f(x) − c) / s.

    ``f`` is log1p on ``log_columns`` and the identity elsewhere; the centre ``c`` and scale ``s``
    (``center_``, ``scale_``: shape ``(F,)``, or ``(R, F)`` with ``per_slot``) are the statistics a
    subclass computes from f(x) of the real slots; s = 0 (a constant column) is replaced by 1.

    Args:
        log_columns: feature indices (last axis) mapped by log1p before the statistics; their
            values must be non-negative.
        per_slot: for an ``(N, R, F)`` grid, statistics per (slot, feature) instead of per feature
            pooled over the real slots.

    ``fit(x, mask)`` / ``transform(x, mask)`` take ``x`` of shape ``(N, F)`` or ``(N, R, F)`` and an
    optional ``(N, R)`` boolean mask of real slots; padded slots are left out of the statistics and
    are 0 after ``transform``.
    """

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
        """Compute ``center_`` and ``scale_`` from the training background ``x`` (its real slots); returns self."""
        x = np.asarray(x)
        if self.per_slot and x.ndim == 3:
            x = self._forward_log(x.astype(np.float64))
            stats = [self._statistics_or_identity(x[:, r][self._rows(mask, r, len(x))]) for r in range(x.shape[1])]
            center, scale = (np.stack(s) for s in zip(*stats))
        else:
            flat = x.reshape(-1, x.shape[-1])
            if mask is not None:  # the real slots first: float64 copies of those only (the same values)
                flat = flat[np.asarray(mask, bool).reshape(-1)]
            center, scale = self._statistics_or_identity(self._forward_log(flat.astype(np.float64)))
        self.center_ = center
        self.scale_ = np.where(scale > 0, scale, 1.0)  # constant column: leave it centred, unscaled
        return self

    def transform(self, x, mask=None) -> np.ndarray:
        """x' as float32, of the shape of ``x``; padded slots are 0."""
        self._check_fitted()
        x = np.asarray(x)
        out = ((self._forward_log(x.astype(np.float64)) - self.center_) / self.scale_).astype(np.float32)
        return self._zero_padding(out, mask)

    def fit_transform(self, x, mask=None) -> np.ndarray:
        """:meth:`fit` on ``x``, then :meth:`transform` it."""
        return self.fit(x, mask).transform(x, mask)

    def inverse_transform(self, x, mask=None) -> np.ndarray:
        """x = f⁻¹(x' s + c) (expm1 on the log columns); padded slots are 0."""
        self._check_fitted()
        out = np.asarray(x, np.float64) * self.scale_ + self.center_
        if self.log_columns:
            out[..., self.log_columns] = np.expm1(out[..., self.log_columns])
        return self._zero_padding(out.astype(np.float32), mask)

    # -- serialisation
    def get_config(self) -> dict:
        """The scaler as a JSON-serialisable dict: its name, arguments and fitted statistics."""
        return {"name": self.name, "log_columns": self.log_columns, "per_slot": self.per_slot,
                "center": None if self.center_ is None else np.asarray(self.center_).tolist(),
                "scale": None if self.scale_ is None else np.asarray(self.scale_).tolist()}

    @classmethod
    def from_config(cls, config: dict) -> "Scaler":
        """The scaler of :meth:`get_config`'s dict (of the registered class its ``name`` names)."""
        extra = {k: config[k] for k in ("n_quantiles", "bounds") if k in config}
        scaler = get_scaler(config["name"], log_columns=config.get("log_columns", ()),
                            per_slot=config.get("per_slot", False), **extra)
        scaler._set_state(config)
        return scaler

    def _set_state(self, config: dict) -> None:
        if config.get("center") is not None:
            self.center_ = np.asarray(config["center"], np.float64)
            self.scale_ = np.asarray(config["scale"], np.float64)

    def save(self, path) -> Path:
        """Write :meth:`get_config` as JSON to ``path`` (atomically); returns the path."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.get_config(), indent=1))
        return Path(path)

    @staticmethod
    def load(path) -> "Scaler":
        """The scaler saved at ``path`` by :meth:`save`."""
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


@SCALERS.register("standard")
class StandardScaler(Scaler):
    """Standardisation: x' = (f(x) − μ) / σ, μ and σ the training background's mean and standard
    deviation. Arguments as :class:`Scaler`."""

    def _statistics(self, values):
        return values.mean(axis=0), values.std(axis=0)


@SCALERS.register("robust")
class RobustScaler(Scaler):
    """x' = (f(x) − median) / (q₇₅ − q₂₅): centred by the training background's median, scaled by its
    inter-quartile range (robust to the long pT tails). Arguments as :class:`Scaler`."""

    def _statistics(self, values):
        q25, q50, q75 = np.percentile(values, [25, 50, 75], axis=0)
        return q50, q75 - q25


@SCALERS.register("minmax")
class MinMaxScaler(Scaler):
    """x' = (f(x) − min) / (max − min): the training background's range mapped to [0, 1].
    Arguments as :class:`Scaler`."""

    def _statistics(self, values):
        low, high = values.min(axis=0), values.max(axis=0)
        return low, high - low


@SCALERS.register("none")
class IdentityScaler(Scaler):
    """No scaling: x' = f(x) (the log columns still apply). Arguments as :class:`Scaler`."""

    def _statistics(self, values):
        width = values.shape[-1]
        return np.zeros(width), np.ones(width)


@SCALERS.register("quantile")
class QuantileScaler(Scaler):
    """Gaussianise each feature ("Gauss rank"): x' = Φ⁻¹(F̂(x)), F̂ the training background's empirical
    CDF, interpolated linearly between ``n_quantiles`` quantiles; a value many events share (a discrete
    count) maps to the middle of its band of the CDF. ``bounds="edge"`` (the default, as scikit-learn's
    ``QuantileTransformer``): values at the background's minimum or maximum map to ∓Φ⁻¹(1 − p), which
    sets a pile-up at a bound (an empty energy ring, eRing = 0) far from the continuum, "no energy
    there" being a state of its own; ``"middle"`` treats such a pile-up as any other tie. The heavy
    tails and discrete values of jet substructure features stop dominating distances, and every
    marginal outlier shows as a large |x'|.

    Clamp: F̂ is limited to [p, 1 − p] with p = :attr:`TAIL_PROBABILITY` (Φ⁻¹ of 0 or 1 is infinite);
    beyond the training range x' grows logarithmically, Φ⁻¹(1 − p) + log(1 + (x − q_max)/s) with s the
    feature's robust scale (IQR/1.349): values outside the background's range keep their order instead
    of all mapping to one edge, yet a heavy tail (a mass of several TeV) cannot swamp the other
    features as a linear extension would. Pooled over real slots; ``per_slot`` is not supported.

    Args:
        log_columns: as :class:`Scaler` (log1p before the quantiles).
        per_slot: must be False.
        n_quantiles: K, the number of quantiles of F̂ (at most the number of training values).
        bounds: ``"edge"`` or ``"middle"``, the map of the background's minimum and maximum (above).

    Compare scikit-learn's ``QuantileTransformer(output_distribution="normal")``, which clips values
    beyond the training range to its edges.
    """

    TAIL_PROBABILITY = 1e-7  # Φ⁻¹(1 − 1e-7) = 5.2, scikit-learn's bound
    BOUNDS = ("edge", "middle")

    def __init__(self, log_columns: Sequence[int] = (), per_slot: bool = False, n_quantiles: int = 1000,
                 bounds: str = "edge"):
        if per_slot:
            raise ValueError("the quantile scaler pools over slots; per_slot=True is not supported")
        if bounds not in self.BOUNDS:
            raise ValueError(f"quantile scaler: bounds must be one of {', '.join(self.BOUNDS)}, got {bounds!r}")
        super().__init__(log_columns, per_slot)
        self.n_quantiles = int(n_quantiles)
        self.bounds = bounds
        self.quantiles_ = None

    def _statistics(self, values):
        levels = np.linspace(0.0, 1.0, min(self.n_quantiles, len(values)))
        self.quantiles_ = np.quantile(values, levels, axis=0)  # (K, F), non-decreasing per column
        q25, q75 = np.percentile(values, [25, 75], axis=0)
        return np.zeros(values.shape[-1]), (q75 - q25) / 1.349

    def transform(self, x, mask=None) -> np.ndarray:
        """x' = Φ⁻¹(F̂(f(x))) as float32 (the class docstring's clamp beyond the range); padded slots are 0."""
        from scipy.special import ndtri

        self._check_fitted()
        x = self._forward_log(np.asarray(x, np.float64))
        q, k = self.quantiles_, len(self.quantiles_)
        levels = np.linspace(0.0, 1.0, k)
        out = np.empty_like(x)
        for f in range(x.shape[-1]):  # mean of the top and the bottom of a tied band (its middle)
            out[..., f] = 0.5 * (np.interp(x[..., f], q[:, f], levels)
                                 - np.interp(-x[..., f], -q[::-1, f], -levels[::-1]))
        if self.bounds == "edge":  # the background's minimum and maximum map to the edges
            out = np.where(x <= q[0], 0.0, np.where(x >= q[-1], 1.0, out))
        p = self.TAIL_PROBABILITY
        out = ndtri(np.clip(out, p, 1.0 - p))
        edge = ndtri(1.0 - p)
        out = np.where(x > q[-1], edge + np.log1p(np.maximum(x - q[-1], 0.0) / self.scale_), out)
        out = np.where(x < q[0], -edge - np.log1p(np.maximum(q[0] - x, 0.0) / self.scale_), out)
        return self._zero_padding(out.astype(np.float32), mask)

    def inverse_transform(self, x, mask=None) -> np.ndarray:
        raise NotImplementedError("the quantile scaler is not inverted (ties make it many-to-one)")

    def get_config(self) -> dict:
        return {**super().get_config(), "n_quantiles": self.n_quantiles, "bounds": self.bounds,
                "quantiles": None if self.quantiles_ is None else self.quantiles_.tolist()}

    def _set_state(self, config: dict) -> None:
        super()._set_state(config)
        if config.get("quantiles") is not None:
            self.quantiles_ = np.asarray(config["quantiles"], np.float64)


def get_scaler(name: str, **kwargs) -> Scaler:
    """A new scaler of :data:`SCALERS` by name (``standard``, ``robust``, ``minmax``, ``quantile``,
    ``none``) with ``kwargs`` its arguments."""
    return SCALERS.lookup(name)(**kwargs)
