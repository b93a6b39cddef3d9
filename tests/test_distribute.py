"""Training beyond one process (tfp_anomaly.distribute, tfp_anomaly.data.parts, models.training): the
TF_CONFIG helpers and their one-line errors, the sharding of every global batch (the shards of the
workers, one after the other, are exactly the batch of one process; weights travel with their events),
event weights reaching the model's ``compute_loss``, the command line's ``--worker-index/--workers``,
and two worker processes on 127.0.0.1 that train a small SWAE to the result of one process, only the
chief writing the run directory, and resume from its checkpoint.

The two-worker model is an SWAE with ``lam = 0``: its loss is then a mean over events, which sharding
leaves exactly as it is, so one process and two workers must agree to float32 rounding. (The
sliced-Wasserstein term, like a VAE's posterior noise, is a statistic of each replica's share of the
batch: docs/distributed.md.)"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfp_anomaly import distribute
from tfp_anomaly.cli import main
from tfp_anomaly.data.parts import ArrayPart, shard_bounds, steps_per_epoch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "examples" / "configs"


# --------------------------------------------------------------------------- TF_CONFIG
def test_tf_config_names_the_cluster_and_this_worker(monkeypatch):
    config = distribute.tf_config(1, "node1:2222,node2:2222, [::1]:2223")
    assert config == {"cluster": {"worker": ["node1:2222", "node2:2222", "[::1]:2223"]},
                      "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", "")  # restored after the test, which writes it
    assert distribute.worker_info() == (0, 1, True)  # one process
    distribute.write_tf_config("0", ["a:1", "b:2"])
    assert json.loads(os.environ["TF_CONFIG"])["task"] == {"type": "worker", "index": 0}
    assert distribute.worker_info() == (0, 2, True)
    distribute.write_tf_config(1, "a:1,b:2")
    assert distribute.worker_info() == (1, 2, False)
    # a cluster with its own chief job: the chief is worker 0, the workers follow
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:1"], "worker": ["a:1", "b:1"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert distribute.worker_info() == (2, 3, False)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:1"], "worker": ["a:1"]},
                                                "task": {"type": "chief", "index": 0}}))
    assert distribute.worker_info() == (0, 2, True)


@pytest.mark.parametrize("index, workers, message", [
    (2, "a:1,b:2", r"^--worker-index 2: out of range for 2 worker\(s\) in --workers \(expected 0 to 1\)$"),
    (-1, "a:1", r"^--worker-index -1: out of range"),
    ("x", "a:1", r"^--worker-index 'x': expected a whole number from 0 to 0$"),
    (0, "a:1,b", r"^--workers: 'b' is not HOST:PORT"),
    (0, "a:1,b:99999", r"^--workers: 'b:99999' is not HOST:PORT"),
    (0, "a:1,,b:2", r"^--workers 'a:1,,b:2': expected HOST:PORT,HOST:PORT"),
    (0, "a:1,a:1", r"^--workers: a:1 is given twice"),
    (0, "host name:1", r"^--workers: 'host name:1' is not HOST:PORT"),
])
def test_bad_worker_options_are_one_line_value_errors(index, workers, message):
    with pytest.raises(ValueError, match=message) as err:
        distribute.tf_config(index, workers)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value, message", [
    ("{not json", r"^TF_CONFIG: not JSON"),
    ("[1, 2]", r"^TF_CONFIG: expected a JSON object with 'cluster' and 'task'"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', r"^TF_CONFIG: 'cluster' must list"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
     r"^TF_CONFIG: task index 1 is out of range for the 1 worker address"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
     r"^TF_CONFIG: task type 'ps' is not a job"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}',
     r"^TF_CONFIG: cluster job 'ps' is not one of synchronous training"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
     r"^TF_CONFIG: cluster: 'a' is not HOST:PORT"),
])
def test_a_bad_tf_config_is_a_one_line_value_error(monkeypatch, value, message):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ValueError, match=message) as err:
        distribute.worker_info()
    assert "\n" not in str(err.value)


def test_multi_worker_needs_tf_config_and_unknown_strategies_are_named(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"^training.strategy multi_worker: TF_CONFIG is not set; .*--worker-index"):
        distribute.strategy("multi_worker")
    with pytest.raises(ValueError, match=r"^training.strategy: unknown distribution strategy 'horovod'; "
                                         r"strategies: mirrored, multi_worker, none$"):
        distribute.strategy("horovod")
    from tfp_anomaly import config as config_lib

    with pytest.raises(config_lib.ConfigError, match=r"training.strategy = 'ring': expected one of none, mirrored, "
                                                     r"multi_worker"):
        config_lib.load_config(CONFIGS / "swae.yaml", ["training.strategy=ring"])


def test_train_command_writes_tf_config_and_chooses_multi_worker(monkeypatch, capsys):
    monkeypatch.setenv("TF_CONFIG", "")  # restored after the test, which writes it
    config = str(CONFIGS / "swae.yaml")
    assert main(["train", config, "--worker-index", "1", "--workers", "h1:2222,h2:2222", "--print-config"]) == 0
    assert "strategy: multi_worker" in capsys.readouterr().out
    assert json.loads(os.environ["TF_CONFIG"]) == {"cluster": {"worker": ["h1:2222", "h2:2222"]},
                                                   "task": {"type": "worker", "index": 1}}
    for argv, message in [(["--worker-index", "0"], "--worker-index needs --workers"),
                          (["--workers", "h1:1"], "--workers needs --worker-index"),
                          (["--worker-index", "3", "--workers", "h1:1,h2:1"], "--worker-index 3: out of range"),
                          (["--worker-index", "0", "--workers", "h1"], "--workers: 'h1' is not HOST:PORT")]:
        assert main(["train", config, *argv, "--print-config"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"tfp-anomaly: error: {message}") and err.count("\n") == 1, err


# --------------------------------------------------------------------------- sharding
def _batches(dataset) -> list:
    return [{k: np.asarray(v) for k, v in element.items()} if isinstance(element, dict) else element
            for element in dataset.as_numpy_iterator()]


@pytest.mark.parametrize("workers", [2, 3])
def test_the_shards_of_the_workers_are_exactly_the_batches_of_one_process(workers):
    rng = np.random.default_rng(1)
    n, batch = 47, 10  # 4 full batches and one of 7
    inputs = {"x": rng.normal(size=(n, 3, 2)).astype("float32"), "mask": rng.random((n, 3)) > 0.3}
    part = ArrayPart(inputs, weights=rng.random(n).astype("float32"))
    for epoch in (0, 1):
        whole = _batches(part.epoch_dataset(batch, seed=5, epoch=epoch))
        shards = [_batches(part.epoch_dataset(batch, seed=5, epoch=epoch, worker=k, workers=workers))
                  for k in range(workers)]
        assert len(whole) == 5 and all(len(s) == steps_per_epoch(n, batch, workers) == 5 for s in shards)
        for step, (x, y, w) in enumerate(whole):
            assert y == () and len(w) == len(x["x"])  # parts.NO_TARGET
            parts = [shard[step] for shard in shards]
            sizes = [len(p[2]) for p in parts]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
            for key in ("x", "mask"):
                np.testing.assert_array_equal(np.concatenate([p[0][key] for p in parts]), x[key])
            np.testing.assert_array_equal(np.concatenate([p[2] for p in parts]), w)
    # every event once per epoch, a new order each epoch, the same order for the same (seed, epoch)
    first = np.concatenate([b[0]["x"][:, 0, 0] for b in _batches(part.epoch_dataset(batch, 5, 0))])
    second = np.concatenate([b[0]["x"][:, 0, 0] for b in _batches(part.epoch_dataset(batch, 5, 1))])
    again = np.concatenate([b[0]["x"][:, 0, 0] for b in _batches(part.epoch_dataset(batch, 5, 0))])
    assert sorted(first) == sorted(inputs["x"][:, 0, 0]) and not np.array_equal(first, second)
    np.testing.assert_array_equal(first, again)


def test_a_last_batch_smaller_than_the_shards_is_skipped_and_counted():
    x = np.arange(22, dtype="float32").reshape(11, 2)  # batches of 4, 4, 3: the last has 3 events
    part = ArrayPart(x)
    assert [len(b) for b in _batches(part.epoch_dataset(4, 0, 0, shuffle=False))] == [4, 4, 3]
    assert steps_per_epoch(11, 4, 1) == steps_per_epoch(11, 4, 3) == 3
    assert [len(b) for b in _batches(part.epoch_dataset(4, 0, 0, shuffle=False, worker=2, workers=3))] == [2, 2, 1]
    assert steps_per_epoch(11, 4, 4) == 2  # four shards: the 3-event batch would leave one replica empty
    assert [len(b) for b in _batches(part.epoch_dataset(4, 0, 0, shuffle=False, worker=3, workers=4))] == [1, 1]
    assert shard_bounds(7, 0, 3) == (0, 2) and shard_bounds(7, 2, 3) == (4, 7)
    with pytest.raises(ValueError, match="worker = 3: expected a whole number from 0 to 2"):
        part.epoch_dataset(4, 0, 0, worker=3, workers=3)
    with pytest.raises(ValueError, match=r"weights: shape \(3,\), expected \(11,\)"):
        ArrayPart(x, weights=[1, 2, 3])


def test_replicas_of_one_worker_get_its_shards_in_turn():
    """The input pipeline of a worker with several replicas (MirroredStrategy over its GPUs) interleaves
    their shards; tf.distribute hands consecutive elements to the replicas in turn."""
    import tensorflow as tf

    from tfp_anomaly.models.training import _distributed

    class Pipeline:  # what tf.distribute asks of the function: one pipeline of four replicas' second half
        def distribute_datasets_from_function(self, make):
            return make(tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=4))

    x = np.arange(40, dtype="float32").reshape(20, 2)
    part = ArrayPart(x)
    elements = _batches(_distributed(Pipeline(), lambda k, n: part.epoch_dataset(8, 0, 0, True, k, n)))
    whole = _batches(part.epoch_dataset(8, 0, 0))
    assert len(elements) == 2 * len(whole)
    for step, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate(elements[2 * step:2 * step + 2]),
                                      batch[shard_bounds(len(batch), 2, 4)[0]:])


def test_event_weights_reach_the_models_compute_loss():
    import keras
    import tensorflow as tf

    from tfp_anomaly.models import SWAE
    from tfp_anomaly.models.training import epoch_dataset

    seen = []

    class Recording(SWAE):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            seen.append((y, None if sample_weight is None else np.asarray(sample_weight)))
            return super().compute_loss(x, y, y_pred, sample_weight, training)

    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(20, 3)).astype("float32"), rng.random(20).astype("float32")
    model = Recording((3,), latent_dim=2, network={"type": "dense", "hidden_units": [4]})
    model.build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    data, steps = epoch_dataset(ArrayPart(x, w), batch_size=8, seed=0, epochs=1)
    model.fit(data, steps_per_epoch=steps, verbose=0, shuffle=False)
    assert len(seen) == steps == 3 and all(y == () for y, _ in seen)  # parts.NO_TARGET
    order = tf.random.experimental.stateless_shuffle(tf.range(20, dtype=tf.int64), seed=[0, 0]).numpy()
    np.testing.assert_array_equal(np.concatenate([weights for _, weights in seen]), w[order])


# --------------------------------------------------------------------------- two workers
def train_small(run_dir, out, epochs: int, strategy: str) -> None:
    """Train the small SWAE of these tests with :func:`tfp_anomaly.models.training.train` (2 epochs of
    256 events in batches of 32; 64 validation events) and save weights and history to ``out``. The
    events are object grids with a slot mask and carry weights, as ``tfp-anomaly train`` gives them
    (``{"x", "mask"}`` batches ``(x, (), w)``: nested input and weights through the workers); the
    weights are all 1, so that the replicas' weighted means add up to the whole batch's exactly."""
    import keras

    from tfp_anomaly.data.parts import ArrayPart
    from tfp_anomaly.models import SWAE
    from tfp_anomaly.models.training import train

    rng = np.random.default_rng(0)
    grid = (rng.normal(size=(320, 3, 2)) * [1, 2]).astype("float32")
    mask = np.ones((320, 3), bool)
    mask[::3, 2] = False
    grid[~mask] = 0.0
    x, validation = ({"x": grid[part], "mask": mask[part]} for part in (slice(0, 256), slice(256, 320)))
    keras.utils.set_random_seed(0)
    model = SWAE((3, 2), latent_dim=2, network={"type": "dense", "hidden_units": [16]}, lam=0.0, seed=0)
    model.build()
    model, history = train(model, ArrayPart(x, np.ones(256)), ArrayPart(validation, np.ones(64)), run_dir=run_dir,
                           epochs=epochs, batch_size=32, learning_rate=1e-2, verbose=0, strategy=strategy)
    np.savez(out, history=json.dumps(history.history), *[np.asarray(w) for w in model.get_weights()])


def worker_main(argv) -> None:
    """A worker process: ``RUN OUT EPOCHS INDEX HOST:PORT,HOST:PORT``."""
    run_dir, out, epochs, index, workers = argv
    distribute.write_tf_config(int(index), workers)
    distribute.strategy("multi_worker")  # first, before TensorFlow runs an operation in this process
    train_small(run_dir, out, int(epochs), "multi_worker")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _two_workers(run_dir: Path, work: Path, epochs: int, tag: str) -> list[Path]:
    """Run worker 0 (the chief) and worker 1 on 127.0.0.1; each worker's TMPDIR is a folder of its own,
    so that what it writes outside the run directory can be looked at. Returns their outputs."""
    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); "
            "import test_distribute as t; t.worker_main(sys.argv[1:])")
    processes, outs = [], []
    for index in range(2):
        tmp = work / f"tmp_{tag}_{index}"
        tmp.mkdir()
        out = work / f"{tag}_{index}.npz"
        log = open(work / f"{tag}_{index}.log", "w")
        env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
               "CUDA_VISIBLE_DEVICES": ""}
        env.pop("TF_CONFIG", None)
        processes.append((subprocess.Popen([sys.executable, "-c", code, str(run_dir), str(out), str(epochs), str(index),
                                            workers], stdout=log, stderr=subprocess.STDOUT, env=env), log))
        outs.append(out)
    try:
        for process, _ in processes:
            process.wait(timeout=240)
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    for index, (process, _) in enumerate(processes):
        assert process.returncode == 0, (work / f"{tag}_{index}.log").read_text()[-3000:]
    return outs


def _load(path: Path) -> tuple[list, dict]:
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)], json.loads(str(saved["history"]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process trains 2 epochs; two workers train 1 epoch into a shared run directory, then two
    workers are started again with 2 epochs and resume from the chief's checkpoint."""
    work = tmp_path_factory.mktemp("distributed")
    first = _two_workers(work / "RUN", work, 1, "first")
    first_rows = (work / "RUN" / "history.csv").read_text()
    resumed = _two_workers(work / "RUN", work, 2, "resumed")
    train_small(work / "ONE", work / "one.npz", 2, "none")
    return {"work": work, "first": first, "first_rows": first_rows, "resumed": resumed, "one": work / "one.npz"}


def test_the_workers_hold_the_same_model_and_resume_from_the_chiefs_checkpoint(runs):
    (chief, chief_history), (worker, worker_history) = (_load(path) for path in runs["resumed"])
    for a, b in zip(chief, worker):  # the replicas apply the same all-reduced gradient: bit for bit alike
        np.testing.assert_array_equal(a, b)
    # the restarted workers trained epoch 2 only, from the checkpoint of epoch 1
    assert len(chief_history["loss"]) == len(worker_history["loss"]) == 1
    state = json.loads((runs["work"] / "RUN" / "state.json").read_text())
    assert state["epoch"] == 2 and [row["epoch"] for row in state["history"]] == [0, 1]
    rows = (runs["work"] / "RUN" / "history.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[:2] == runs["first_rows"].splitlines()  # epoch 1's row kept as it was


def test_only_the_chief_writes_the_run_directory(runs):
    names = sorted(p.name for p in (runs["work"] / "RUN").iterdir())
    assert names == ["best.keras", "history.csv", "last.keras", "state.json"]  # no lock left, no worker files
    for tag in ("first", "resumed"):
        for index in range(2):  # the worker's checkpoints went to its own temporary directory, removed
            assert list((runs["work"] / f"tmp_{tag}_{index}").iterdir()) == []


def test_two_workers_train_to_the_result_of_one_process(runs):
    """Tolerance: one process sums the gradient over 32 events, two workers over 16 each and then
    add the two sums: float32 rounding in another order, observed 6e-8 on weights of O(0.1–1) after
    16 Adam steps. 1e-5 is far above that and far below one Adam step (learning rate 1e-2): a wrong
    shard or a gradient of the wrong scale moves the weights by 1e-4 and more."""
    one, one_history = _load(runs["one"])
    chief, _ = _load(runs["resumed"][0])
    for a, b in zip(one, chief):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    rows = [line.split(",") for line in (runs["work"] / "RUN" / "history.csv").read_text().splitlines()]
    columns = {name: [float(row[i]) for row in rows[1:]] for i, name in enumerate(rows[0])}
    for key in ("loss", "reconstruction", "val_loss", "val_reconstruction"):
        np.testing.assert_allclose(columns[key], one_history[key], rtol=1e-5, err_msg=key)
