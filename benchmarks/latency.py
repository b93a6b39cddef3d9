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

The PyTorch peer (``benchmarks/peers/darkflow_torch.py``, the ``peers`` extra: the same architecture,
the same scaler statistics) adds two rows per VAE, measured right after ours on the same batch and
threads (eager, ``torch.inference_mode``, eval mode, results copied to numpy): its trigger path ``rz``
(scaler, encoder, heads) and every score term (scaler, encoder, flow, decoder, the same terms as
``score_terms``, the K importance samples decoded one at a time). Without PyTorch those rows say the
peer was not run.

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
from peers import NOT_RUN, darkflow  # noqa: E402
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
#: label of a model above → the key of its PyTorch peer (``peers.darkflow_torch.PEERS``)
PEERS = {"ConvVAE": "convvae", "ConvVAE + Planar×6": "planar"}
#: the peer's paths: (row label, encoder only), the first our trigger path ``rz``
PEER_PATHS = (("rz (encoder only), PyTorch", True), ("all score terms (full model), PyTorch", False))


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


def peer_rows(label: str, model, data: dict, args, peer) -> list[dict]:
    """The PyTorch peer's rows of model ``label`` (none without a peer): :data:`PEER_PATHS` at every
    batch size, as the Keras model is configured (reconstruction, importance samples, scaler)."""
    key = PEERS.get(label)
    if key is None:
        return []
    rows = []
    for path, encoder_only in PEER_PATHS:
        row = {"model": label, "score": path, "parameters": None, "FLOPs/event": None}
        if peer is None:
            rows.append({**row, **{f"b{batch}": NOT_RUN for batch in BATCHES}})
            continue
        options = dict(reconstruction=model.reconstruction_spec, iwae_samples=model.iwae_samples)
        row["parameters"] = peer.weights_used(key, encoder_only, model.reconstruction_spec)
        for batch in BATCHES:
            row[f"b{batch}"] = peer.score_events_per_second(key, data["x"], batch, encoder_only, args.seconds,
                                                            mask=data["mask"], scaler=model.scaler_config,
                                                            threads=os.cpu_count(), **options)
        rows.append(row)
    return rows


def figure(value) -> str:
    """A figure as the tables show it: a whole number with separators, a text as it is, – for none."""
    if isinstance(value, str):
        return value
    return "–" if value is None or np.isnan(value) else f"{value:,.0f}"


def print_row(row: dict) -> None:
    print(f"{row['model']:24s} {row['score']:40s} " + "  ".join(f"{k} {figure(v)}" for k, v in list(row.items())[2:]),
          flush=True)


def measure(args, peer) -> pd.DataFrame:
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
            print_row(row)
        for row in peer_rows(label, model, data, args, peer):
            rows.append(row)
            print_row(row)
    return pd.DataFrame(rows)


def is_peer(table: pd.DataFrame) -> pd.Series:
    return table["score"].str.endswith(", PyTorch")


def peer_comparison(table: pd.DataFrame) -> list[str]:
    """Ours (the best of graph and XLA) over the peer's events/s, for every peer row that ran."""
    ours = table[~is_peer(table)].set_index(["model", "score"])
    ratios = []
    for _, row in table[is_peer(table)].iterrows():
        if isinstance(row["b4096"], str):
            continue  # not run
        mine = ours.loc[(row["model"], row["score"].removesuffix(", PyTorch"))]
        ratios.append(f"{row['model']} {row['score'].split()[0]}: " + ", ".join(
            f"{max(mine[f'b{b}'], mine[f'b{b} XLA']) / row[f'b{b}']:.1f}× at {b}" for b in reversed(BATCHES)))
    return ratios


def peer_description(peer) -> str:
    if peer is None:
        return f"PyTorch peer (rows `…, PyTorch`): {NOT_RUN}."
    import torch

    return (f"PyTorch peer (rows `…, PyTorch`): `benchmarks/peers/darkflow_torch.py`, PyTorch {torch.__version__}, "
            f"eager, {os.cpu_count()} threads, measured right after ours in the same run on the same batch; its "
            "parameters counted as Keras' `count_params` (batch-norm moving statistics included).")


def to_markdown(table: pd.DataFrame, args, argv, peer) -> str:
    shown = table.copy()
    for column in shown.columns[2:]:
        shown[column] = shown[column].map(figure)
    ours = table[~is_peer(table)]
    full = ours[ours["score"].str.startswith("all")].set_index("model")
    encoder = ours[~ours["score"].str.startswith("all")]
    speedups = []
    for _, row in encoder.iterrows():
        reference = full.loc[row["model"]]
        speedups.append(f"{row['model']} {row['score'].split()[0]}: {row['b4096 XLA'] / reference['b4096 XLA']:.1f}× "
                        f"at 4096, {row['b1 XLA'] / reference['b1 XLA']:.1f}× at 1")
    comparison = peer_comparison(table)
    return "\n".join([
        MARK, "## Inference latency (`benchmarks/latency.py`)", "",
        f"Command: `{command_line('latency.py', argv)}` (also `make bench`)  ",
        f"Machine: {machine()}; TensorFlow {tf.__version__}, CPU, {os.cpu_count()} threads  ",
        "Input: the embedded sample's 32 × 4 object matrices (raw, the scaler inside every path); events/s "
        f"(higher is better) over {args.seconds:g} s of calls on one fixed batch, results copied to numpy; "
        "`XLA`: the path compiled with `jit_compile=True`. FLOPs per event from TensorFlow's profiler "
        "(multiply-add = 2; transcendental functions not counted).  ",
        peer_description(peer), "",
        markdown_table(shown, digits=0), "",
        "Encoder-only over full scores (XLA): " + "; ".join(speedups) + ".",
        *(["", "Ours (best of graph and XLA) over the PyTorch peer: " + "; ".join(comparison) + "."]
          if comparison else []),
        MARK])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    peer = darkflow()
    table = measure(args, peer)
    print(table.to_string(index=False, formatters={c: figure for c in table.columns[2:]}))
    if args.markdown:
        write_section(args.markdown, to_markdown(table, args, argv, peer), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
