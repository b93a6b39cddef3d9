"""Training throughput (events/s) of the ConvVAE preset, its flow posteriors and the SWAE, against a
PyTorch peer measured in the same run.

On the 32 × 4 DarkFlow object matrix (the real Dark Machines file of ``../shared/data`` tiled to
``--events`` events when present, else standard-normal inputs of the same shape: the speed does not
depend on the values), for batch sizes 256 and 32: ``model.fit`` through the project's ``train``
(seeded ``tf.data`` epochs, the NaN guard), graph mode, with and without XLA (``jit_compile``), at
batch 32 also with 8 steps per call into the graph (``steps_per_execution``). The figure is events
per second of the fastest of ``--epochs`` epochs after the first (which traces and compiles).

The peer (``benchmarks/peers/darkflow_torch.py``, the ``peers`` extra) is the same architecture in
PyTorch (the DarkFlow ConvVAE and its Planar, Householder-Sylvester and IAF posteriors, Jawahar et al.
2022, arXiv:2110.08508; trainable parameters equal to ours), trained on the same array with the same
loss (MSE + KL), optimiser (Adam, 10⁻³) and number of threads, timed the same way. For each model and
batch size the two sides run interleaved, ours (every variant) then the peer's, ``--repeats`` times;
each side keeps its best. The ratio is the best of our variants over the peer's. Without PyTorch the
peer's columns say it was not run: no figure is ever copied from another run.

    python benchmarks/train_speed.py [--events 12800 --epochs 4 --repeats 2] [--models convvae,iaf]
        [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import command_line, machine, write_section  # noqa: E402
from peers import NOT_RUN, darkflow  # noqa: E402
from tfp_anomaly.models import SWAE, VAE  # noqa: E402
from tfp_anomaly.models.training import train  # noqa: E402

MARK = "<!-- train_speed -->"
DM_FILE = ROOT.parent / "shared" / "data" / "darkmachines" / "monojet_Zp2000.0_DM_50.0_chan3.csv"
CONV = {"type": "conv", "hidden": 20}


class Model(NamedTuple):
    """A benchmarked model: its table label, the options of its factory (``cls`` and keyword
    arguments) and the key of its PyTorch peer in ``peers.darkflow_torch.PEERS`` (None: no peer)."""

    label: str
    options: dict
    peer: str | None = None


#: short key (``--models``) → the model
MODELS = {
    "convvae": Model("ConvVAE", dict(cls=VAE), "convvae"),
    "planar": Model("ConvVAE + Planar×6", dict(cls=VAE, flow="planar*6", flow_kwargs={"amortized": True}), "planar"),
    "sylvester": Model("ConvVAE + Householder-Sylvester×4",
                       dict(cls=VAE, flow="sylvester_householder*4",
                            flow_kwargs={"amortized": True, "num_householder": 8}), "sylvester"),
    "iaf": Model("ConvVAE + IAF×4", dict(cls=VAE, flow="iaf, reverse, iaf, reverse, iaf, reverse, iaf",
                                         flow_kwargs={"hidden_units": [64, 64]}), "iaf"),
    "swae": Model("ConvSWAE (ring prior)", dict(cls=SWAE, prior="ring")),
}

#: batch size → our variants: (column, XLA, steps per execution); at batch 32 the fixed cost per step
#: dominates, so 8 steps per call into the graph are measured too
VARIANTS = {256: [("b256", False, 1), ("b256 XLA", True, 1)],
            32: [("b32", False, 1), ("b32 XLA", True, 1), ("b32 XLA ×8", True, 8)]}


def model_options(cls, options: dict) -> dict:
    """The factory's keyword arguments: a VAE trains on the loss of the PyTorch original, MSE + KL
    (``reconstruction="mse"``, no free bits), not our default negative ELBO."""
    if cls is VAE:
        return {"reconstruction": "mse", "free_bits": 0.0, **options}
    return dict(options)


def select_models(spec: str | None) -> list[str]:
    """The keys of ``--models``: comma-separated keys or labels (any case); all without one."""
    if not spec:
        return list(MODELS)
    by_name = {**{k: k for k in MODELS}, **{m.label.lower(): k for k, m in MODELS.items()}}
    keys = []
    for name in (part.strip().lower() for part in spec.split(",") if part.strip()):
        if name not in by_name:
            raise ValueError(f"unknown model {name!r}; keys: {', '.join(MODELS)}")
        keys.append(by_name[name])
    return keys


def object_matrix(events: int):
    """(inputs dict, scaler config, where the values come from)."""
    from tfp_anomaly.data import ObjectGrid, get_scaler, read_darkmachines

    if DM_FILE.exists():
        x, mask = ObjectGrid.preset("darkflow").transform(read_darkmachines(DM_FILE, unit="GeV"))
        source = f"the Dark Machines file ({len(x):,} events) tiled"
        reps = -(-events // len(x))
        x, mask = np.tile(x, (reps, 1, 1))[:events], np.tile(mask, (reps, 1))[:events]
    else:
        rng = np.random.default_rng(0)
        x, mask = np.abs(rng.normal(size=(events, 32, 4))).astype("float32"), np.ones((events, 32), bool)
        source = "random inputs (the shared data is absent)"
    x = np.ascontiguousarray(x, np.float32)
    scaler = get_scaler("standard", log_columns=[0, 1]).fit(x, mask)
    return {"x": x, "mask": mask}, scaler.get_config(), source


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times = getattr(self, "times", []) + [time.perf_counter() - self.start]


def keras_model(options: dict, scaler: dict):
    """Our model of ``options`` (``cls`` and its keyword arguments), seeded, not yet built."""
    options = dict(options)
    cls = options.pop("cls")
    keras.utils.set_random_seed(0)
    return cls((32, 4), latent_dim=15, network=CONV, scaler=scaler, **model_options(cls, options))


def events_per_second(options: dict, data: dict, scaler: dict, batch: int, epochs: int, xla: bool,
                      steps_per_execution: int = 1) -> float:
    """Ours: events/s of the fastest epoch after the first of ``train``."""
    model = keras_model(options, scaler)
    timer = EpochTimer()
    train(model, data, epochs=epochs, batch_size=batch, verbose=0, callbacks=[timer], jit_compile=xla,
          steps_per_execution=steps_per_execution)
    return len(data["x"]) / min(timer.times[1:])


def parameters(model: Model, scaler: dict, peer) -> str:
    """Trainable parameters, ours and the peer's: "n = n" (the proof of the same architecture), "n ≠ m"
    where they differ (then the comparison is not of the same model), ours alone without a peer."""
    ours = keras_model(model.options, scaler)
    ours.build()
    n = sum(int(np.prod(w.shape)) for w in ours.trainable_weights)
    if model.peer is None or peer is None:
        return f"{n:,}"
    m = peer.trainable_parameters(peer.build(model.peer, scaler))
    return f"{n:,} {'=' if m == n else '≠'} {m:,}"


def peer_events_per_second(peer, model: Model, data: dict, scaler: dict, batch: int, args):
    """The peer's events/s, :data:`NOT_RUN` without PyTorch, None where the model has no peer."""
    if model.peer is None:
        return None
    if peer is None:
        return NOT_RUN
    return peer.train_events_per_second(model.peer, data["x"], batch, args.epochs, args.threads, mask=data["mask"],
                                        scaler=scaler)


def best(old, new):
    """The larger of two figures; a text (not run) or None stays."""
    return new if not isinstance(old, float) else max(old, new)


def measure_batch(model: Model, data: dict, scaler: dict, batch: int, args, peer) -> dict:
    """Our variants and the peer at one batch size, interleaved ``args.repeats`` times, best of each."""
    row = {}
    for _ in range(args.repeats):
        for column, xla, steps in VARIANTS[batch]:
            row[column] = best(row.get(column), events_per_second(model.options, data, scaler, batch, args.epochs,
                                                                  xla, steps))
        row[f"PyTorch b{batch}"] = best(row.get(f"PyTorch b{batch}"),
                                        peer_events_per_second(peer, model, data, scaler, batch, args))
    ours = max(row[column] for column, *_ in VARIANTS[batch])
    theirs = row[f"PyTorch b{batch}"]
    return {**row, f"ours b{batch}": ours, f"ratio b{batch}": ours / theirs if isinstance(theirs, float) else None}


def table_columns() -> list[str]:
    """Per batch size: our variants, the best of them, the peer's figure, their ratio."""
    columns = []
    for batch, variants in VARIANTS.items():
        columns += [column for column, *_ in variants] + [f"ours b{batch}", f"PyTorch b{batch}", f"ratio b{batch}"]
    return columns


COLUMNS = table_columns()


def cell(column: str, value) -> str:
    """A table cell: events/s with thousands separators, a ratio with ×, a text as it is, – for none."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:.2f}×" if column.startswith("ratio") else f"{value:,.0f}"


def measure(args, peer) -> tuple[pd.DataFrame, str]:
    data, scaler, source = object_matrix(args.events)
    rows = []
    for key in args.models:
        model = MODELS[key]
        row = {"model": model.label, "parameters": parameters(model, scaler, peer)}
        print(f"{model.label:36s} trainable parameters (ours = PyTorch): {row['parameters']}", flush=True)
        for batch in VARIANTS:
            figures = measure_batch(model, data, scaler, batch, args, peer)
            row.update(figures)
            print(f"{model.label:36s} " + "  ".join(f"{k} {cell(k, v)}" for k, v in figures.items()), flush=True)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["model", "parameters", *COLUMNS])
    print(table.assign(**{c: table[c].map(lambda v, c=c: cell(c, v)) for c in COLUMNS}).to_string(index=False),
          flush=True)
    return table, source


def peer_description(peer, args) -> str:
    if peer is None:
        return f"PyTorch peer: {NOT_RUN}."
    import torch

    return (f"PyTorch peer: `benchmarks/peers/darkflow_torch.py`, PyTorch {torch.__version__}, eager, "
            f"{args.threads} threads (`torch.set_num_threads`): the same architecture (trainable parameters equal "
            "to ours, `tests/test_peers.py`), data array, loss (MSE + KL) and optimiser (Adam, 10⁻³), timed alike. "
            f"Both sides ran in this run, interleaved: for each model and batch size ours (every column) then the "
            f"peer, {args.repeats}×, each keeping its best. Ratio: the best of ours over the peer's.")


def to_markdown(table: pd.DataFrame, source: str, args, argv, peer) -> str:
    lines = [MARK, "## Training throughput (`benchmarks/train_speed.py`)", "",
             f"Command: `{command_line('train_speed.py', argv)}` (also `make bench`)  ",
             f"Machine: {machine()}; TensorFlow {tf.__version__}, CPU, {args.threads} threads; load average (1 min) "
             f"{args.load[0]:.2f} before, {args.load[1]:.2f} after (another process on the cores slows the peer's "
             "busy-waiting OpenMP threads far more than ours)  ",
             f"Data: 32 × 4 DarkFlow object matrix, {args.events:,} events from {source}; latent 15; Adam; "
             "events/s of the fastest epoch after the first (higher is better).  ",
             peer_description(peer, args), "",
             "| model | parameters | " + " | ".join(COLUMNS) + " |", "|---|---:|" + "---:|" * len(COLUMNS)]
    for _, r in table.iterrows():
        lines.append(f"| {r['model']} | {r['parameters']} | " + " | ".join(cell(c, r[c]) for c in COLUMNS) + " |")
    lines += ["", "Columns: graph mode; `XLA`: `jit_compile=True` (the default of `train` wherever every layer "
              "supports it); `×8`: also `steps_per_execution=8`; `ours`: the best of our columns at that batch size; "
              "parameters: trainable, ours = the peer's where there is one.",
              "", *targets(table), "", *limits(table), MARK]
    return "\n".join(lines)


#: the speed target: ours at least this many times the peer's events/s, at every batch size
TARGET = 2.0


def targets(table: pd.DataFrame) -> list[str]:
    """One line per model with a peer: its ratios and whether each reaches :data:`TARGET`."""
    lines = [f"Target: ours ≥ {TARGET:g}× the peer at batch 256 and at batch 32."]
    for _, r in table.iterrows():
        ratios = {b: r[f"ratio b{b}"] for b in VARIANTS}
        if all(isinstance(v, float) and not np.isnan(v) for v in ratios.values()):
            lines.append(f"{r['model']}: " + ", ".join(
                f"{v:.2f}× at {b} ({'met' if v >= TARGET else 'missed'})" for b, v in ratios.items()) + ".")
    return [" ".join(lines[:1]), ""] + [f"- {line}" for line in lines[1:]]


def limits(table: pd.DataFrame) -> list[str]:
    """Split the step time t(b) = t0 + b·c (from the batch 32 and 256 XLA figures) into a fixed cost per
    step t0 (dispatch, optimizer update, the small per-step kernels) and a cost per event c."""
    lines = ["What limits it (XLA; step time t(b) = t₀ + b·c fitted through batch 32 and 256):", "",
             "| model | t₀ per step (ms) | c per event (µs) | share of t₀ at batch 32 | at batch 256 |",
             "|---|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        t32, t256 = 32 / r["b32 XLA"], 256 / r["b256 XLA"]
        c = (t256 - t32) / 224
        t0 = t32 - 32 * c
        lines.append(f"| {r['model']} | {1e3 * t0:.2f} | {1e6 * c:.1f} | {t0 / t32:.0%} | {t0 / t256:.0%} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=12_800)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per measurement (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repetitions (ours, peer) per model "
                        "and batch size; each side keeps its best")
    parser.add_argument("--models", help=f"comma-separated keys ({', '.join(MODELS)}) or labels; default all")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="TensorFlow's intra- and inter-op threads and the PyTorch peer's (default: all cores)")
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    try:
        args.models = select_models(args.models)
    except ValueError as error:
        parser.error(str(error))
    if args.epochs < 2 or args.repeats < 1:
        parser.error("--epochs must be at least 2 (the first is not timed) and --repeats at least 1")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    peer = darkflow()
    if peer is None:
        print(f"PyTorch peer {NOT_RUN}", flush=True)
    args.load = [os.getloadavg()[0]]
    print(f"load average (1 min) before: {args.load[0]:.2f} on {os.cpu_count()} cores", flush=True)
    table, source = measure(args, peer)
    args.load.append(os.getloadavg()[0])
    print(f"load average (1 min) after: {args.load[1]:.2f}", flush=True)
    if args.markdown:
        write_section(args.markdown, to_markdown(table, source, args, argv, peer), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
