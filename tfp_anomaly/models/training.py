"""Training that can be trusted: seeded, resumable, stopped loudly on a non-finite or diverging loss.

* ``epoch_dataset``: batches of epoch e are a shuffle seeded by (seed, e), so an interrupted run that
  resumes at epoch k sees exactly the batches the uninterrupted run saw.
* ``EpochCheckpoint``: after every epoch, the whole model (weights, optimizer state, the random
  streams' counters) goes to ``RUN/last.keras`` and the next epoch number, the best validation loss
  and the history rows to ``RUN/state.json``, one checkpoint that an interruption at any point leaves
  resumable (:meth:`tfp_anomaly.rundir.RunDirectory.checkpoint`); the best so far by validation loss
  to ``RUN/best.keras``; ``RUN/history.csv`` rewritten from the state's rows.
* ``StopOnNonFinite``: raises :class:`NonFiniteLossError` naming the epoch and step at a NaN or
  infinite loss, and :class:`DivergedLossError` at a loss beyond ``max_growth`` times the first one.
* ``train(model, train, validation, run_dir, ...)``: holds the run directory's lock, compiles, adds
  the callbacks, resumes from ``RUN`` when a checkpoint is there (unless ``resume=False``); a VAE's
  flow joins training by the chosen strategy (:func:`fit_phases`).
"""
from __future__ import annotations

import contextlib
import math

import keras
import numpy as np
import tensorflow as tf

from ..data import arrays as model_input
from ..rundir import RunDirectory
from . import strategies


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the message names the epoch and step."""


class DivergedLossError(NonFiniteLossError):
    """The training loss ran away (beyond ``max_growth`` times the first one: on its way to infinity);
    the message names the epoch, the step and both values."""


def _as_tensors(arrays):
    if isinstance(arrays, dict):
        return {k: tf.convert_to_tensor(v) for k, v in arrays.items()}
    return tf.convert_to_tensor(arrays)


def epoch_dataset(arrays, batch_size: int, seed: int, epochs: int, initial_epoch: int = 0, shuffle=True):
    """(dataset over epochs [initial_epoch, epochs), steps per epoch). Drops no events: the last batch
    of an epoch may be smaller."""
    n = model_input.n_events(arrays)
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
    """Unshuffled batches of the validation arrays."""
    return tf.data.Dataset.from_tensor_slices(_as_tensors(arrays)).batch(batch_size)


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop training at the first non-finite loss with :class:`NonFiniteLossError`, and at a diverging
    one with :class:`DivergedLossError`, naming epoch and step.

    The loss *diverges* when it exceeds ``L0 + max_growth · max(|L0|, 1)``, ``L0`` the first loss this
    ``fit`` logged (training losses fall from there; a KL warm-up or a flow joining raises them by
    small factors, never by orders of magnitude); a run that explodes to 1e15 is stopped long
    before its loss overflows to inf, and never ends "successfully". ``max_growth=None`` disables it.
    """

    def __init__(self, max_growth: float | None = 1e4):
        super().__init__()
        self.max_growth = max_growth
        self.reference = None

    def on_train_begin(self, logs=None):
        self.reference = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.first = batch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get("loss")
        if value is None:
            return
        value = float(value)
        first = getattr(self, "first", batch)  # with steps_per_execution > 1 a group of steps ran
        step = f"step {batch + 1}" if first == batch else f"steps {first + 1}-{batch + 1}"
        where = f"at epoch {getattr(self, 'epoch', 0) + 1}, {step}"
        if not np.isfinite(value):
            self.model.stop_training = True
            raise NonFiniteLossError(f"training loss became {value} {where}; "
                                     "lower the learning rate, enable clipnorm, or check the inputs for NaN/inf")
        if self.reference is None:
            self.reference = value
        elif self.max_growth is not None and \
                value > self.reference + self.max_growth * max(abs(self.reference), 1.0):
            self.model.stop_training = True
            raise DivergedLossError(f"training diverged: loss {value:.4g} {where}, more than {self.max_growth:g} "
                                    f"times the first loss {self.reference:.4g}; lower the learning rate "
                                    "(training.learning_rate) or enable clipnorm (training.clipnorm)")


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: the checkpoint (the whole model to ``RUN/last.keras``, the next epoch, the
    best value and the history rows to ``RUN/state.json``, ``RUN/history.csv``:
    :meth:`tfp_anomaly.rundir.RunDirectory.write_checkpoint`); when ``monitor`` (default ``val_loss``)
    improves, first ``RUN/best.keras``. Every file is written atomically and the checkpoint survives an
    interruption at any point. The best value so far is part of the state, so a resumed run keeps
    comparing against it."""

    def __init__(self, run_dir, monitor="val_loss", best=None):
        super().__init__()
        self.run, self.monitor = RunDirectory(run_dir), monitor
        self.best = math.inf if best is None else float(best)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is not None and np.isfinite(value) and value < self.best:
            self.best = float(value)
            self.run.save_model(self.model, RunDirectory.BEST)
        self.run.write_checkpoint(self.model, epoch + 1, None if math.isinf(self.best) else self.best,
                                  self.monitor, logs)


def resume_point(run_dir) -> tuple[keras.Model | None, int]:
    """(checkpointed model, next epoch) of ``run_dir``, or (None, 0) if there is none; the checkpoint
    checked and ``history.csv`` repaired (:meth:`tfp_anomaly.rundir.RunDirectory.checkpoint`)."""
    run = RunDirectory(run_dir)
    state = run.checkpoint()
    if not state:
        return None, 0
    return run.load_model(RunDirectory.LAST), int(state["epoch"])


def resolve_jit_compile(model, jit_compile="auto") -> bool:
    """``"auto"``: XLA when every layer supports it (``layer.supports_jit``; FFJORD and the
    autoregressive spline do not) and no ``tf.distribute`` strategy is active."""
    if jit_compile != "auto":
        return bool(jit_compile)
    if tf.distribute.has_strategy():
        return False
    # Layer._flatten_layers is Keras' own recursive walk (what its "auto" uses); fall back to the top level
    layers = model._flatten_layers() if hasattr(model, "_flatten_layers") else model.layers
    return all(getattr(layer, "supports_jit", True) for layer in layers)


def compile_model(model, learning_rate=1e-3, clipnorm=None, jit_compile="auto", steps_per_execution=1):
    """Compile with a fresh Adam (and XLA per :func:`resolve_jit_compile`)."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, clipnorm=clipnorm),
                  jit_compile=resolve_jit_compile(model, jit_compile), steps_per_execution=steps_per_execution)


def _merged(histories) -> keras.callbacks.History:
    merged = keras.callbacks.History()
    merged.epoch, merged.history = [], {}
    for history in histories:
        merged.epoch += list(history.epoch)
        for key, values in history.history.items():
            merged.history.setdefault(key, []).extend(values)
    return merged


def fit_phases(model, train_arrays, validation_arrays, epochs, initial_epoch=0, batch_size=256, seed=0,
               callbacks=(), verbose="auto", shuffle=True, compile_options=None, flow_training="joint",
               first_stage_epochs=None, recompile=False):
    """Fit epochs [initial_epoch, epochs) phase by phase of the flow-training strategy
    (:mod:`tfp_anomaly.models.strategies`): a phase that changes the model's stage, or ``recompile``,
    compiles it afresh with ``compile_options``; one :class:`keras.callbacks.History` for all phases.
    Callbacks see one ``fit`` per phase (early stopping acts within a phase)."""
    strategies.check(model, flow_training)
    histories = []
    for phase in strategies.phases(flow_training, epochs, first_stage_epochs):
        if phase.end <= initial_epoch:
            continue
        if strategies.enter(model, phase.stage) or recompile:
            compile_model(model, **(compile_options or {}))
            recompile = False
        begin = max(phase.start, initial_epoch)
        data, steps = epoch_dataset(train_arrays, batch_size, seed, phase.end, begin, shuffle)
        validation = None if validation_arrays is None else validation_dataset(validation_arrays, batch_size)
        histories.append(model.fit(data, epochs=phase.end, initial_epoch=begin, steps_per_epoch=steps,
                                   validation_data=validation, callbacks=list(callbacks), verbose=verbose,
                                   shuffle=False))
        for callback in callbacks:  # the next phase continues the same log file
            if isinstance(callback, keras.callbacks.CSVLogger):
                callback.append = True
    return _merged(histories)


def train(model, train_arrays, validation_arrays=None, run_dir=None, epochs=10, batch_size=256, seed=0,
          learning_rate=1e-3, clipnorm=None, callbacks=(), resume=True, verbose="auto", shuffle=True,
          jit_compile="auto", steps_per_execution=1, flow_training="joint", first_stage_epochs=None):
    """Fit ``model`` (or resume it from ``run_dir``) and return ``(model, history)``.

    ``jit_compile``: compile the train step with XLA; ``"auto"`` does so whenever every layer supports
    it (Keras' own ``"auto"`` never does on CPU, but there XLA trains our models 1.3–2.4× faster,
    see ``docs/benchmarks.md``). ``steps_per_execution``: steps run per call into the graph; more cuts
    the fixed cost per step (large gains at small batches), but callbacks, including the NaN guard,
    then see the logs once per group of steps. ``flow_training``, ``first_stage_epochs``: how a VAE's
    flow posterior joins training (:mod:`tfp_anomaly.models.strategies`). With ``run_dir``, the run
    directory's lock is held throughout (:class:`tfp_anomaly.rundir.RunLockedError` when another
    process trains into it) and every epoch ends in a checkpoint there.
    """
    run = None if run_dir is None else RunDirectory(run_dir)
    with run.lock() if run is not None else contextlib.nullcontext():
        initial_epoch = 0
        if run is not None and resume:
            restored, initial_epoch = resume_point(run)
            model = restored or model
        if not model.built:
            model.build()
        extra = [StopOnNonFinite()]
        if run is not None and initial_epoch < epochs:
            best = run.read_state().get("best") if initial_epoch > 0 else None  # a fresh run starts afresh
            extra.append(EpochCheckpoint(run, best=best))
        compile_options = dict(learning_rate=learning_rate, clipnorm=clipnorm, jit_compile=jit_compile,
                               steps_per_execution=steps_per_execution)
        history = fit_phases(model, train_arrays, validation_arrays, epochs, initial_epoch, batch_size, seed,
                             list(callbacks) + extra, verbose, shuffle, compile_options, flow_training,
                             first_stage_epochs,
                             recompile=getattr(model, "optimizer", None) is None or initial_epoch == 0)
    return model, history
