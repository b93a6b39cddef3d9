"""Training that can be trusted: seeded, resumable, stopped loudly on a non-finite loss.

* ``epoch_dataset``: batches of epoch e are a shuffle seeded by (seed, e), so an interrupted run that
  resumes at epoch k sees exactly the batches the uninterrupted run saw.
* ``EpochCheckpoint``: after every epoch, the whole model (weights, optimizer state, the random
  generators' state) goes to ``RUN/last.keras`` and the next epoch number to ``RUN/state.json``,
  each written to a temporary file and renamed.
* ``StopOnNonFinite``: raises :class:`NonFiniteLossError` naming the epoch and step.
* ``train(model, train, validation, run_dir, ...)``: compiles, adds the callbacks, resumes from
  ``RUN`` when a checkpoint is there (unless ``resume=False``), logs the history to ``RUN/history.csv``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .._atomic import atomic_path


class NonFiniteLossError(FloatingPointError):
    pass


def _as_tensors(arrays):
    if isinstance(arrays, dict):
        return {k: tf.convert_to_tensor(v) for k, v in arrays.items()}
    return tf.convert_to_tensor(arrays)


def _length(arrays):
    return len(next(iter(arrays.values()))) if isinstance(arrays, dict) else len(arrays)


def epoch_dataset(arrays, batch_size: int, seed: int, epochs: int, initial_epoch: int = 0, shuffle=True):
    """(dataset over epochs [initial_epoch, epochs), steps per epoch). Drops no events: the last batch
    of an epoch may be smaller."""
    n = _length(arrays)
    steps = math.ceil(n / batch_size)
    tensors = _as_tensors(arrays)

    def one_epoch(epoch):
        order = tf.range(n, dtype=tf.int64)
        if shuffle:  # stateless: the permutation is a function of (seed, epoch) only
            order = tf.random.experimental.stateless_shuffle(order, seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        return batches.map(lambda idx: tf.nest.map_structure(lambda t: tf.gather(t, idx), tensors))

    epochs_ds = tf.data.Dataset.range(initial_epoch, epochs)
    return epochs_ds.flat_map(one_epoch).prefetch(tf.data.AUTOTUNE), steps


def validation_dataset(arrays, batch_size: int):
    return tf.data.Dataset.from_tensor_slices(_as_tensors(arrays)).batch(batch_size)


class StopOnNonFinite(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is not None and not np.isfinite(value):
            self.model.stop_training = True
            raise NonFiniteLossError(f"training loss became {value} at epoch {self.epoch + 1}, step {batch + 1}; "
                                     "lower the learning rate, enable clipnorm, or check the inputs for NaN/inf")


class EpochCheckpoint(keras.callbacks.Callback):
    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, epoch, logs=None):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        partial = self.run_dir / ".last.partial.keras"  # model.save insists on a .keras name
        self.model.save(partial)
        partial.replace(self.run_dir / "last.keras")
        with atomic_path(self.run_dir / "state.json") as tmp:
            tmp.write_text(json.dumps({"epoch": epoch + 1}))


def resume_point(run_dir) -> tuple[keras.Model | None, int]:
    """(checkpointed model, next epoch) of ``run_dir``, or (None, 0) if there is none."""
    run_dir = Path(run_dir)
    if not (run_dir / "last.keras").exists() or not (run_dir / "state.json").exists():
        return None, 0
    state = json.loads((run_dir / "state.json").read_text())
    return keras.models.load_model(run_dir / "last.keras"), int(state["epoch"])


def train(model, train_arrays, validation_arrays=None, run_dir=None, epochs=10, batch_size=256, seed=0,
          learning_rate=1e-3, clipnorm=None, callbacks=(), resume=True, verbose="auto", shuffle=True):
    """Fit ``model`` (or resume it from ``run_dir``) and return ``(model, history)``."""
    initial_epoch = 0
    if run_dir is not None and resume:
        restored, initial_epoch = resume_point(run_dir)
        model = restored or model
    if not model.built:
        model.build()
    if getattr(model, "optimizer", None) is None or initial_epoch == 0:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=clipnorm))
    data, steps = epoch_dataset(train_arrays, batch_size, seed, epochs, initial_epoch, shuffle)
    validation = None if validation_arrays is None else validation_dataset(validation_arrays, batch_size)
    extra = [StopOnNonFinite()]
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    if run_dir is not None:
        extra += [EpochCheckpoint(run_dir), keras.callbacks.CSVLogger(str(Path(run_dir) / "history.csv"),
                                                                       append=initial_epoch > 0)]
    history = model.fit(data, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                        validation_data=validation, callbacks=list(callbacks) + extra, verbose=verbose,
                        shuffle=False)
    return model, history
