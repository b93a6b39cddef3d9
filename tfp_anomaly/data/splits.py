"""Deterministic, seeded splits of the background into train / validation / test.

Signals are never split: they are kept whole for testing. The same ``seed`` and sizes always give
the same indices (NumPy ``default_rng``), independent of any global random state.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from . import arrays


@dataclasses.dataclass(frozen=True)
class Split:
    """A partition of ``range(n)`` into three disjoint parts: train, validation and test.

    Args:
        train: sorted int indices of the training events.
        val: sorted int indices of the validation events.
        test: sorted int indices of the test events.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def parts(self) -> dict:
        """``{"train": ..., "val": ..., "test": ...}``."""
        return {"train": self.train, "val": self.val, "test": self.test}


def split_indices(n: int, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> Split:
    """Split ``range(n)`` at random into parts of the given fractions (which must sum to 1).

    Part sizes are ``floor(f * n)`` for train and validation; test takes the rest, so every index
    lands in exactly one part.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    cut = np.split(order, [n_train, n_train + n_val])
    return Split(*(np.sort(part) for part in cut))


def split_background(data, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> dict:
    """Split anything indexable by an index array (``Events``, ``FeatureTable``, arrays, or model input
    ``{"x", "mask"}``) into ``{"train", "val", "test"}`` with :func:`split_indices`."""
    split = split_indices(arrays.n_events(data), fractions, seed)
    return {name: arrays.take(data, index) for name, index in split.parts().items()}
