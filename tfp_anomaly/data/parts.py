"""The events of one split part (train or validation) as training reads them: the *part* protocol.

:func:`tfp_anomaly.models.training.train` takes model input (arrays, wrapped in :class:`ArrayPart`)
or any object with this protocol, so that events held in memory and events streamed from a file
train the same way:

``part.n_events``
    the number of events (int).
``part.epoch_dataset(batch_size, seed, epoch, shuffle=True, worker=0, workers=1)``
    a ``tf.data.Dataset`` of ONE epoch, in batches:

    * **order**: with ``shuffle``, a permutation that is a function of ``(seed, epoch)`` only (a
      stateless shuffle), so a run resumed at epoch k sees exactly the batches the uninterrupted run
      saw; without, the stored order. ``epoch`` is an int or, when training maps over the epochs
      inside ``tf.data``, a scalar int64 tensor: use it in TensorFlow ops (a stateless seed) or pass
      it through ``tf.data.Dataset.from_generator(..., args=(epoch,))``.
    * **global batches**: the epoch's events in order are cut into *global batches* of
      ``batch_size`` events, the last one smaller; nothing is dropped when ``workers`` is 1.
    * **shards**: ``worker`` k of ``workers`` N yields rows ``[⌊k·b/N⌋, ⌊(k+1)·b/N⌋)`` of every
      global batch of b events (:func:`shard_bounds`), so the N shards of a batch, one after the
      other, are that batch, and the N shards together see exactly the batches one process sees.
      Training gives one shard to each replica. A batch of fewer than N events, which would leave a
      replica without events (a mean over none is NaN), is skipped: only the last batch of an epoch
      can be one, so at most N − 1 events per epoch, a different few each epoch when shuffled
      (:func:`steps_per_epoch` counts the batches left).
    * **elements**: the model input of the batch (a tensor, or a dict ``{"x", "mask"}`` of tensors)
      when the part has no event weights; with weights, the triple ``(x, (), w)`` (:data:`NO_TARGET`),
      ``w`` the float32 weights of the batch's events, which Keras 3 unpacks as (x, y, sample_weight)
      and hands to the model's ``compute_loss(x, (), y_pred, sample_weight=w)``: an autoencoder has no
      target. The empty tuple is a structure without components; ``None`` in its place is held by
      ``tf.data`` in one process, but a multi-worker iterator fails on it (``NoneTensorSpec`` has no
      shape), and Keras drops the weights of ``fit(x, None, sample_weight=w)``.

Helpers an implementation uses to keep to these rules: :func:`shard_bounds`, :func:`check_shard`,
:func:`steps_per_epoch`.
"""
from __future__ import annotations

import math

from . import arrays as model_input


#: the target of a weighted batch ``(x, NO_TARGET, w)``: an autoencoder has none (module docstring)
NO_TARGET = ()


def check_shard(worker: int, workers: int) -> None:
    """A ValueError unless ``workers`` ≥ 1 and 0 ≤ ``worker`` < ``workers``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers = {workers!r}: expected a whole number >= 1")
    if isinstance(worker, bool) or not isinstance(worker, int) or not 0 <= worker < workers:
        raise ValueError(f"worker = {worker!r}: expected a whole number from 0 to {workers - 1}")


def shard_bounds(batch_length, worker: int, workers: int):
    """``(begin, end)``: the rows ``[⌊k·b/N⌋, ⌊(k+1)·b/N⌋)`` of a global batch of ``batch_length``
    b events that shard ``worker`` k of ``workers`` N takes; ints or tensors, as ``batch_length``.
    Shard sizes differ by at most one event."""
    return (batch_length * worker) // workers, (batch_length * (worker + 1)) // workers


def steps_per_epoch(n_events: int, batch_size: int, workers: int = 1) -> int:
    """The batches of one epoch: ⌈n/b⌉, less the last batch when it has fewer than ``workers``
    events (module docstring)."""
    steps = math.ceil(n_events / batch_size)
    last = n_events - (steps - 1) * batch_size
    return steps - 1 if steps and workers > 1 and last < workers else steps


class ArrayPart:
    """A part held in memory (module docstring): model input and, optionally, event weights.

    Args:
        inputs: the model input: an (N, F) array, an (N, S, F) object grid, or ``{"x": (N, S, F),
            "mask": (N, S)}`` (:mod:`tfp_anomaly.data.arrays`); NumPy arrays or tensors.
        weights: (N,) event weights (e.g. generator weights), or None for unweighted events.
    """

    def __init__(self, inputs, weights=None):
        import numpy as np

        self.inputs = inputs
        self.weights = None if weights is None else np.asarray(weights, np.float32)
        if self.weights is not None and self.weights.shape != (self.n_events,):
            raise ValueError(f"weights: shape {self.weights.shape}, expected ({self.n_events},): one weight per event")
        self._tensors = None

    @property
    def n_events(self) -> int:
        return model_input.n_events(self.inputs)

    def _rows(self):
        """The input (and weights) as tensors, converted once, on first use: constructing a part runs no
        TensorFlow operation (:mod:`tfp_anomaly.distribute`: a multi-worker strategy comes first). The
        conversion is lifted out of any function being traced (``tf.init_scope``), so the tensors are
        concrete, whether the first call comes eagerly or from inside ``flat_map``."""
        import tensorflow as tf

        if self._tensors is None:
            with tf.init_scope():
                convert = tf.convert_to_tensor
                inputs = {k: convert(v) for k, v in self.inputs.items()} if isinstance(self.inputs, dict) \
                    else convert(self.inputs)
                self._tensors = (inputs, None if self.weights is None else convert(self.weights))
        return self._tensors

    def epoch_dataset(self, batch_size: int, seed: int, epoch, shuffle: bool = True, worker: int = 0,
                      workers: int = 1):
        """One epoch in batches, shard ``worker`` of ``workers`` of each (module docstring)."""
        import tensorflow as tf

        check_shard(worker, workers)
        inputs, weights = self._rows()
        order = tf.range(self.n_events, dtype=tf.int64)
        if shuffle:  # stateless: the permutation is a function of (seed, epoch) only
            key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
            order = tf.random.experimental.stateless_shuffle(order, seed=key)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        if workers > 1:
            batches = batches.filter(lambda index: tf.size(index) >= workers)
            batches = batches.map(lambda index: index[slice(*shard_bounds(tf.size(index), worker, workers))])

        def gather(index):
            x = tf.nest.map_structure(lambda t: tf.gather(t, index), inputs)
            return x if weights is None else (x, NO_TARGET, tf.gather(weights, index))

        return batches.map(gather)
