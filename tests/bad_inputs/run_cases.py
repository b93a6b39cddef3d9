"""Bad-input cases: run directories (see tests/bad_inputs/__init__.py).

``score``, ``report`` and ``train`` on run directories that are missing files, hold damaged ones, are
locked by another run or hold a checkpoint whose files do not belong together (a damaged
``config.yaml`` or ``model.keras`` and a folder that is no run: config_cases.py). The cases that need a
trained run share one tiny run, trained once per session (:func:`trained_run`) and copied into
``tmp_path`` by their setup.
"""
from __future__ import annotations

import atexit
import fcntl
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

from . import Case

#: a VAE small enough to train in seconds, on 600 events of the embedded sample, two epochs (so the
#: checkpoint has a previous state)
TINY = """\
data: {background: sample, max_events: 600}
grid: {blocks: [[j, 4], [b, 1], [m+, 1], [m-, 1], [e+, 1], [e-, 1], [g, 1]], met_row: true, features: [E, pt, eta, phi]}
scaler: {name: standard, log_columns: [0, 1]}
model: {type: vae, latent_dim: 2, network: {type: dense, hidden_units: [8]}}
training: {epochs: 2, batch_size: 200, verbose: 0, jit_compile: false}
"""


@functools.cache
def trained_run() -> Path:
    """A run directory of :data:`TINY`, trained once per session (in a temporary folder)."""
    from tfp_anomaly import config as config_lib
    from tfp_anomaly import experiment

    root = Path(tempfile.mkdtemp(prefix="tfp_anomaly_run_cases_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / "tiny.yaml").write_text(TINY)
    run = root / "run"
    experiment.run(config_lib.load_config(root / "tiny.yaml"), run)
    return run


def _run(tmp_path: Path) -> Path:
    """A copy of the shared trained run in ``tmp_path / "run"``, and its configuration as ``tiny.yaml``."""
    run = tmp_path / "run"
    shutil.copytree(trained_run(), run, ignore=shutil.ignore_patterns(".lock"))
    (tmp_path / "tiny.yaml").write_text(TINY)
    return run


def _signal() -> list[str]:
    from tfp_anomaly.data.sample import sample_files

    return ["--signal", str(sample_files()["qstar"]), "--max-signal-events", "100"]


SCORE = ["--methods", "mse", "--no-progress"]


def _score(tmp_path, *extra):
    return ["score", str(tmp_path / "run"), *SCORE, *extra]


def _train(tmp_path):
    return ["train", str(tmp_path / "tiny.yaml"), "--run-dir", str(tmp_path / "run")]


# --------------------------------------------------------------------------- score and report

def run_directory_is_a_file(tmp_path):
    (tmp_path / "run").write_text("not a directory\n")
    return _score(tmp_path)


def model_missing(tmp_path):
    (_run(tmp_path) / "model.keras").unlink()
    return _score(tmp_path)


def split_missing(tmp_path):
    (_run(tmp_path) / "split.npz").unlink()
    return _score(tmp_path)


def split_damaged(tmp_path):
    (_run(tmp_path) / "split.npz").write_bytes(b"PK\x03\x04 not really a zip")
    return _score(tmp_path)


def summary_damaged(tmp_path):
    (_run(tmp_path) / "summary.json").write_text('{"model": "vae", "parameters": ')
    return _score(tmp_path, *_signal())


def summary_damaged_background(tmp_path):
    """``--background`` is checked against the run's input shape (summary.json) before any slow work."""
    (_run(tmp_path) / "summary.json").write_text("[1, 2")
    from tfp_anomaly.data.sample import sample_files

    return _score(tmp_path, "--background", str(sample_files()["background"]))


def history_damaged(tmp_path):
    (_run(tmp_path) / "history.csv").write_text("epoch,loss,val_loss\n0,1.5,1.7\n1,abc,1.6\n")
    return _score(tmp_path, *_signal())


def report_without_scores(tmp_path):
    _run(tmp_path)
    return ["report", str(tmp_path / "run"), "--out", str(tmp_path / "report")]


# --------------------------------------------------------------------------- train into a run directory

#: descriptors holding the lock of a "locked" case's copy: open for the rest of the session, so the
#: lock outlives the setup (an flock conflicts between two open files even within one process)
_HELD: list[int] = []


def locked(tmp_path):
    """Another process (pid 4242 on host node07) trains into the run directory."""
    lock = _run(tmp_path) / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps({"pid": 4242, "host": "node07", "started": "2025-03-01T09:30:00+01:00",
                             "command": "tfp-anomaly train tiny.yaml"}).encode())
    _HELD.append(fd)
    return _train(tmp_path)


def _edit_state(tmp_path, edit) -> None:
    path = _run(tmp_path) / "state.json"
    state = json.loads(path.read_text())
    edit(state)
    path.write_text(json.dumps(state))


def checkpoint_mismatch(tmp_path):
    """last.keras is not the model state.json records (another epoch's, or changed by hand)."""
    def edit(state):
        state["last"]["sha256"] = "0" * 64
        state["previous"] = None
    _edit_state(tmp_path, edit)
    return _train(tmp_path)


def checkpoint_model_newer_than_state(tmp_path):
    """state.json one epoch behind last.keras (what the old write order left after a kill)."""
    def edit(state):
        state.update(state["previous"], previous=None, history=state["history"][:1])
    _edit_state(tmp_path, edit)
    return _train(tmp_path)


def checkpoint_model_missing(tmp_path):
    (_run(tmp_path) / "last.keras").unlink()
    return _train(tmp_path)


def state_damaged(tmp_path):
    (_run(tmp_path) / "state.json").write_text('{"epoch": 2, "best": 1.6')
    return _train(tmp_path)


def state_not_a_state(tmp_path):
    _edit_state(tmp_path, lambda state: state.update(epoch="two"))
    return _train(tmp_path)


def different_configuration(tmp_path):
    _run(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY.replace("latent_dim: 2", "latent_dim: 3"))
    return _train(tmp_path)


CASES: list[Case] = [
    Case("run-score-run-directory-is-a-file", run_directory_is_a_file, ["run", "not a run directory"]),
    Case("run-score-model-missing", model_missing, ["no model.keras", "tfp-anomaly train"]),
    Case("run-score-split-missing", split_missing, ["no split.npz", "incomplete"]),
    Case("run-score-split-damaged", split_damaged, ["split.npz", "not the run's split"]),
    Case("run-score-summary-damaged", summary_damaged, ["summary.json", "not valid JSON"]),
    Case("run-score-background-summary-damaged", summary_damaged_background, ["summary.json", "not valid JSON"]),
    Case("run-score-history-damaged", history_damaged, ["history.csv", "not a table of losses"]),
    Case("run-report-without-scores", report_without_scores, ["scores.h5", "tfp-anomaly score"]),
    Case("run-train-locked", locked, ["in use by another run", "pid 4242 on host node07",
                                      "started 2025-03-01T09:30:00"]),
    Case("run-train-checkpoint-mismatch", checkpoint_mismatch,
         ["last.keras is not the model", "state.json", "epoch 2", "--overwrite"]),
    Case("run-train-checkpoint-model-newer-than-state", checkpoint_model_newer_than_state,
         ["last.keras is not the model", "state.json", "epoch 1"]),
    Case("run-train-checkpoint-model-missing", checkpoint_model_missing, ["last.keras is missing", "epoch 2"]),
    Case("run-train-state-damaged", state_damaged, ["state.json", "not valid JSON", "--overwrite"]),
    Case("run-train-state-not-a-state", state_not_a_state, ["state.json", "not a checkpoint state"]),
    Case("run-train-different-configuration", different_configuration,
         ["holds a run of a different configuration", "config.yaml", "--overwrite"]),
]
