"""Scale benchmark: a 2-million-event Dark Machines file streamed through convert -> train -> score.

The file is made by the benchmark itself: lines of the embedded Standard Model background
(``tfp_anomaly/data/embedded/background.csv.gz``, 50,000 Pythia 8 events) resampled with replacement
(seeded) and renumbered, in the challenge's CSV format. Each stage then runs in a fresh process, so
its peak resident memory (the kernel's ``VmHWM``) is its own:

* ``convert``: CSV -> columnar HDF5 cache, what ``tfp-anomaly data convert`` does (``write_cache``
  over ``open_events`` chunks);
* ``train``: one epoch of the DarkFlow ConvVAE (``examples/configs/convvae.yaml``'s model) over the
  whole cache with ``stream_dataset`` (chunks of ``--chunk-size`` events, shuffled within chunks),
  the scaler fitted on the first chunk;
* ``score``: every applicable score of the trained model on every event of the cache, chunk by chunk
  (``Scorer`` fitted on the first chunk), written to an HDF5 file; then, as a check that one epoch
  learnt something, the AUC of each score for the embedded signals against the first 100,000 events.

Target: every stage's peak memory under 2 GiB, whatever the file size.

    python benchmarks/scale.py [--events 2000000] [--chunk-size 100000] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import command_line, machine, markdown_table, write_section  # noqa: E402

MARK = "<!-- scale -->"
LIMIT_MIB = 2048
CHECK_EVENTS = 100_000


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


# --------------------------------------------------------------------------- the file

def make_file(n: int, seed: int, out: Path) -> Path:
    """``n`` events resampled from the embedded background, renumbered 0..n-1, Dark Machines CSV."""
    from tfp_anomaly.data.sample import sample_files

    with gzip.open(sample_files()["background"], "rt") as handle:
        bodies = [line.split(";", 1)[1] for line in handle if line.strip()]
    rng = random.Random(seed)
    with out.open("w") as handle:
        for start in range(0, n, 100_000):
            picked = rng.choices(bodies, k=min(100_000, n - start))
            handle.writelines(f"{start + i};{body}" for i, body in enumerate(picked))
    return out


# --------------------------------------------------------------------------- stages (each in its own process)

def stage_convert(work: Path, args) -> dict:
    from tfp_anomaly.data import open_events, write_cache

    # `tfp-anomaly data convert events.csv events.h5 --unit GeV`
    summary = write_cache(open_events(work / "events.csv", chunk_size=args.chunk_size, unit="GeV"), work / "events.h5")
    return {"events": summary["events"]}


def _grid():
    from tfp_anomaly.data import ObjectGrid

    return ObjectGrid.preset("darkflow")


def stage_train(work: Path, args) -> dict:
    import keras

    from tfp_anomaly.data import get_scaler, grid_chunks, stream_dataset
    from tfp_anomaly.models import VAE
    from tfp_anomaly.models.training import compile_model

    cache = work / "events.h5"
    first_chunk = next(grid_chunks(cache, _grid(), chunk_size=args.chunk_size))
    scaler = get_scaler("standard", log_columns=[0, 1]).fit(*first_chunk)
    del first_chunk
    keras.utils.set_random_seed(args.seed)
    model = VAE(_grid().shape, latent_dim=15, network={"type": "conv", "hidden": 20}, scaler=scaler.get_config(),
                seed=args.seed)
    model.build()
    compile_model(model, learning_rate=1e-3, clipnorm=10.0)
    data = stream_dataset(cache, _grid(), batch_size=args.batch_size, chunk_size=args.chunk_size, seed=args.seed)
    history = model.fit(data, epochs=1, verbose=0)
    model.save(work / "model.keras")
    return {"loss": float(history.history["loss"][-1])}


def stage_score(work: Path, args) -> dict:
    import h5py

    from tfp_anomaly.atomic import atomic_path
    from tfp_anomaly.data import grid_chunks, load_sample
    from tfp_anomaly.rundir import RunDirectory
    from tfp_anomaly.report.metrics import auc
    from tfp_anomaly.scoring import Scorer, compute_terms

    model = RunDirectory(work).load_model()
    cache = work / "events.h5"
    scorer, written = None, 0
    with atomic_path(work / "scores.h5") as tmp, h5py.File(tmp, "w") as out:
        for x, mask in grid_chunks(cache, _grid(), chunk_size=args.chunk_size):
            inputs = {"x": x, "mask": mask}
            terms = compute_terms(model, inputs)
            scorer = scorer or Scorer().fit(model, inputs, terms=terms)
            for name, values in scorer.score(model, inputs, terms=terms).items():
                if name not in out:
                    out.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(1 << 16,))
                out[name].resize((written + len(values),))
                out[name][written:] = values
            written += len(x)
        background = {name: out[name][:CHECK_EVENTS] for name in out}
    signal_x, signal_mask = _grid().transform(load_sample("signals"))
    signal = scorer.score(model, {"x": signal_x, "mask": signal_mask})
    aucs = {name: auc(background[name], signal[name]) for name in signal}
    return {"events": written, "scores": len(aucs), "auc": aucs}


STAGES = {"convert": stage_convert, "train": stage_train, "score": stage_score}


def run_stage(name: str, work: Path, args) -> dict:
    """Run one stage in a child process; its wall time, peak memory and what the stage reported."""
    command = [sys.executable, __file__, "--stage", name, "--work", str(work), "--chunk-size", str(args.chunk_size),
               "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"stage {name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds"] = time.perf_counter() - start
    return result


def measure(args) -> tuple[pd.DataFrame, dict]:
    work = Path(tempfile.mkdtemp(prefix="tfp-anomaly-scale-", dir=args.tmp))
    try:
        start = time.perf_counter()
        csv = make_file(args.events, args.seed, work / "events.csv")
        made = {"seconds": time.perf_counter() - start, "csv_mib": csv.stat().st_size / 2**20}
        results = {}
        for name in STAGES:
            results[name] = run_stage(name, work, args)
            print(f"{name:8s} {results[name]['seconds']:8.1f} s  peak {results[name]['peak_mib']:7.0f} MiB",
                  flush=True)
        made["cache_mib"] = (work / "events.h5").stat().st_size / 2**20
    finally:
        for path in sorted(work.iterdir()):
            path.unlink()
        work.rmdir()
    rows = [{"stage": name, "events": args.events, "seconds": r["seconds"], "events/s": args.events / r["seconds"],
             "peak MiB": r["peak_mib"], f"< {LIMIT_MIB} MiB": "yes" if r["peak_mib"] < LIMIT_MIB else "**no**"}
            for name, r in results.items()]
    return pd.DataFrame(rows), {**made, **results}


def to_markdown(table: pd.DataFrame, info: dict, args, argv) -> str:
    auc = info["score"]["auc"]
    best = sorted(auc.items(), key=lambda kv: -kv[1])[:4]
    return "\n".join([
        MARK, "## Scale: 2 million events streamed (`benchmarks/scale.py`)", "",
        f"Command: `{command_line('scale.py', argv)}` (also `make bench`)  ",
        f"Machine: {machine()}  ",
        f"File: {args.events:,} events resampled from the embedded background, Dark Machines CSV "
        f"({info['csv_mib']:,.0f} MiB; written in {info['seconds']:.0f} s), cache {info['cache_mib']:,.0f} MiB; "
        f"chunks of {args.chunk_size:,} events; ConvVAE (DarkFlow), batch {args.batch_size}, one epoch, XLA. "
        "Each stage is a fresh process (TensorFlow's own footprint included in train and score); seconds "
        "include its start-up.", "",
        markdown_table(table.astype({"events/s": int, "peak MiB": int}), digits=1), "",
        f"Training loss after the epoch: {info['train']['loss']:.3f}. The {info['score']['scores']} scores were "
        f"written for all {info['score']['events']:,} events; AUC of the embedded signals against the first "
        f"{min(CHECK_EVENTS, info['score']['events']):,} streamed events (a sanity check of the one-epoch model): "
        + ", ".join(f"{name} {value:.3f}" for name, value in best) + ".",
        MARK])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary files (default: $TMPDIR)")
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        result = STAGES[args.stage](args.work, args)
        print(json.dumps({**result, "peak_mib": peak_mib()}))
        return 0
    table, info = measure(args)
    print(table.to_string(index=False))
    if args.markdown:
        write_section(args.markdown, to_markdown(table, info, args, argv), MARK)
    return 0 if (table["peak MiB"] < LIMIT_MIB).all() else 1


if __name__ == "__main__":
    sys.exit(main())
