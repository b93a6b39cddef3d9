"""A run directory survives what happens to real runs: a second ``train`` into it fails at once naming
the process that holds it (and a killed holder never blocks the next run); a kill at any point of the
checkpoint resumes without training an epoch twice or losing or doubling a history row, and a
checkpoint whose files do not belong together is refused; a diverging loss stops training loudly;
CI fails instead of skipping when the shared data is missing."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from tfp_anomaly import atomic
from tfp_anomaly.models import VAE
from tfp_anomaly.models.training import DivergedLossError, NonFiniteLossError, StopOnNonFinite, train
from tfp_anomaly.rundir import CheckpointError, RunDirectory, RunLockedError

ROOT = Path(__file__).resolve().parents[1]
X = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")


class EpochsRun(keras.callbacks.Callback):
    """Records the epochs a ``fit`` actually trains, and the weights after each."""

    def __init__(self):
        super().__init__()
        self.epochs, self.weights = [], {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = self.model.get_weights()


class Killed(BaseException):
    """Stands for SIGKILL at a chosen point: nothing after it runs (not even the Keras callbacks)."""


def _train(run_dir, epochs, x=X, counter=None, **kwargs):
    """The small VAE of test_models (dropout and an IAF flow: random streams and a flow in the
    checkpoint), seeded, with the epochs it trains recorded; returns (model, epochs trained)."""
    keras.utils.set_random_seed(0)
    model = VAE((8,), latent_dim=3, network={"type": "dense", "hidden_units": [16], "dropout": 0.1},
                flow="iaf*2", flow_kwargs={"hidden_units": [8]}, kl_warmup_steps=10)
    counter = counter or EpochsRun()
    model, _ = train(model, x, X[:64], run_dir=run_dir, epochs=epochs, batch_size=64, verbose=0,
                     jit_compile=False, callbacks=[counter], **kwargs)
    return model, counter.epochs


def _history_epochs(run_dir) -> list[int]:
    lines = (Path(run_dir) / "history.csv").read_text().splitlines()
    return [int(line.split(",")[0]) for line in lines[1:]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(weights, history, weights after each epoch) of a run trained 4 epochs without interruption."""
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    counter = EpochsRun()
    model, epochs = _train(run, 4, counter=counter)
    assert epochs == [0, 1, 2, 3] and _history_epochs(run) == [0, 1, 2, 3]
    return model.get_weights(), RunDirectory(run).read_history(), counter.weights


def _assert_same_run(model, run_dir, uninterrupted):
    """The weights and the history of the uninterrupted run: every epoch trained once, every row once."""
    weights, history, _ = uninterrupted
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert _history_epochs(run_dir) == [0, 1, 2, 3]
    resumed = RunDirectory(run_dir).read_history()
    assert sorted(resumed) == sorted(history)
    for key in history:
        np.testing.assert_allclose(resumed[key], history[key], rtol=1e-5, err_msg=key)
    assert RunDirectory(run_dir).read_state()["epoch"] == 4


# --------------------------------------------------------------------------- the checkpoint

def test_a_kill_between_state_and_model_rename_resumes_one_epoch_earlier(tmp_path, monkeypatch, uninterrupted):
    """state.json of epoch 3 landed, last.keras of epoch 3 did not: the run resumes after epoch 2."""
    run = tmp_path / "run"
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "last.keras" and RunDirectory(run).read_state()["epoch"] == 3:
            raise Killed
        return real_replace(src, dst)

    counter = EpochsRun()
    with monkeypatch.context() as patch:
        patch.setattr(atomic.os, "replace", replace)
        with pytest.raises(Killed):
            _train(run, 4, counter=counter)
    for a, b in zip(uninterrupted[2][1], counter.weights[1]):  # a fresh run with the same seed: the same weights
        np.testing.assert_array_equal(a, b)
    assert RunDirectory(run).read_state()["epoch"] == 3 and _history_epochs(run) == [0, 1]
    assert not (run / RunDirectory.LOCK).exists()  # the lock went with the "killed" process
    model, epochs = _train(run, 4)
    assert epochs == [2, 3]  # epoch 2 again (its result was lost with the kill), nothing twice in the model
    _assert_same_run(model, run, uninterrupted)


def test_a_kill_between_model_rename_and_history_resumes_after_it(tmp_path, monkeypatch, uninterrupted):
    """last.keras and state.json of epoch 3 landed, its history row did not: the row is restored."""
    run = tmp_path / "run"
    real_write = RunDirectory.write_history

    def write_history(self, rows):
        if len(rows) == 3:
            raise Killed
        return real_write(self, rows)

    with monkeypatch.context() as patch:
        patch.setattr(RunDirectory, "write_history", write_history)
        with pytest.raises(Killed):
            _train(run, 4)
    assert _history_epochs(run) == [0, 1]
    model, epochs = _train(run, 4)
    assert epochs == [3]
    _assert_same_run(model, run, uninterrupted)


def test_a_model_newer_than_its_state_is_refused_not_trained_twice(tmp_path):
    """The failure of the old write order (last.keras of epoch 3, state.json of epoch 2) resumed
    silently from epoch 2 and trained epoch 2 a second time; now it is refused, naming both files."""
    run = tmp_path / "run"
    _train(run, 2)
    state = (run / "state.json").read_text()
    _train(run, 3)
    (run / "state.json").write_text(state)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(CheckpointError, match=r"last\.keras is not the model .*state\.json records for epoch 2"):
        _train(run, 4)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_damaged_checkpoint_files_are_errors_naming_them(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    (run.path / "state.json").write_text('{"epoch": 2, "best"')
    with pytest.raises(CheckpointError, match=r"state\.json: not valid JSON"):
        run.checkpoint()
    (run.path / "state.json").write_text('[2]')
    with pytest.raises(CheckpointError, match=r"state\.json: not a checkpoint state"):
        run.checkpoint()
    (run.path / "state.json").write_text(json.dumps({"epoch": 2, "best": 1.0, "monitor": "val_loss",
                                                     "last": {"sha256": "0" * 64, "size": 3}, "history": [],
                                                     "previous": {"epoch": 1}}))
    with pytest.raises(CheckpointError, match=r"records epoch 2, but .*last\.keras is missing"):
        run.checkpoint()
    (run.path / "history.csv").write_text("epoch,loss\n0,abc\n")
    with pytest.raises(ValueError, match=r"history\.csv: not a table of losses"):
        run.read_history()


def test_a_state_of_the_previous_release_is_resumed_as_it_says(tmp_path, uninterrupted):
    """state.json without digests (release 0) and a CSV history: resumed, the rows kept."""
    run = tmp_path / "run"
    _train(run, 2)
    state = json.loads((run / "state.json").read_text())
    (run / "state.json").write_text(json.dumps({k: state[k] for k in ("epoch", "best", "monitor")}))
    model, epochs = _train(run, 4)
    assert epochs == [2, 3]
    _assert_same_run(model, run, uninterrupted)


# --------------------------------------------------------------------------- the lock

HOLDER = textwrap.dedent("""
    import sys
    from tfp_anomaly.rundir import RunDirectory
    RunDirectory(sys.argv[1]).acquire()
    print("holding", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of ``tmp_path / "run"``."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout.readline().strip() == "holding"
    yield process, run
    process.kill()
    process.wait()


def test_a_second_run_fails_at_once_naming_the_holder(holder, tmp_path):
    process, run = holder
    with pytest.raises(RunLockedError) as error:
        RunDirectory(run).acquire()
    message = str(error.value)
    assert f"pid {process.pid} on host {socket.gethostname()}, started 20" in message and "\n" not in message
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(RunLockedError, match=f"pid {process.pid}"):  # training into it: refused before any epoch
        _train(run, 2)
    assert sorted(p.name for p in run.iterdir()) == before == [".lock"]


def test_a_killed_holder_never_blocks_the_next_run(holder):
    process, run = holder
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (run / ".lock").exists()  # left behind by the kill, but no longer locked
    with RunDirectory(run).lock():
        holder = json.loads((run / ".lock").read_text())
        assert holder["pid"] == os.getpid()
    assert not (run / ".lock").exists()


def test_the_lock_nests_within_a_process_and_is_gone_after_training(tmp_path):
    run = RunDirectory(tmp_path / "run")
    with run.lock():
        with run.lock():
            assert run.holds_lock()
        _, epochs = _train(run, 1)  # train takes the lock this process already holds
        assert epochs == [0] and run.holds_lock()
    assert not run.holds_lock() and not run.file(RunDirectory.LOCK).exists()
    assert sorted(p.name for p in run.path.iterdir()) == ["best.keras", "history.csv", "last.keras", "state.json"]


def test_a_claim_holds_the_lock_until_released_and_overwrite_keeps_it(tmp_path):
    run = RunDirectory(tmp_path / "run")
    config = {"model": {"type": "vae"}}
    run.claim(config)
    assert run.holds_lock()
    run.claim(config, overwrite=True)  # deletes the run's files, not the lock held on it
    assert run.holds_lock() and run.file(RunDirectory.LOCK).exists() and run.exists()
    run.release()
    assert not run.holds_lock() and not run.file(RunDirectory.LOCK).exists()


# --------------------------------------------------------------------------- divergence

def test_a_diverging_loss_stops_training_with_a_clear_error():
    guard = StopOnNonFinite()
    guard.set_model(keras.Sequential())
    guard.on_train_begin()
    guard.on_epoch_begin(2)
    for batch, loss in enumerate([20.0, 15.0, 9.0, -30.0, 1e4]):  # falling, negative, a 500-fold jump: training
        guard.on_train_batch_begin(batch)
        guard.on_train_batch_end(batch, {"loss": loss})
    guard.on_train_batch_begin(5)
    with pytest.raises(DivergedLossError, match=r"training diverged: loss 1e\+15 at epoch 3, step 6, more than "
                                                r"10000 times the first loss 20; lower the learning rate"):
        guard.on_train_batch_end(5, {"loss": 1e15})
    assert issubclass(DivergedLossError, NonFiniteLossError)


def test_training_that_runs_away_is_stopped_not_finished(tmp_path):
    x = X.copy()
    x[192:] *= 1e7  # the fourth batch (unshuffled): a loss some 1e14 times the first, still finite
    with pytest.raises(DivergedLossError, match=r"epoch 1, step 4, more than 10000 times the first loss"):
        _train(tmp_path / "run", 2, x=x, shuffle=False)
    assert not (tmp_path / "run" / "state.json").exists()  # no epoch ended: nothing checkpointed


# --------------------------------------------------------------------------- CI and the shared data

def test_missing_shared_data_fails_on_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    from conftest import REQUIRE_DATA, _need

    missing = tmp_path / "not_there.csv"
    monkeypatch.delenv(REQUIRE_DATA, raising=False)
    with pytest.raises(pytest.skip.Exception):
        _need(missing)
    monkeypatch.setenv(REQUIRE_DATA, "1")
    with pytest.raises(pytest.fail.Exception, match="not_there.csv"):
        _need(missing)
    assert f"export {REQUIRE_DATA}=1" in (ROOT / ".ci" / "run").read_text()
