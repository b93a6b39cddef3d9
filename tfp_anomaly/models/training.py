"""Training that can be trusted: seeded, resumable, stopped loudly on a non-finite or diverging loss.

* ``epoch_dataset``: batches of epoch e are a shuffle seeded by (seed, e), so an interrupted run that
  resumes at epoch k sees exactly the batches the uninterrupted run saw. Training data and validation
  data are model input (arrays) or any *part* (:mod:`tfp_anomaly.data.parts`: ``n_events`` and
  ``epoch_dataset``, e.g. events streamed from a file, or arrays with event weights).
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

**On several devices or machines** (``strategy``, :mod:`tfp_anomaly.distribute`, docs/distributed.md)
the model lives in the strategy's scope, each replica trains on its shard of every global batch of
``batch_size`` events (:mod:`tfp_anomaly.data.parts`), and Keras sums the replicas' gradients, so
a step is the step of one process on the whole batch. Only the chief (worker 0) writes the run
directory and holds its lock; every other worker writes the same checkpoints into a temporary
directory of its own (under ``$TMPDIR``), deleted at the end, so that every worker runs the same
callbacks and saves alike (Keras 3.15 saves a model without talking to the other workers; a saved
state that held a variable synchronised on read would need all of them). Every worker resumes from the
chief's checkpoint: the run directory is on a file system every worker sees.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from .. import distribute
from ..data import parts as parts_lib
from ..rundir import RunDirectory
from . import strategies


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; the message names the epoch and step."""


class DivergedLossError(NonFiniteLossError):
    """The training loss ran away (beyond ``max_growth`` times the first one: on its way to infinity);
    the message names the epoch, the step and both values."""


def as_part(data):
    """``data`` as a part (:mod:`tfp_anomaly.data.parts`): an object with ``n_events`` and
    ``epoch_dataset`` as it is, model input (an array or ``{x, mask}``) as an :class:`ArrayPart`."""
    if hasattr(data, "epoch_dataset") and hasattr(data, "n_events"):
        return data
    return parts_lib.ArrayPart(data)


def epoch_dataset(data, batch_size: int, seed: int, epochs: int, initial_epoch: int = 0, shuffle=True,
                  worker: int = 0, workers: int = 1):
    """(dataset over epochs [initial_epoch, epochs), steps per epoch) of ``data`` (arrays or a part):
    epoch e is ``part.epoch_dataset(batch_size, seed, e, ...)``, shard ``worker`` of ``workers`` of
    every batch. Drops no events in one process: the last batch of an epoch may be smaller."""
    part = as_part(data)
    steps = parts_lib.steps_per_epoch(part.n_events, batch_size, workers)

    def one_epoch(epoch):
        return part.epoch_dataset(batch_size, seed, epoch, shuffle, worker, workers)

    return tf.data.Dataset.range(initial_epoch, epochs).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE), steps


def validation_dataset(data, batch_size: int, worker: int = 0, workers: int = 1):
    """Unshuffled batches of the validation data (arrays or a part), shard ``worker`` of ``workers``."""
    return as_part(data).epoch_dataset(batch_size, 0, 0, shuffle=False, worker=worker, workers=workers)


def _distributed(strategy, make):
    """``make(worker, workers)`` (a dataset of shard ``worker`` of ``workers``) distributed over the
    replicas of ``strategy``: replica r of the whole cluster gets shard r. Each worker's input pipeline
    interleaves the shards of its own replicas, which tf.distribute hands to them in turn."""
    def per_worker(context):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        shards = [make(first + r, context.num_replicas_in_sync) for r in range(local)]
        if local == 1:
            return shards[0]
        together = tf.data.Dataset.zip(tuple(shards))
        return together.flat_map(lambda *batches: _one_after_another(batches))

    return strategy.distribute_datasets_from_function(per_worker)


def _shard_of_epochs(data, batch_size, seed, epochs, initial_epoch, shuffle, worker, workers):
    return epoch_dataset(data, batch_size, seed, epochs, initial_epoch, shuffle, worker, workers)[0]


def _repeated_validation(data, batch_size, worker, workers):
    return validation_dataset(data, batch_size, worker, workers).repeat()


def _one_after_another(elements):
    dataset = tf.data.Dataset.from_tensors(elements[0])
    for element in elements[1:]:
        dataset = dataset.concatenate(tf.data.Dataset.from_tensors(element))
    return dataset


def _scope(model):
    """The scope of the strategy ``model`` was built under (none for TensorFlow's default one, or the
    one the caller is in already)."""
    strategy = model.distribute_strategy
    return contextlib.nullcontext() if strategy is tf.distribute.get_strategy() else strategy.scope()


def in_strategy(model, strategy):
    """``model`` with its variables under ``strategy`` (mirrored across its replicas). Keras 3 binds a
    model to the strategy whose scope it was created in, so a model built elsewhere (outside any scope)
    is rebuilt in the scope from its configuration and given its weights: the same model, whose
    variables the strategy keeps in step. Under TensorFlow's default strategy, ``model`` itself."""
    if model.distribute_strategy is strategy:
        return model
    with strategy.scope():
        copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
        copy.build()
        copy.set_weights(model.get_weights())
    return copy


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


def resume_point(run_dir, strategy=None, repair=True) -> tuple[keras.Model | None, int]:
    """(checkpointed model, next epoch) of ``run_dir``, or (None, 0) if there is none; the checkpoint
    checked and, with ``repair`` (the chief), ``history.csv`` repaired
    (:meth:`tfp_anomaly.rundir.RunDirectory.checkpoint`). The model is loaded in the scope of
    ``strategy`` (a ``tf.distribute`` strategy; None: the current one), its optimizer state with it."""
    run = RunDirectory(run_dir)
    state = run.checkpoint(repair=repair)
    if not state:
        return None, 0
    with contextlib.nullcontext() if strategy is None else strategy.scope():
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


def whole_executions(steps_per_execution: int, steps: int) -> int:
    """The largest divisor of ``steps`` (the steps per epoch) not above ``steps_per_execution``.

    Keras runs whole executions of ``steps_per_execution`` steps and counts them into the epoch, so a
    number that does not divide the epoch carries steps across its end: 25 steps per epoch at 16 per
    execution trained epochs of 32, 32 and 11 steps, every epoch's shuffle, validation and checkpoint
    out of step with the data's epochs."""
    return next(k for k in range(max(1, min(steps_per_execution, steps)), 0, -1) if steps % k == 0)


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
    Callbacks see one ``fit`` per phase (early stopping acts within a phase).

    ``train_arrays``, ``validation_arrays``: model input or parts (:mod:`tfp_anomaly.data.parts`).
    A model built in the scope of a ``tf.distribute`` strategy with several replicas
    (:func:`in_strategy`) trains each replica on its shard of every global batch of ``batch_size``
    events; validation batches are sharded the same way."""
    strategies.check(model, flow_training)
    train_arrays = as_part(train_arrays)  # arrays become tensors once, not once per phase
    validation_arrays = None if validation_arrays is None else as_part(validation_arrays)
    strategy = model.distribute_strategy
    replicas = distribute.num_replicas(strategy)
    compile_options = dict(compile_options or {})
    requested = compile_options.get("steps_per_execution", 1)
    steps = parts_lib.steps_per_epoch(train_arrays.n_events, batch_size, replicas)
    compile_options["steps_per_execution"] = whole_executions(requested, steps)
    if compile_options["steps_per_execution"] != requested:
        logging.getLogger(__name__).warning("training.steps_per_execution %d does not divide the %d steps per epoch: "
                                            "%d used", requested, steps, compile_options["steps_per_execution"])
    histories = []
    for phase in strategies.phases(flow_training, epochs, first_stage_epochs):
        if phase.end <= initial_epoch:
            continue
        if strategies.enter(model, phase.stage) or recompile:
            with _scope(model):
                compile_model(model, **compile_options)
            recompile = False
        begin = max(phase.start, initial_epoch)
        if replicas == 1:  # one process, one device: a plain dataset (tf.distribute adds nothing)
            data, steps = epoch_dataset(train_arrays, batch_size, seed, phase.end, begin, shuffle)
            validation = None if validation_arrays is None else validation_dataset(validation_arrays, batch_size)
            validation_steps = None
        else:
            steps = parts_lib.steps_per_epoch(train_arrays.n_events, batch_size, replicas)
            if steps == 0:
                raise ValueError(f"{train_arrays.n_events} training events cannot be shared among {replicas} replicas "
                                 "(each needs at least one event per batch)")
            data = _distributed(strategy, functools.partial(_shard_of_epochs, train_arrays, batch_size, seed,
                                                            phase.end, begin, shuffle))
            # repeated, with its number of batches: Keras reads one pass per evaluation and keeps the iterator
            validation = None if validation_arrays is None else \
                _distributed(strategy, functools.partial(_repeated_validation, validation_arrays, batch_size))
            validation_steps = None if validation_arrays is None else \
                parts_lib.steps_per_epoch(validation_arrays.n_events, batch_size, replicas)
            if validation_steps == 0:  # fewer validation events than replicas: nothing to validate on
                validation, validation_steps = None, None
        histories.append(model.fit(data, epochs=phase.end, initial_epoch=begin, steps_per_epoch=steps,
                                   validation_data=validation, validation_steps=validation_steps,
                                   callbacks=list(callbacks), verbose=verbose, shuffle=False))
        for callback in callbacks:  # the next phase continues the same log file
            if isinstance(callback, keras.callbacks.CSVLogger):
                callback.append = True
    return _merged(histories)


@contextlib.contextmanager
def _written_by(run: RunDirectory | None, chief: bool):
    """The run directory this process writes: ``run`` itself on the chief (its lock held throughout);
    on another worker a temporary directory of its own, removed at the end (a worker writes nothing
    into ``run``)."""
    if run is None:
        yield None
    elif chief:
        with run.lock():
            yield run
    else:
        scratch = tempfile.mkdtemp(prefix=f"{run.name}.worker.")
        try:
            yield RunDirectory(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def train(model, train_arrays, validation_arrays=None, run_dir=None, epochs=10, batch_size=256, seed=0,
          learning_rate=1e-3, clipnorm=None, callbacks=(), resume=True, verbose="auto", shuffle=True,
          jit_compile="auto", steps_per_execution=1, flow_training="joint", first_stage_epochs=None,
          strategy="none"):
    """Fit ``model`` (or resume it from ``run_dir``) and return ``(model, history)``.

    ``train_arrays``, ``validation_arrays``: model input (an array or ``{x, mask}``) or parts
    (:mod:`tfp_anomaly.data.parts`: events streamed from a file, event weights). ``jit_compile``:
    compile the train step with XLA; ``"auto"`` does so whenever every layer supports it and no
    distribution strategy is used (Keras' own ``"auto"`` never does on CPU, but there XLA trains our
    models 1.3–2.4× faster, see ``docs/benchmarks.md``). ``steps_per_execution``: steps run per call
    into the graph; more cuts the fixed cost per step (large gains at small batches), but callbacks,
    including the NaN guard, then see the logs once per group of steps; it is lowered to the largest
    divisor of the steps per epoch (:func:`whole_executions`), so that every epoch stays whole.
    ``flow_training``, ``first_stage_epochs``: how a VAE's flow posterior joins training
    (:mod:`tfp_anomaly.models.strategies`). With ``run_dir``, the run directory's lock is held
    throughout (:class:`tfp_anomaly.rundir.RunLockedError` when another process trains into it) and
    every epoch ends in a checkpoint there.

    ``strategy``: a name of :data:`tfp_anomaly.distribute.STRATEGIES` (module docstring). The model
    (built anywhere) is trained in the strategy's scope (:func:`in_strategy`) and returned from it;
    under ``multi_worker`` every worker calls ``train`` alike, only the chief writes ``run_dir``
    and holds its lock, and every worker resumes from the chief's checkpoint there.
    """
    chosen = distribute.strategy(strategy)
    chief = distribute.worker_info().is_chief if strategy == "multi_worker" else True
    run = None if run_dir is None else RunDirectory(run_dir)
    with _written_by(run, chief) as written:
        initial_epoch = 0
        if run is not None and resume:
            restored, initial_epoch = resume_point(run, chosen, repair=chief)
            model = restored or model
        if not model.built:
            with _scope(model):
                model.build()
        model = in_strategy(model, chosen)
        extra = [StopOnNonFinite()]
        if run is not None and initial_epoch < epochs:
            best = run.read_state().get("best") if initial_epoch > 0 else None  # a fresh run starts afresh
            extra.append(EpochCheckpoint(written, best=best))
        compile_options = dict(learning_rate=learning_rate, clipnorm=clipnorm, jit_compile=jit_compile,
                               steps_per_execution=steps_per_execution)
        history = fit_phases(model, train_arrays, validation_arrays, epochs, initial_epoch, batch_size, seed,
                             list(callbacks) + extra, verbose, shuffle, compile_options, flow_training,
                             first_stage_epochs,
                             recompile=getattr(model, "optimizer", None) is None or initial_epoch == 0)
    return model, history
