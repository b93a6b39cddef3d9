"""Inference latency: events/s at batch 1 and batch 4096, encoder-only scores vs full scores.

For the DarkFlow ConvVAE (with and without a Planar×6 posterior) and the ConvSWAE, on the embedded
sample's 32 × 4 object matrices (raw GeV values; the fitted scaler is part of every timed path):

* encoder-only scores, usable in a trigger: ``kl``, ``rz`` (VAEs) and ``mahalanobis``, each the
  scaler followed by :func:`tfp_anomaly.trigger.trigger_model` (encoder, latent head, score; what
  ``tfp-anomaly export-hls`` converts);
* full scores: ``model.score_terms`` (scaler, encoder, flow, decoder; every per-event term the
  scoring methods read: reconstruction, mse, Chamfer, kl, rz, latent codes), as ``tfp-anomaly score``
  runs it.

Each path is one ``tf.function`` (graph mode; ``XLA``: ``jit_compile=True``) called on a fixed batch
with the result copied to numpy, for ``--seconds`` after a warm-up call; events/s = batch × calls /
time. Parameters: the weights the path uses. FLOPs per event: TensorFlow's profiler on the batch-1
graph (a multiply-add is 2 FLOPs; exp, log and tanh are not counted). Latency does not depend on the
weights' values, so the models are not trained (the scaler and the score statistics are fitted on
the sample).

    python benchmarks/latency.py [--seconds 2] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import command_line, machine, markdown_table, write_section  # noqa: E402
from tfp_anomaly import trigger  # noqa: E402
from tfp_anomaly.data import ObjectGrid, get_scaler, load_sample  # noqa: E402
from tfp_anomaly.models import SWAE, VAE  # noqa: E402

MARK = "<!-- latency -->"
CONV = {"type": "conv", "hidden": 20}
MODELS = {
    "ConvVAE": dict(cls=VAE),
    "ConvVAE + Planar×6": dict(cls=VAE, flow="planar*6", flow_kwargs={"amortized": True}),
    "ConvSWAE (ring prior)": dict(cls=SWAE, prior="ring"),
}
BATCHES = (1, 4096)


def sample_inputs() -> dict:
    x, mask = ObjectGrid.preset("darkflow").transform(load_sample())
    return {"x": x, "mask": mask}


def build(options: dict, data: dict):
    options = dict(options)
    cls = options.pop("cls")
    keras.utils.set_random_seed(0)
    scaler = get_scaler("standard", log_columns=[0, 1]).fit(data["x"], data["mask"])
    model = cls((32, 4), latent_dim=15, network=CONV, scaler=scaler.get_config(), **options)
    model.build()
    return model


def paths(model, data: dict) -> dict:
    """{label: (function of {"x", "mask"}, parameters used)}: every encoder-only trigger score, then
    the full score terms."""
    out = {}
    background = data["x"][:20_000]
    scaled = model.scaled({"x": background, "mask": data["mask"][:20_000]})[0].numpy()
    for name in sorted(trigger.TRIGGER_SCORES):
        try:
            method = trigger.get_trigger_score(name, model)
        except ValueError:
            continue  # not a score of this model (kl, rz: VAEs only)
        head = trigger.trigger_model(model, name, method.fit(model, scaled))
        out[f"{name} (encoder only)"] = (lambda inputs, head=head: head(model.scaled(inputs)[0]),
                                         head.count_params())
    seed = tf.constant([0, 0], tf.int32)
    out["all score terms (full model)"] = (lambda inputs: model.score_terms(inputs, seed), model.count_params())
    return out


def batch_of(data: dict, size: int) -> dict:
    return {k: tf.convert_to_tensor(v[:size]) for k, v in data.items()}


def events_per_second(fn, inputs: dict, seconds: float) -> float:
    size = int(inputs["x"].shape[0])
    tf.nest.map_structure(lambda t: t.numpy(), fn(inputs))  # trace (and compile)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tf.nest.map_structure(lambda t: t.numpy(), fn(inputs))
        calls += 1
    return size * calls / (time.perf_counter() - start)


def flops_per_event(fn, example: dict) -> int:
    """TensorFlow profiler's float-operation count of ``fn``'s batch-1 graph (variables frozen)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = {k: tf.TensorSpec((1,) + tuple(v.shape[1:]), v.dtype) for k, v in example.items()}
    frozen = convert_variables_to_constants_v2(tf.function(fn).get_concrete_function(spec))
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    profile = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                            options=options)
    return int(profile.total_float_ops)


def measure(args) -> pd.DataFrame:
    data = sample_inputs()
    rows = []
    for label, options in MODELS.items():
        model = build(options, data)
        for path, (fn, params) in paths(model, data).items():
            row = {"model": label, "score": path, "parameters": params,
                   "FLOPs/event": flops_per_event(fn, batch_of(data, 1))}
            for batch in BATCHES:
                for xla in (False, True):
                    compiled = tf.function(fn, jit_compile=xla)
                    row[f"b{batch}{' XLA' if xla else ''}"] = events_per_second(compiled, batch_of(data, batch),
                                                                                args.seconds)
            rows.append(row)
            print(f"{label:24s} {path:30s} " + "  ".join(f"{k} {v:,.0f}" for k, v in list(row.items())[2:]),
                  flush=True)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, args, argv) -> str:
    shown = table.copy()
    for column in shown.columns[4:]:
        shown[column] = shown[column].round().astype(int)
    full = table[table["score"].str.startswith("all")].set_index("model")
    encoder = table[~table["score"].str.startswith("all")]
    speedups = []
    for _, row in encoder.iterrows():
        reference = full.loc[row["model"]]
        speedups.append(f"{row['model']} {row['score'].split()[0]}: {row['b4096 XLA'] / reference['b4096 XLA']:.1f}× "
                        f"at 4096, {row['b1 XLA'] / reference['b1 XLA']:.1f}× at 1")
    return "\n".join([
        MARK, "## Inference latency (`benchmarks/latency.py`)", "",
        f"Command: `{command_line('latency.py', argv)}` (also `make bench`)  ",
        f"Machine: {machine()}; TensorFlow {tf.__version__}, CPU, {os.cpu_count()} threads  ",
        "Input: the embedded sample's 32 × 4 object matrices (raw, the scaler inside every path); events/s "
        f"(higher is better) over {args.seconds:g} s of calls on one fixed batch, results copied to numpy; "
        "`XLA`: the path compiled with `jit_compile=True`. FLOPs per event from TensorFlow's profiler "
        "(multiply-add = 2; transcendental functions not counted).", "",
        markdown_table(shown, digits=0), "",
        "Encoder-only over full scores (XLA): " + "; ".join(speedups) + ".",
        MARK])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    table = measure(args)
    print(table.to_string(index=False))
    if args.markdown:
        write_section(args.markdown, to_markdown(table, args, argv), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
