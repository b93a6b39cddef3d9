"""Where the time goes: the XLA operations of a training step and of the encoder-only score, timed.

TensorFlow's profiler traces every operation XLA:CPU runs (one "thunk" per fused kernel,
convolution or matrix product); the optimized HLO (``--xla_dump_to``) names the TensorFlow op each
one came from. For a model of ``train_speed.MODELS`` (``--model``) on the 32 × 4 object matrix this
prints, per training step at ``--batch`` and per call of the ConvVAE's ``rz`` encoder-only score at
``--score-batch``: the wall time, the summed time of the traced operations, how many there are, and
the ``--top`` slowest with their shape and origin. Convolutions and matrix products run
asynchronously on the thread pool, so their traced time can be their launch only; the last table
times the encoder-only path layer by layer without the profiler (the first k layers as one XLA
function, each layer the difference). A step whose traced time is well below its wall time and that
runs hundreds of operations is bound by the fixed cost per operation; a path whose time sits in one
layer is bound by that layer.

    python benchmarks/profile_step.py [--model convvae --batch 256 --score-batch 4096 --top 15]
        [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import collections
import functools
import glob
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import command_line, machine, write_section  # noqa: E402

MARK = "<!-- profile_step -->"
#: the models of ``train_speed.MODELS`` (their keys; imported lazily, with TensorFlow)
MODELS = ("convvae", "planar", "sylvester", "iaf", "swae")


def traced(fn, calls: int) -> tuple[collections.Counter, float]:
    """({operation: µs per call}, wall ms per call) of ``calls`` calls of ``fn`` under the profiler."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="profile_")
    try:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        wall = (time.perf_counter() - start) / calls * 1e3
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]).read_bytes())
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    times = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                times[names.get(event.metadata_id, "")] += event.duration_ps / 1e6 / calls
    return times, wall


def origins(dump: str, module_pattern: str) -> dict:
    """{HLO instruction: (shape, TensorFlow op)} from the newest optimized module of ``dump`` matching the
    pattern."""
    files = sorted(glob.glob(f"{dump}/*{module_pattern}*cpu_after_optimizations.txt"), key=os.path.getmtime)
    found = {}
    for line in Path(files[-1]).read_text().splitlines() if files else []:
        match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+)", line)
        if match:
            op = re.search(r'op_name="([^"]+)"', line)
            found[match.group(1)] = (match.group(2).split("{")[0], op.group(1) if op else "(fused, no op name)")
    return found


def training_step(key: str, batch: int, steps: int):
    """(one training step's function, the HLO module pattern) of model ``key`` at ``batch``."""
    import train_speed
    from tfp_anomaly.models.training import as_part, compile_model, epoch_dataset

    data, scaler, _ = train_speed.object_matrix(batch * steps)
    model = train_speed.keras_model(train_speed.MODELS[key].options, scaler)
    model.build()
    compile_model(model, jit_compile=True)
    dataset, _ = epoch_dataset(as_part(data), batch, 0, 1000, 0, True)
    iterator = iter(dataset)
    model.make_train_function()
    return lambda: model.train_function(iterator)["loss"].numpy(), "one_step_on_data"


def encoder_score(batch: int):
    """(the ``rz`` encoder-only score's function at ``batch``, the HLO module pattern)."""
    import latency
    import tensorflow as tf

    data = latency.sample_inputs()
    model = latency.build(latency.MODELS["ConvVAE"], data)
    fn = tf.function(latency.paths(model, data)["rz (encoder only)"][0], jit_compile=True)
    inputs = latency.batch_of(data, batch)
    return lambda: fn(inputs).numpy(), "lambda"


def encoder_layers(batch: int, seconds: float = 1.0) -> list[str]:
    """The encoder-only path layer by layer, timed without the profiler: the scaled batch through the
    first k encoder layers (one XLA function per k), each layer's share the difference to k − 1."""
    import latency
    import tensorflow as tf

    data = latency.sample_inputs()
    model = latency.build(latency.MODELS["ConvVAE"], data)
    scaled = model.scaled(latency.batch_of(data, batch))[0]
    layers = model.encoder.layers

    def milliseconds(k: int) -> float:
        fn = tf.function(lambda h: functools.reduce(lambda t, layer: layer(t, training=False), layers[:k], h),
                         jit_compile=True)
        fn(scaled).numpy()
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn(scaled).numpy()
            calls += 1
        return (time.perf_counter() - start) / calls * 1e3

    times = [milliseconds(k) for k in range(len(layers) + 1)]
    lines = [f"**ConvVAE encoder layer by layer at batch {batch} (XLA, wall, no profiler)**: the scaled batch "
             "through the first k layers, each layer the difference to the first k − 1 (k = 0: the call "
             "alone)", "", "| layer | output | ms per call | added ms |", "|---|---|---:|---:|",
             f"| (call, copy to numpy) | `{tuple(scaled.shape)}` | {times[0]:.2f} | |"]
    for k, layer in enumerate(layers, 1):
        lines.append(f"| {type(layer).__name__} | `{tuple(layer.output.shape)}` | {times[k]:.2f} | "
                     f"{times[k] - times[k - 1]:+.2f} |")
    print("\n".join(lines) + "\n", flush=True)
    return lines + [""]


def report(dump: str, title: str, fn, pattern: str, calls: int, top: int) -> list[str]:
    for _ in range(3):  # trace, compile, warm up
        fn()
    times, wall = traced(fn, calls)
    names = origins(dump, pattern)
    # the XLA operations only: the profiler's other events are the runtime around them
    times = collections.Counter({name: us for name, us in times.items() if name in names})
    total = sum(times.values())
    lines = [f"**{title}**: {wall:.2f} ms per call (wall, under the profiler); traced operations "
             f"{total / 1e3:.2f} ms (summed over threads), {len(times)} distinct operations. A convolution or "
             "matrix product runs asynchronously on the thread pool: its traced time may be its launch only "
             "(the layer-by-layer table times them without the profiler)", "",
             "| µs per call | share | operation | shape | from |", "|---:|---:|---|---|---|"]
    for name, us in times.most_common(top):
        shape, origin = names.get(name, ("", ""))
        lines.append(f"| {us:,.0f} | {us / total:.0%} | `{name}` | `{shape}` | {origin[-80:]} |")
    print("\n".join(lines) + "\n", flush=True)
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="convvae", choices=MODELS)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--score-batch", type=int, default=4096)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    dump = tempfile.mkdtemp(prefix="xla_dump_")
    # before TensorFlow is imported: XLA reads its flags once per process
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={dump} --xla_dump_hlo_as_text " \
                              "--xla_dump_hlo_pass_re=NONE".strip()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import train_speed

    label = train_speed.MODELS[args.model].label
    lines = [MARK, "## Where the time goes (`benchmarks/profile_step.py`)", "",
             f"Command: `{command_line('profile_step.py', argv)}`  ",
             f"Machine: {machine()}; TensorFlow {tf.__version__}, XLA:CPU, {os.cpu_count()} threads", ""]
    lines += report(dump, f"{label}, one training step at batch {args.batch} (XLA)",
                    *training_step(args.model, args.batch, args.calls), args.calls, args.top)
    lines += report(dump, f"ConvVAE, rz encoder-only score at batch {args.score_batch} (XLA)",
                    *encoder_score(args.score_batch), args.calls, args.top)
    lines += encoder_layers(args.score_batch)
    shutil.rmtree(dump, ignore_errors=True)
    if args.markdown:
        write_section(args.markdown, "\n".join(lines + [MARK]), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
