"""A file that does not fit a small memory budget trains and scores through the command line.

The budget is a hard limit, not a measurement: the commands run in a child process (this file run as a
script) that imports ``tfp_anomaly.cli`` and TensorFlow, warms up (a tiny Keras model fitted on a
``tf.data`` generator and used for prediction, so that TensorFlow's thread pools, the ``tf.data``
runtime and Keras' loops exist), reads its address-space size ``VmSize`` and sets ``RLIMIT_AS`` to
that plus :data:`BUDGET_MIB`; then it runs ``tfp_anomaly.cli.main([...])`` for each command. Any
allocation beyond the limit fails (``MemoryError`` in NumPy), so a command that succeeds needed at most
the budget on top of the warmed-up process, whatever the timing. The address space counts memory
reserved, not only touched: the child runs with ``MALLOC_ARENA_MAX=2`` (glibc otherwise reserves a
64 MiB heap arena per allocating thread), and the budget also covers the stacks of the threads started
later (8 MiB reserved each). ``RLIMIT_AS`` works with TensorFlow this way (no fallback to comparing peak
RSS was needed): the warmed-up child's VmSize is 1.8 GiB (RSS 0.7 GiB), the same in every run.

The file: :data:`N_EVENTS` events, the embedded background's 50,000 lines over and over with the event
ids renumbered, a 132 MiB Dark Machines CSV, on the DarkFlow object grid (32 × 4 float32 and a one-byte
mask per event: 544 bytes of model input, 415 MiB for the file, more than the 400 MiB budget by
itself). Two children under the same limit, side by side:

* ``data.stream: true``: ``tfp-anomaly train`` (the CSV converted through the automatic cache, the
  split, the scaler fitted on ``data.fit_events`` events, one epoch streamed in 65,536-event buffers,
  a small dense VAE) and ``tfp-anomaly score`` (the test part and the three embedded signals, chunk by
  chunk) both exit 0, and every test and signal event is scored. Measured: VmPeak 270–300 MiB above
  the warmed-up process (most of it the conversion's 100,000-event chunks), 100 MiB below the limit;
* ``data.stream: false``: the same ``train`` fails with ``MemoryError`` (allocating the 391 MiB
  object-grid array of all events, after the events themselves were read); without a limit it peaks
  1.25 GiB above the warmed-up process, three times the budget.

Runtime: 45–60 s on two shared cores (two TensorFlow start-ups of about 10 s, in parallel; the
conversion; one epoch over 680,000 events).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: events in the background file
N_EVENTS = 800_000
#: the memory a command may use on top of the warmed-up process (address space, MiB)
BUDGET_MIB = 400
#: model input of one event on the DarkFlow grid: 32 x 4 float32 and a one-byte mask per row
INPUT_BYTES = 32 * 4 * 4 + 32

CONFIG = """
data: {{background: {background}, signals: sample, fit_events: 20000, chunk_events: 65536}}
grid: {{blocks: [[j, 13], [b, 3], [m+, 3], [m-, 3], [e+, 3], [e-, 3], [g, 3]], met_row: true,
       features: [E, pt, eta, phi]}}
scaler: {{name: standard, log_columns: [0, 1]}}
split: {{fractions: [0.85, 0.1, 0.05], seed: 0}}
model: {{type: vae, latent_dim: 4, network: {{type: dense, hidden_units: [32]}}, iwae_samples: 2}}
training: {{epochs: 1, batch_size: 8192, verbose: 0, jit_compile: false}}
"""
METHODS = ["mse", "kl", "mahalanobis"]


# --------------------------------------------------------------------------- the child process

def _status(*keys) -> dict:
    """Fields of /proc/self/status in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) // 1024 for k in keys}


def _warm_up() -> None:
    """What TensorFlow and Keras make once per process: thread pools, the tf.data runtime (a generator
    dataset, as streamed training uses), Keras' training and prediction loops."""
    import keras
    import numpy as np
    import tensorflow as tf

    def generate():
        for _ in range(4):
            yield np.zeros((32, 8), np.float32), np.zeros((32, 1), np.float32)

    spec = (tf.TensorSpec((None, 8), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(tf.data.Dataset.from_generator(generate, output_signature=spec).prefetch(2), epochs=1, verbose=0)
    model.predict(np.zeros((64, 8), np.float32), verbose=0)


def child(argv=None) -> int:
    """Warm up, limit the address space to VmSize + ``--budget-mib``, run each CLI command of
    ``--commands`` (a JSON list of argument lists); one JSON line per command on stdout."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-mib", type=int, required=True)
    parser.add_argument("--commands", required=True)
    args = parser.parse_args(argv)
    from tfp_anomaly import cli

    _warm_up()
    base = _status("VmSize", "VmRSS")
    limit = (base["VmSize"] + args.budget_mib) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    print(json.dumps({"base": base, "limit_mib": limit >> 20}), flush=True)
    for command in json.loads(args.commands):
        start, error = time.perf_counter(), None
        try:
            code = cli.main(command)
        except BaseException as err:  # noqa: BLE001 - reported to the test, which decides
            code, error = 1, type(err).__name__
            traceback.print_exc()
        print(json.dumps({"command": command[0], "rc": code, "error": error, "seconds": time.perf_counter() - start,
                          **_status("VmPeak", "VmHWM")}), flush=True)
        if code:
            return code
    return 0


# --------------------------------------------------------------------------- the test

def start_child(commands: list[list[str]], cache: Path) -> subprocess.Popen:
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "TF_CPP_MIN_LOG_LEVEL": "2", "TFP_ANOMALY_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, __file__, "--budget-mib", str(BUDGET_MIB), "--commands",
                             json.dumps([[str(a) for a in c] for c in commands])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(process: subprocess.Popen) -> tuple[list[dict], str]:
    out, err = process.communicate(timeout=600)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return lines, err


def make_background(path: Path, n: int) -> None:
    """``n`` events: the embedded background's lines over and over, event ids renumbered 0..n-1."""
    import gzip

    from tfp_anomaly.data.sample import sample_files

    with gzip.open(sample_files()["background"], "rt") as handle:
        bodies = [line.split(";", 1)[1] for line in handle if line.strip()]
    with path.open("w") as out:
        for start in range(0, n, len(bodies)):
            out.writelines(f"{start + i};{body}" for i, body in enumerate(bodies[:n - start]))


def test_a_file_beyond_the_memory_budget_trains_and_scores_streamed_and_fails_in_memory(tmp_path):
    from tfp_anomaly.report import ScoredRun

    assert N_EVENTS * INPUT_BYTES > BUDGET_MIB << 20  # the model input alone exceeds the budget
    background, cache = tmp_path / "background.csv", tmp_path / "cache"
    make_background(background, N_EVENTS)
    config = tmp_path / "budget.yaml"
    config.write_text(CONFIG.format(background=background))
    streamed_run, memory_run = tmp_path / "streamed", tmp_path / "in-memory"
    try:
        streamed = start_child([["train", config, "--run-dir", streamed_run, "-o", "data.stream=true"],
                                ["score", streamed_run, "--no-progress", "--methods", *METHODS]], cache)
        in_memory = start_child([["train", config, "--run-dir", memory_run, "-o", "data.stream=false"]], cache)
        (limit, *done), err = finish(streamed)
        in_memory_lines, in_memory_err = finish(in_memory)
    finally:  # 136 MiB of CSV and its cache
        background.unlink()
        shutil.rmtree(cache, ignore_errors=True)

    where = f"under RLIMIT_AS = VmSize {limit['base']['VmSize']} MiB + {BUDGET_MIB} MiB"
    assert [d["rc"] for d in done] == [0, 0], f"streamed, {where}: {done}\n{err[-3000:]}"
    assert max(d["VmPeak"] for d in done) <= limit["limit_mib"]
    summary = json.loads((streamed_run / "summary.json").read_text())
    assert sum(summary["events"].values()) == N_EVENTS and summary["epochs_done"] == 1
    scores = ScoredRun.load(streamed_run / "scores.h5")
    assert set(scores.methods) == set(METHODS)
    assert len(scores.background[METHODS[0]]) == summary["events"]["test"]  # every test event scored
    assert {name: len(s[METHODS[0]]) for name, s in scores.signals.items()} == \
        {"wprime_wz": 5000, "zprime_tt": 5000, "qstar": 5000}

    _, *done = in_memory_lines
    assert done and done[-1]["rc"] != 0, f"in memory, {where}, the file fit after all: {done}"
    assert done[-1]["error"] == "MemoryError", f"in memory, {where}: {done}\n{in_memory_err[-3000:]}"


if __name__ == "__main__":
    sys.exit(child())
