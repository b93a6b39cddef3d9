"""Training throughput (events/s) of the ConvVAE preset, its flow posteriors and the SWAE.

On the 32 × 4 DarkFlow object matrix (the real Dark Machines file of ``../shared/data`` tiled to
``--events`` events when present, else standard-normal inputs of the same shape: the speed does not
depend on the values), for batch sizes 32 and 256: ``model.fit`` through the project's ``train``
(seeded ``tf.data`` epochs, the NaN guard), graph mode, with and without XLA (``jit_compile``). The
figure is events per second of the fastest of ``--epochs`` epochs after the first (which traces and
compiles); at batch 32 also with 8 steps per call into the graph (``steps_per_execution``). The
PyTorch reference figures are those of the original DarkFlow implementation on the
same machine type (2 cores), from the models issue.

    python benchmarks/train_speed.py [--events 12800 --epochs 4] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import machine, write_section  # noqa: E402
from tfp_anomaly.models import SWAE, VAE  # noqa: E402
from tfp_anomaly.models.training import train  # noqa: E402

MARK = "<!-- train_speed -->"
DM_FILE = ROOT.parent / "shared" / "data" / "darkmachines" / "monojet_Zp2000.0_DM_50.0_chan3.csv"
CONV = {"type": "conv", "hidden": 20}

#: label -> (model factory options, PyTorch reference events/s at batch 256, at batch 32)
MODELS = {
    "ConvVAE": (dict(cls=VAE), 19_200, 6_600),
    "ConvVAE + Planar×6": (dict(cls=VAE, flow="planar*6", flow_kwargs={"amortized": True}), 15_400, 4_800),
    "ConvVAE + Householder-Sylvester×4": (
        dict(cls=VAE, flow="sylvester_householder*4", flow_kwargs={"amortized": True, "num_householder": 8}),
        5_500, 2_600),
    "ConvVAE + IAF×4": (dict(cls=VAE, flow="iaf, reverse, iaf, reverse, iaf, reverse, iaf",
                             flow_kwargs={"hidden_units": [64, 64]}), 7_900, 2_300),
    "ConvSWAE (ring prior)": (dict(cls=SWAE, prior="ring"), None, None),
}


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
    scaler = get_scaler("standard", log_columns=[0, 1]).fit(x, mask)
    return {"x": x, "mask": mask}, scaler.get_config(), source


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times = getattr(self, "times", []) + [time.perf_counter() - self.start]


def events_per_second(options: dict, data: dict, scaler: dict, batch: int, epochs: int, xla: bool,
                      steps_per_execution: int = 1) -> float:
    options = dict(options)
    cls = options.pop("cls")
    if cls is VAE:  # the loss of the PyTorch original, MSE + KL, not our default negative ELBO
        options = {"reconstruction": "mse", "free_bits": 0.0, **options}
    keras.utils.set_random_seed(0)
    model = cls((32, 4), latent_dim=15, network=CONV, scaler=scaler, **options)
    timer = EpochTimer()
    train(model, data, epochs=epochs, batch_size=batch, verbose=0, callbacks=[timer], jit_compile=xla,
          steps_per_execution=steps_per_execution)
    return len(data["x"]) / min(timer.times[1:])


def measure(args) -> tuple[pd.DataFrame, str]:
    data, scaler, source = object_matrix(args.events)
    rows = []
    for label, (options, ref256, ref32) in MODELS.items():
        row = {"model": label}
        for batch, reference in ((256, ref256), (32, ref32)):
            for xla in (False, True):
                row[f"b{batch}{' XLA' if xla else ''}"] = events_per_second(options, data, scaler, batch,
                                                                            args.epochs, xla)
            if batch == 32:  # the fixed cost per step dominates here: run 8 steps per call into the graph
                row["b32 XLA ×8"] = events_per_second(options, data, scaler, batch, args.epochs, True, 8)
            row[f"b{batch} PyTorch"] = reference
        rows.append(row)
        print(f"{label:36s} " + "  ".join(f"{k} {v:,.0f}" for k, v in row.items() if k != "model" and v),
              flush=True)
    return pd.DataFrame(rows), source


def to_markdown(table: pd.DataFrame, source: str, args) -> str:
    columns = [c for c in table.columns if c != "model"]
    lines = [MARK, "## Training throughput (`benchmarks/train_speed.py`)", "",
             f"Command: `python benchmarks/train_speed.py --events {args.events} --epochs {args.epochs} "
             "--markdown docs/benchmarks.md` (also `make bench`)  ",
             f"Machine: {machine()}; TensorFlow {tf.__version__}, CPU, {os.cpu_count()} threads  ",
             f"Data: 32 × 4 DarkFlow object matrix, {args.events:,} events from {source}; latent 15; Adam; "
             "events/s of the fastest epoch after the first (higher is better). PyTorch: the original "
             "DarkFlow implementation on the same machine type, as stated in the models issue.", "",
             "| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for _, r in table.iterrows():
        cells = ["–" if pd.isna(r[c]) else f"{r[c]:,.0f}" for c in columns]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    best = {256: table[["b256", "b256 XLA"]].max(axis=1), 32: table[["b32", "b32 XLA", "b32 XLA ×8"]].max(axis=1)}
    ratio = {b: best[b] / table[f"b{b} PyTorch"] for b in (256, 32)}
    lines += ["", "Columns: graph mode; `XLA`: `jit_compile=True` (the default of `train` wherever every layer "
              "supports it); `×8`: also `steps_per_execution=8`.", "",
              "Best over PyTorch: " + "; ".join(
        f"{m}: {ratio[256][i]:.2f}× at 256, {ratio[32][i]:.2f}× at 32" for i, m in enumerate(table["model"])
        if not pd.isna(ratio[256][i])) + ".", "", *limits(table), MARK]
    return "\n".join(lines)


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
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    table, source = measure(args)
    if args.markdown:
        write_section(args.markdown, to_markdown(table, source, args), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
