"""What each speed change is worth: the ConvVAE with it switched off and on, measured in the same run.

Two changes make the models faster without changing a result (``docs/models.md``, "Speed"):

* ``philox``: every random draw names Philox (:data:`tfp_anomaly.seeds.ALGORITHM`); off, TensorFlow's
  unnamed default (the same numbers, which XLA:CPU compiles to a slower kernel);
* ``matmul convT``: the conv decoder's single-column transposed convolution as one matmul
  (:class:`tfp_anomaly.models.convolutions.Conv2DTranspose`); off, ``keras.layers.Conv2DTranspose``.

For every combination (both off = the code before them), interleaved ``--repeats`` times, each
keeping its best: training events/s of the ConvVAE (MSE + KL, XLA, as ``train_speed.py``) at batch
256 and 32, and events/s of its full score terms (``score_terms``, XLA, as ``latency.py``) at batch
4096. The last column is the speed-up of both on over both off.

    python benchmarks/speedups.py [--events 12800 --epochs 3 --repeats 2] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import command_line, machine, markdown_table, write_section  # noqa: E402

MARK = "<!-- speedups -->"


def switch(philox: bool, matmul: bool) -> None:
    """Set the two changes on or off for models built (and functions traced) from now on."""
    import keras

    from tfp_anomaly import seeds
    from tfp_anomaly.models import convolutions, networks

    seeds.ALGORITHM = "philox" if philox else "auto_select"
    networks.Conv2DTranspose = convolutions.Conv2DTranspose if matmul else keras.layers.Conv2DTranspose


def figures(args, data, scaler, sample) -> dict:
    """{column: events/s} of the current setting."""
    import tensorflow as tf

    import latency
    import train_speed

    options = train_speed.MODELS["convvae"].options
    row = {f"train b{batch}": train_speed.events_per_second(options, data, scaler, batch, args.epochs, True)
           for batch in (256, 32)}
    model = latency.build(latency.MODELS["ConvVAE"], sample)
    seed = tf.constant([0, 0], tf.int32)
    score = tf.function(lambda inputs: model.score_terms(inputs, seed), jit_compile=True)
    row["full scores b4096"] = latency.events_per_second(score, latency.batch_of(sample, 4096), args.seconds)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=12_800)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing of the score calls")
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    import pandas as pd
    import tensorflow as tf

    import latency
    import train_speed

    data, scaler, _ = train_speed.object_matrix(args.events)
    sample = latency.sample_inputs()
    settings = list(itertools.product((False, True), repeat=2))
    best = {}
    for _ in range(args.repeats):
        for setting in settings:
            switch(*setting)
            for column, value in figures(args, data, scaler, sample).items():
                best[setting, column] = max(best.get((setting, column), 0.0), value)
    switch(True, True)
    columns = ["train b256", "train b32", "full scores b4096"]
    rows = [{"philox": "on" if philox else "off", "matmul convT": "on" if matmul else "off",
             **{column: round(best[(philox, matmul), column]) for column in columns}}
            for philox, matmul in settings]
    table = pd.DataFrame(rows)
    gain = {c: best[(True, True), c] / best[(False, False), c] for c in columns}
    summary = "Both on over both off: " + ", ".join(f"{c} {g:.2f}×" for c, g in gain.items()) + "."
    print(table.to_string(index=False), summary, sep="\n", flush=True)
    if args.markdown:
        section = [MARK, "## What each speed change is worth (`benchmarks/speedups.py`)", "",
                   f"Command: `{command_line('speedups.py', argv)}`  ",
                   f"Machine: {machine()}; TensorFlow {tf.__version__}, XLA:CPU, {os.cpu_count()} threads  ",
                   f"ConvVAE; events/s, the best of {args.repeats} interleaved runs of every setting; both off is "
                   "the code before the changes.", "", markdown_table(table, 0), "", summary, MARK]
        write_section(args.markdown, "\n".join(section), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
