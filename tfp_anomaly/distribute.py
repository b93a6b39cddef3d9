"""Training on several devices or machines with TensorFlow's own engine (``training.strategy``).

:data:`STRATEGIES` maps a name to the ``tf.distribute`` strategy training runs under:

* ``none``: TensorFlow's default strategy (one device, no replicas): training as it always was;
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local devices (every GPU of the machine, or
  its CPU): one replica per device, variables mirrored, gradients summed across replicas every step;
* ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, the same synchronous data
  parallelism over several processes (machines) that find each other through ``TF_CONFIG``. On CPUs
  the gradients are all-reduced by ring communication over gRPC, on GPUs by NCCL (TensorFlow's
  choice).

``TF_CONFIG`` (the environment variable TensorFlow reads) is JSON::

    {"cluster": {"worker": ["node1:23456", "node2:23456"]}, "task": {"type": "worker", "index": 0}}

every process getting the same cluster and its own index; worker 0 is the *chief*, the one process
that writes the run directory. :func:`tf_config` builds it from ``--worker-index`` and ``--workers``
and :func:`write_tf_config` puts it into the environment (``tfp-anomaly train CONFIG --worker-index I
--workers HOST:PORT,HOST:PORT`` does both); :func:`worker_info` reads it back. A cluster with an
explicit ``chief`` job is understood as well: the chief is then worker 0 and the workers follow.

**Created first.** A ``MultiWorkerMirroredStrategy`` configures the collective operations of the
process, which TensorFlow allows only before it has run its first operation; afterwards creating one
fails ("Collective ops must be configured at program startup"). Importing TensorFlow, Keras and this
package runs no operation, nor does reading and splitting the data; building a model does. So
:func:`strategy` is called first: ``tfp-anomaly train`` calls it right after reading the
configuration, before any data is read or model built, and a Python user calls
``distribute.strategy("multi_worker")`` at the top of the script. The strategy is created once per
process and handed out again on later calls (a second ``MultiWorkerMirroredStrategy`` in one process
is not possible), so later calls, e.g. by :func:`tfp_anomaly.models.training.train`, get the same object.
Should the process have run TensorFlow already, the error says so.

Nothing here imports TensorFlow before a strategy is asked for: the configuration checks read
:data:`STRATEGIES` without starting it.
"""
from __future__ import annotations

import json
import os
import re
from typing import NamedTuple

from .registry import Registry

#: the environment variable TensorFlow's cluster resolver reads
TF_CONFIG = "TF_CONFIG"

#: strategy name → a function creating it (:func:`strategy` creates each once per process)
STRATEGIES = Registry("distribution strategy", listing="strategies")

_CREATED: dict = {}


class WorkerInfo(NamedTuple):
    """This process in the cluster: its ``index`` among ``count`` processes, and whether it is the
    chief (the one that writes the run directory)."""

    index: int
    count: int
    is_chief: bool


# --------------------------------------------------------------------------- TF_CONFIG
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d+)$")


def parse_workers(workers) -> list[str]:
    """``HOST:PORT,HOST:PORT`` (a string, or a list of ``HOST:PORT`` strings) as a list; a ValueError
    naming ``--workers`` for an empty list, a duplicate or an entry that is not HOST:PORT (port 1–65535;
    an IPv6 host in brackets, ``[::1]:2222``)."""
    items = workers.split(",") if isinstance(workers, str) else list(workers)
    items = [str(item).strip() for item in items]
    if not items or not all(items):
        raise ValueError(f"--workers {workers!r}: expected HOST:PORT,HOST:PORT,... (one per worker, no empty entries)")
    for item in items:
        match = _HOST_PORT.match(item)
        if match is None or not 1 <= int(match.group(2)) <= 65535:
            raise ValueError(f"--workers: {item!r} is not HOST:PORT (a host name or address, a port from 1 to 65535)")
    duplicates = sorted({item for item in items if items.count(item) > 1})
    if duplicates:
        raise ValueError(f"--workers: {duplicates[0]} is given twice; each worker needs its own HOST:PORT")
    return items


def tf_config(worker_index: int, workers) -> dict:
    """The ``TF_CONFIG`` of worker ``worker_index`` (0 is the chief) of the cluster ``workers``
    (``HOST:PORT,...`` or a list, :func:`parse_workers`): ``{"cluster": {"worker": [...]}, "task":
    {"type": "worker", "index": worker_index}}``. A ValueError naming ``--worker-index`` when the
    index is not a whole number from 0 to len(workers) − 1."""
    hosts = parse_workers(workers)
    if isinstance(worker_index, bool) or not isinstance(worker_index, int):
        try:
            worker_index = int(str(worker_index).strip())
        except ValueError:
            raise ValueError(f"--worker-index {worker_index!r}: expected a whole number from 0 to "
                             f"{len(hosts) - 1}") from None
    if not 0 <= worker_index < len(hosts):
        raise ValueError(f"--worker-index {worker_index}: out of range for {len(hosts)} worker(s) in --workers "
                         f"(expected 0 to {len(hosts) - 1})")
    return {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": worker_index}}


def write_tf_config(worker_index: int, workers) -> dict:
    """Set ``os.environ["TF_CONFIG"]`` to :func:`tf_config` ``(worker_index, workers)`` and return it.
    Call it before the strategy is created (TensorFlow reads the variable then, not at import)."""
    config = tf_config(worker_index, workers)
    os.environ[TF_CONFIG] = json.dumps(config)
    return config


def read_tf_config() -> dict | None:
    """``TF_CONFIG`` parsed and checked (a cluster of HOST:PORT addresses, a task that is in it), or
    None when the variable is unset or empty; a ValueError naming ``TF_CONFIG`` otherwise."""
    text = os.environ.get(TF_CONFIG, "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{TF_CONFIG}: not JSON ({err}); expected "
                         '{"cluster": {"worker": ["HOST:PORT", ...]}, '
                         '"task": {"type": "worker", "index": I}}') from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f"{TF_CONFIG}: expected a JSON object with 'cluster' and 'task' mappings, got {text[:120]!r}")
    jobs = {job: cluster.get(job) or [] for job in ("chief", "worker")}
    if not all(isinstance(hosts, list) for hosts in jobs.values()) or len(jobs["chief"]) > 1 \
            or not jobs["chief"] + jobs["worker"]:
        raise ValueError(f"{TF_CONFIG}: 'cluster' must list the workers ('worker': [HOST:PORT, ...], at most one "
                         f"'chief'), got {json.dumps(cluster)[:120]}")
    others = sorted(set(cluster) - {"chief", "worker"})
    if others:
        raise ValueError(f"{TF_CONFIG}: cluster job {others[0]!r} is not one of synchronous training "
                         "(a multi-worker cluster has only 'worker' and at most one 'chief')")
    for hosts in jobs.values():
        if hosts:
            try:
                parse_workers(hosts)
            except ValueError as err:
                raise ValueError(f"{TF_CONFIG}: {str(err).replace('--workers', 'cluster')}") from None
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in jobs or not jobs[kind]:
        raise ValueError(f"{TF_CONFIG}: task type {kind!r} is not a job of the cluster "
                         f"({', '.join(job for job, hosts in jobs.items() if hosts)})")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(jobs[kind]):
        raise ValueError(f"{TF_CONFIG}: task index {index!r} is out of range for the {len(jobs[kind])} "
                         f"{kind} address(es) of the cluster")
    return config


def worker_info() -> WorkerInfo:
    """(index, count, is_chief) of this process from ``TF_CONFIG`` (:func:`read_tf_config`); a single
    process without it is ``(0, 1, True)``. The chief is the ``chief`` task if the cluster has one,
    else worker 0; workers are numbered after the chief."""
    config = read_tf_config()
    if config is None:
        return WorkerInfo(0, 1, True)
    cluster, task = config["cluster"], config["task"]
    chiefs, workers = len(cluster.get("chief") or []), len(cluster.get("worker") or [])
    index = int(task.get("index", 0)) + (chiefs if task["type"] == "worker" else 0)
    return WorkerInfo(index, chiefs + workers, index == 0)


# --------------------------------------------------------------------------- strategies
@STRATEGIES.register("none")
def _default():
    """TensorFlow's default strategy (or the one whose scope the caller is in)."""
    import tensorflow as tf

    return tf.distribute.get_strategy()


@STRATEGIES.register("mirrored")
def _mirrored():
    """``MirroredStrategy`` over every local GPU, or the CPU when there is none."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()


@STRATEGIES.register("multi_worker")
def _multi_worker():
    """``MultiWorkerMirroredStrategy`` of the cluster in ``TF_CONFIG``: ring all-reduce on CPUs,
    TensorFlow's choice (NCCL) on GPUs."""
    import tensorflow as tf

    if read_tf_config() is None:
        raise ValueError(f"training.strategy multi_worker: {TF_CONFIG} is not set; set it "
                         "(docs/distributed.md) or pass --worker-index and --workers to tfp-anomaly train")
    communication = tf.distribute.experimental.CommunicationImplementation
    implementation = communication.AUTO if tf.config.list_physical_devices("GPU") else communication.RING
    try:
        created = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(implementation=implementation))
    except RuntimeError as err:
        if "program startup" not in str(err):
            raise
        raise RuntimeError("training.strategy multi_worker: TensorFlow has already run operations in this process, "
                           "and a MultiWorkerMirroredStrategy can only be created before; call "
                           "tfp_anomaly.distribute.strategy('multi_worker') first, before reading data or building "
                           "a model") from None
    _mean_scalar_logs_across_workers()
    _symbolic_build_on_a_local_batch()
    return created


def strategy(name: str = "none"):
    """The strategy named ``name`` (a name of :data:`STRATEGIES`), created on the first call and the
    same object on every later one (module docstring: create ``multi_worker`` before any TensorFlow
    operation runs). ``none`` is always TensorFlow's current strategy."""
    factory = STRATEGIES.lookup(name, "training.strategy")
    if name == "none":
        return factory()
    if name not in _CREATED:
        _CREATED[name] = factory()
    return _CREATED[name]


def num_replicas(strategy_) -> int:
    """The replicas training runs on under ``strategy_`` (every device of every worker)."""
    return int(strategy_.num_replicas_in_sync)


def _mean_scalar_logs_across_workers() -> None:
    """Make Keras' per-step log reduction work across workers.

    Keras 3 (up to 3.15 at least) reduces the logs of every train and test step over the workers of a
    ``MultiWorkerMirroredStrategy`` with ``strategy.reduce("MEAN", value, axis=0)``, which fails for
    the scalar loss and metric values it returns ("Invalid reduction dimension 0 for input with 0
    dimensions"; tensorflow/tensorflow#72388): ``model.fit`` does not run at all. Given as vectors
    of one element, the same reduction is the mean over the workers, which is what Keras means. So
    Keras' ``reduce_per_replica`` is wrapped to pass scalars in that shape under a multi-worker
    strategy; everything else goes to Keras unchanged, and a Keras that handles scalars itself gets
    the same result. (The epoch's logs, which callbacks and the history see, are Keras' metric results
    read across the workers and do not pass through here.)
    """
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError:  # another layout of Keras: nothing to mend
        return
    original = getattr(trainer, "reduce_per_replica", None)
    collective = getattr(trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or collective is None or getattr(original, "_tfp_anomaly_wrapped", False):
        return
    import tensorflow as tf

    def reduce_per_replica(values, strategy_, reduction):
        if reduction in ("auto", "mean") and collective(strategy_):
            values = tf.nest.map_structure(
                lambda v: tf.reshape(v, [1]) if isinstance(v, tf.Tensor) and v.shape.rank == 0 else v, values)
        return original(values, strategy_, reduction)

    reduce_per_replica._tfp_anomaly_wrapped = True
    trainer.reduce_per_replica = reduce_per_replica


def _symbolic_build_on_a_local_batch() -> None:
    """Make Keras' first look at the data work for nested model input across workers.

    Before the first step, Keras 3 (up to 3.15 at least) builds the model's metrics symbolically on one
    batch, which it makes by ``strategy.reduce("MEAN", batch, axis=None)``: under a
    ``MultiWorkerMirroredStrategy`` the collective reduction converts the batch to one tensor and fails
    for nested input (our ``{"x", "mask"}``: "Attempt to convert a value ({'x': PerReplica ...})").
    Only the batch's structure and shapes matter there, so this replica's own part of it is used
    instead (the same batch Keras takes from the iterator); one process and ``mirrored`` are untouched.
    """
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError:
        return
    cls = getattr(trainer, "TensorFlowTrainer", None)
    collective = getattr(trainer, "_collective_all_reduce_multi_worker", None)
    original = getattr(cls, "_maybe_symbolic_build", None)
    if original is None or collective is None or getattr(original, "_tfp_anomaly_wrapped", False):
        return
    import tensorflow as tf

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy_ = getattr(self, "_distribute_strategy", None)
        if iterator is None or strategy_ is None or not collective(strategy_):
            return original(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tf.nest.map_structure(
                lambda v: strategy_.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v, batch)
            break
        return original(self, iterator=None, data_batch=data_batch)

    _maybe_symbolic_build._tfp_anomaly_wrapped = True
    cls._maybe_symbolic_build = _maybe_symbolic_build
