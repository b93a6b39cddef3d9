"""The model input as the package passes it around, and the one place that knows its two forms.

A model takes either a bare array, ``(N, F)`` features or an ``(N, S, F)`` object grid, or a dict
``{"x": (N, S, F), "mask": (N, S)}`` (the grid with its slot mask, what
:meth:`tfp_anomaly.data.ObjectGrid.transform` gives). These helpers take rows of either form and read
its size without the caller asking which form it has; they work on numpy arrays and tensors alike.
"""
from __future__ import annotations


def split_mask(inputs):
    """``(x, mask)`` of model input; ``mask`` is None for a bare array."""
    if isinstance(inputs, dict):
        return inputs["x"], inputs.get("mask")
    return inputs, None


def as_dict(inputs) -> dict:
    """Model input as a dict: ``{"x": ...}`` for a bare array, the dict itself otherwise."""
    return inputs if isinstance(inputs, dict) else {"x": inputs}


def like(inputs, arrays: dict):
    """``arrays`` (a dict with key ``"x"``) in the form of ``inputs``: the dict, or its ``"x"`` alone."""
    return arrays if isinstance(inputs, dict) else arrays["x"]


def n_events(inputs) -> int:
    """The number of events (rows) of model input."""
    return len(split_mask(inputs)[0])


def event_shape(inputs) -> tuple:
    """The shape of one event: ``(F,)`` or ``(S, F)``."""
    return tuple(split_mask(inputs)[0].shape[1:])


def take(inputs, index):
    """Rows ``index`` (an index array, a boolean mask or a slice) of model input, in its form."""
    return {k: v[index] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[index]


def head(inputs, n: int):
    """The first ``n`` events of model input."""
    return take(inputs, slice(0, n))


def concatenate(parts: list):
    """The events of several model inputs of one form, one after the other."""
    import numpy as np

    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)
