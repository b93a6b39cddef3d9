"""Flow throughput: forward + log-det (and inverse) events/s of every registered flow step.

For each name in ``tfp_anomaly.flows.available()``: the layer with its default options at latent
dimension ``--dim`` (15, the DarkFlow latent size) on batches of ``--batch`` (1024) events, with a
context of ``--context`` features for the amortized form where the flow has one. Each call is a
``tf.function`` (graph mode), optionally also compiled with XLA (``--xla``); the timer runs calls
until ``--min-time`` seconds have passed, after two warm-up calls.

    python benchmarks/flows.py [--dim 15 --batch 1024] [--xla] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import machine, write_section  # noqa: E402
from tfp_anomaly import flows  # noqa: E402

MARK = "<!-- flows -->"
AMORTIZABLE = ("planar", "radial", "householder", "sylvester_orthogonal", "sylvester_householder",
               "sylvester_triangular")


def events_per_second(fn, batch: int, min_time: float) -> float:
    fn(), fn()  # trace and warm up
    calls, start = 0, time.perf_counter()
    while True:
        out = fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            float(tf.reduce_sum(out[1]))  # make sure the work is done
            return calls * batch / elapsed


def variants(context_dim: int):
    """(label, flow name, constructor kwargs, whether it takes a context)."""
    for name in flows.available():
        yield name, name, {}, False
        if name in AMORTIZABLE:
            yield f"{name} (amortized)", name, {"amortized": True}, True
        elif name == "iaf":
            yield "iaf (context)", name, {}, True


def measure(args) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    z = tf.constant(rng.normal(size=(args.batch, args.dim)), tf.float32)
    c = tf.constant(rng.normal(size=(args.batch, args.context)), tf.float32)
    rows = []
    for label, name, kwargs, with_context in variants(args.context):
        layer = flows.get(name, **kwargs)
        context = c if with_context else None
        layer(z, context=context, training=True)  # build (and ActNorm's data-dependent init)
        row = {"flow": label, "parameters": layer.count_params()}
        forward = tf.function(lambda: layer(z, context=context))
        row["forward+logdet ev/s"] = events_per_second(forward, args.batch, args.min_time)
        if layer.has_inverse:
            inverse = tf.function(lambda: layer.inverse(z, context=context))
            row["inverse ev/s"] = events_per_second(inverse, args.batch, args.min_time)
        if args.xla:
            try:
                xla = tf.function(lambda: layer(z, context=context), jit_compile=True)
                row["forward XLA ev/s"] = events_per_second(xla, args.batch, args.min_time)
            except Exception as error:  # report, do not hide: some TFP ops have no XLA kernel
                row["forward XLA ev/s"] = float("nan")
                print(f"{label}: XLA failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}")
        rows.append(row)
        print(f"{label:36s} " + "  ".join(f"{k} {v:,.0f}" for k, v in row.items() if k != "flow"), flush=True)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, args) -> str:
    columns = [c for c in table.columns if c != "flow"]
    lines = [MARK, "## Flow throughput (`benchmarks/flows.py`)", "",
             f"Command: `python benchmarks/flows.py --dim {args.dim} --batch {args.batch}"
             f"{' --xla' if args.xla else ''} --markdown docs/benchmarks.md` (also `make bench`)  ",
             f"Machine: {machine()}; TensorFlow {tf.__version__}, CPU, graph mode (`tf.function`)  ",
             f"Latent dimension {args.dim}, batch {args.batch}, context {args.context} features for the "
             "amortized/context rows, default layer options; events per second (higher is better).", "",
             "| flow | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for _, r in table.iterrows():
        cells = ["n/a" if pd.isna(r[c]) else f"{r[c]:,.0f}" for c in columns]
        lines.append(f"| {r['flow']} | " + " | ".join(cells) + " |")
    lines += ["", "Inverse: n/a where the flow has none (Sylvester). MAF's and the autoregressive spline's forward (sampling) and IAF's inverse "
                  "(density) take d conditioner passes; the other direction takes one.", MARK]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=15)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--context", type=int, default=20)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--xla", action="store_true", help="also time the forward pass compiled with XLA")
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    table = measure(args)
    if args.markdown:
        write_section(args.markdown, to_markdown(table, args), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
