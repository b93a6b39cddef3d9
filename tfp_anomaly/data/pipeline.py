"""``tf.data`` input pipelines: batching, seeded shuffling and prefetch (imports TensorFlow)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


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
