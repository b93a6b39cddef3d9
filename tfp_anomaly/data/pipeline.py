"""``tf.data`` input pipelines: batching, seeded shuffling and prefetch, from arrays in memory or streamed
from an event file chunk by chunk (imports TensorFlow)."""
from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf

from . import arrays
from .representation import grid_chunks


def make_dataset(inputs, *, batch_size: int = 256, shuffle: bool = True, seed: int | None = 0,
                 shuffle_buffer: int = 1 << 18, drop_remainder: bool = False) -> tf.data.Dataset:
    """A batched, prefetched ``tf.data.Dataset`` over ``inputs``.

    ``inputs`` is an array or a tuple/dict of arrays sharing their first dimension (e.g.
    ``(x, mask)``); elements keep that structure. With ``shuffle`` and a fixed ``seed`` the order of
    every epoch is reproducible (it differs between epochs: ``reshuffle_each_iteration``).
    """
    leaves = tf.nest.flatten(inputs)
    lengths = {len(np.asarray(a)) for a in leaves}
    if len(lengths) != 1:
        raise ValueError(f"all inputs must have the same number of events, got lengths {sorted(lengths)}")
    (n,) = lengths
    if n == 0:
        raise ValueError("cannot build a dataset from zero events")
    dataset = tf.data.Dataset.from_tensor_slices(inputs)
    if shuffle:
        dataset = dataset.shuffle(min(n, shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def stream_dataset(path, grid, *, batch_size: int = 256, chunk_size: int = 100_000, shuffle: bool = True,
                   seed: int = 0, first_epoch: int = 0, format: str = "auto", **reader_kwargs) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``{"x", "mask"}`` batches streamed from an event file too large for memory.

    Each pass over the dataset (one Keras epoch) reads the file afresh through :func:`grid_chunks`;
    with ``shuffle`` the events of every chunk are permuted by a generator seeded with (seed, pass), so
    the order is reproducible and differs between epochs; the first pass is epoch ``first_epoch`` (give
    the epoch a resumed training starts at, and it sees the order of an uninterrupted run). Events of
    different chunks never share a batch: a file sorted by process should be shuffled once (e.g. when
    it is written) before streaming.
    Peak memory is about two chunks' object matrices (the one being read, the one being batched) plus
    TensorFlow's prefetch buffer.
    """
    passes = itertools.count(first_epoch)

    def batches():
        rng = np.random.default_rng([seed, next(passes)])
        for x, mask in grid_chunks(path, grid, chunk_size=chunk_size, format=format, **reader_kwargs):
            order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
            for start in range(0, len(x), batch_size):
                index = np.sort(order[start:start + batch_size])  # sorted: contiguous reads are faster
                yield arrays.take({"x": x, "mask": mask}, index)

    rows, features = grid.shape
    signature = {"x": tf.TensorSpec((None, rows, features), tf.float32), "mask": tf.TensorSpec((None, rows), tf.bool)}
    return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(tf.data.AUTOTUNE)
