"""Deterministic, seeded splits of the background into train / validation / test, and the subset
``data.max_events`` keeps.

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

    def codes(self) -> np.ndarray:
        """The split as one byte per event: ``codes[i]`` is the number of event i's part in :data:`PARTS`
        (0 train, 1 validation, 2 test). What a run directory stores (``split.npz``) and what streaming
        reads chunk by chunk: an eighth of the index arrays' size."""
        codes = np.empty(len(self.train) + len(self.val) + len(self.test), np.uint8)
        for code, index in enumerate((self.train, self.val, self.test)):
            codes[index] = code
        return codes

    @classmethod
    def from_codes(cls, codes) -> "Split":
        """The split whose :meth:`codes` are ``codes``."""
        codes = np.asarray(codes)
        return cls(*(np.flatnonzero(codes == code) for code in range(len(PARTS))))


#: the parts of a split, in the order of their codes (:meth:`Split.codes`)
PARTS = ("train", "val", "test")


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


#: ``data.subset``: which events ``data.max_events`` keeps. ``random``: a random subset seeded by
#: ``split.seed``, kept in file order (a file stored process by process, as the embedded background,
#: still gives every process its share); ``first``: the first N events of the files as read.
SUBSETS = ("random", "first")
#: the subset of a configuration without ``data.subset``: every run written before the key existed
#: took the first N events, and must read the same events again to be scored.
LEGACY_SUBSET = "first"


def subset_indices(n: int, max_events: int, how: str = "random", seed: int = 0) -> np.ndarray:
    """Sorted indices of the ``max_events`` of ``n`` events that ``data.max_events`` keeps: a uniform
    random subset drawn with ``default_rng([seed, 1])`` (a stream of its own, not the split's), or
    the first ``max_events`` (``how="first"``); all ``n`` when ``max_events >= n``."""
    if how not in SUBSETS:
        raise ValueError(f"must be one of {', '.join(SUBSETS)}, got {how!r}")
    if max_events >= n:
        return np.arange(n)
    if how == "first":
        return np.arange(max_events)
    return np.sort(np.random.default_rng([int(seed), 1]).choice(n, int(max_events), replace=False))
