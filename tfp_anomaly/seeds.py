"""Stateless random streams that survive a checkpoint.

A layer or model that draws random numbers (posterior samples, dropout masks, Hutchinson noise, SW
directions) keeps a draw counter as a non-trainable int64 weight and seeds each draw with
(seed, counter): ``tf.random.stateless_*`` then gives the same numbers for the same (seed, draw),
and a saved or checkpointed model resumes its stream where it stopped, so an interrupted run ends
at the weights of an uninterrupted one (Keras' own seed generators keep their state outside the
saved weights).
"""
from __future__ import annotations

import tensorflow as tf

#: seeds are reduced modulo 2³¹ − 1 so that both halves fit the int32 seed tf.random.stateless_* takes
SEED_MODULUS = 2 ** 31 - 1


def draw_counter(layer, name: str = "draws"):
    """A scalar int64 counter weight of ``layer`` (non-trainable, saved with the layer), starting at 0."""
    return layer.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name=name)


def next_seed(seed: int, counter) -> tf.Tensor:
    """Advance ``counter`` (a :func:`draw_counter` weight) by one and return the stateless seed
    (seed, count) mod (2³¹ − 1), shape (2,), int32, of that draw."""
    count = counter.assign_add(1)
    return tf.cast(tf.stack([tf.constant(int(seed), tf.int64), count]) % SEED_MODULUS, tf.int32)


# Philox by name: it is what ``alg="auto_select"`` (TensorFlow's default) picks on the CPU, so these
# are the same numbers (tests/test_convolutions.py; under XLA for the non-negative seeds next_seed
# gives: a negative seed component is mapped differently by the two XLA paths), but XLA:CPU compiles
# the unnamed default to a kernel 4-7x slower (1.8 vs 0.4 ms for a 256 x 15 draw: 2.7 of a ConvVAE's
# 12 ms per training step at batch 256 under the profiler went to the posterior's 3,840 normals).
ALGORITHM = "philox"


def normal(shape, seed, dtype=tf.float32) -> tf.Tensor:
    """``tf.random.stateless_normal(shape, seed)``: standard normals of the stateless ``seed`` (shape
    (2,)), drawn with Philox (:data:`ALGORITHM`, the numbers TensorFlow's default gives)."""
    return tf.random.stateless_normal(shape, seed, dtype=dtype, alg=ALGORITHM)


def uniform(shape, seed, dtype=tf.float32) -> tf.Tensor:
    """``tf.random.stateless_uniform(shape, seed)``: uniforms on [0, 1) of the stateless ``seed``,
    drawn with Philox (:data:`ALGORITHM`)."""
    return tf.random.stateless_uniform(shape, seed, dtype=dtype, alg=ALGORITHM)
