"""The ``tfp-anomaly`` command line.

    tfp-anomaly data formats
    tfp-anomaly data inspect FILE [FILE ...] [--format F] [--unit GeV] [--on-error skip]
    tfp-anomaly data convert IN OUT [--format F] [--unit GeV] [--on-error skip] [--label 0|1]
    tfp-anomaly train CONFIG.yaml [--override key=value ...] [--run-dir DIR] [--overwrite] [--print-config]
    tfp-anomaly generate --process P [P ...] (--events N | --mix N) [--selection S] [--seed S] --out FILE
    tfp-anomaly demo [--data-dir DIR] [--out DIR]

Input errors (missing file, malformed line, unknown name) print one line naming file, line and
field and exit with status 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) is noise for a CLI user
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from . import __version__  # noqa: E402
from .data import formats  # noqa: E402
from .data.errors import DataFormatError  # noqa: E402

# the shared data folder beside a checkout of the repository (../shared/data)
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def _progress(total):
    """A Keras progress bar over the input's bytes (over events when the size is unknown)."""
    from keras.utils import Progbar

    return Progbar(total, unit_name="byte" if total else "event")


def cmd_formats(args) -> int:
    for fmt in formats.FORMATS.values():
        print(f"{fmt.name:14s} {fmt.kind:7s} {fmt.description}")
    return 0


def cmd_inspect(args) -> int:
    from .data.inspect import inspect_paths

    print(inspect_paths(args.files, args.format, chunk_size=args.chunk_size, on_error=args.on_error,
                        unit=args.unit))
    return 0


def cmd_convert(args) -> int:
    from .data.cache import write_cache
    from .data.darkmachines import DarkMachinesReader

    fmt = formats.detect(args.input) if args.format == "auto" else formats.get(args.format)
    if fmt.kind != "events":
        raise ValueError(f"{args.input}: {fmt.name} holds tabular features; nothing to convert")
    if fmt.name == "darkmachines":
        reader = DarkMachinesReader(args.input, unit=args.unit or "MeV", on_error=args.on_error, label=args.label)
        chunks, position = reader.chunks(args.chunk_size), (lambda: reader.bytes_read)
        total = reader.size
    else:
        chunks = formats.open_events(args.input, fmt.name, chunk_size=args.chunk_size)
        if args.unit or args.label is not None:
            chunks = (_adjust(c, args.unit, args.label) for c in chunks)
        position, total = None, None
    bar = _progress(total) if args.progress else None
    seen = [0]

    def on_chunk(chunk):
        seen[0] += len(chunk)
        if bar is not None:
            bar.update(position() if position and total else seen[0])

    start = time.perf_counter()
    summary = write_cache(chunks, args.output, source=str(args.input), progress=on_chunk)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.output}: {summary['events']:,} events, {summary['objects']:,} objects "
          f"({summary['unit']}), {summary['n_skipped']} malformed line(s) skipped, "
          f"{summary['events'] / max(elapsed, 1e-9):,.0f} events/s")
    return 0


def _adjust(chunk, unit, label):
    chunk = chunk.to_unit(unit) if unit else chunk
    return chunk.with_label(label) if label is not None else chunk


def cmd_train(args) -> int:
    from . import config as config_lib

    config = config_lib.load_config(args.config, args.override)
    if args.print_config:
        print(config_lib.dump(config), end="")
        return 0
    from .experiment import run

    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / Path(args.config).stem
    summary = run(config, run_dir, overwrite=args.overwrite)
    final = ", ".join(f"{k} {v:.4g}" for k, v in summary["final"].items())
    print(f"{summary['model']} {tuple(summary['input_shape'])}, {summary['parameters']:,} parameters, "
          f"{summary['epochs_done']} epochs ({summary['epochs_this_call']} now, {summary['train_seconds']} s); "
          f"{final or 'already complete'}\nrun directory: {run_dir}")
    return 0


def cmd_generate(args) -> int:
    from .data import write_darkmachines
    from .data.generate.mixture import generate_many, mixture_counts

    if (args.events is None) == (args.mix is None):
        raise ValueError("give either --events N (per process) or --mix N (a total shared by cross section)")
    start = time.perf_counter()
    counts = ({p: args.events for p in args.process} if args.events is not None else
              mixture_counts(args.process, args.mix, args.seed, args.selection, jobs=args.jobs))
    if args.mix is not None:
        print("mixture by accepted cross section: " + ", ".join(f"{p} {n:,}" for p, n in counts.items()))
    events, _ = generate_many(counts, args.seed, args.selection, args.jobs, progress=args.progress)
    write_darkmachines(events, args.out)
    print(f"wrote {args.out}: {len(events):,} events in {time.perf_counter() - start:,.0f} s")
    return 0


def cmd_demo(args) -> int:
    """Until the model demo lands, show the data layer on the real fixtures."""
    data = Path(args.data_dir)
    fixtures = [data / "darkmachines" / "monojet_Zp2000.0_DM_50.0_chan3.csv",
                data / "lhco_raw" / "events_anomalydetection_tiny.h5",
                *sorted((data / "lhco_rnd_scalars").glob("scalars_*01.h5"))]
    present = [f for f in fixtures if f.exists()]
    print("tfp-anomaly demo: the model demo (train, score, report) arrives with the models and scoring\n"
          "issues; until then this runs the data inspection on the real fixture files.\n")
    if not present:
        print(f"no fixture files under {data}; pass --data-dir DIR with the project's shared data", file=sys.stderr)
        return 2
    from .data.inspect import inspect_paths

    print(inspect_paths(present))
    csv = present[0]
    if csv.suffix == ".csv":
        out = Path(args.out) / (csv.stem + ".h5")
        ns = argparse.Namespace(input=csv, output=out, format="darkmachines", unit=None, on_error="raise",
                                label=None, chunk_size=100_000, progress=False)
        print()
        cmd_convert(ns)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfp-anomaly", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"tfp-anomaly {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="inspect and convert event files").add_subparsers(
        dest="data_command", required=True)
    data.add_parser("formats", help="list the readable formats").set_defaults(func=cmd_formats)

    def reading_options(p):
        p.add_argument("--format", default="auto", help=f"one of {', '.join(formats.available())} (default: detect)")
        p.add_argument("--unit", choices=["MeV", "GeV"], default=None, help="convert energies to this unit")
        p.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                       help="malformed CSV lines: stop with an error (default) or skip and count them")
        p.add_argument("--chunk-size", type=int, default=100_000, help="events per chunk (bounds memory)")

    inspect = data.add_parser("inspect", help="events per process, object multiplicities, ranges, problems")
    inspect.add_argument("files", nargs="+", type=Path)
    reading_options(inspect)
    inspect.set_defaults(func=cmd_inspect)

    convert = data.add_parser("convert", help="convert to the columnar HDF5 cache (atomic write)")
    convert.add_argument("input", type=Path)
    convert.add_argument("output", type=Path)
    reading_options(convert)
    convert.add_argument("--label", type=int, choices=[0, 1], default=None, help="truth label for all events")
    convert.add_argument("--no-progress", dest="progress", action="store_false")
    convert.set_defaults(func=cmd_convert)

    train = commands.add_parser("train", help="train a model from a YAML configuration into a run directory")
    train.add_argument("config", type=Path)
    train.add_argument("--override", "-o", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                       help="set a configuration value, e.g. training.epochs=5 model.flow=planar*6")
    train.add_argument("--run-dir", default=None, help="default: runs/<config name>")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a run directory that holds a run of a different configuration")
    train.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    train.set_defaults(func=cmd_train)

    generate = commands.add_parser("generate", help="generate events with Pythia 8 and a fast detector simulation "
                                   "(needs the 'generate' extra)")
    generate.add_argument("--process", nargs="+", required=True, help="process cards (tfp_anomaly.data.generate.PROCESSES)")
    generate.add_argument("--events", type=int, help="events passing the selection, per process")
    generate.add_argument("--mix", type=int, help="total events shared between the processes by accepted cross section")
    generate.add_argument("--selection", default="ht400", help="event selection (default: ht400)")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--jobs", type=int, default=None, help="parallel workers (default: all cores); a large request is split into this many random "
                          "streams, so fix it to reproduce a file")
    generate.add_argument("--out", type=Path, required=True, help="Dark Machines CSV (.csv or .csv.gz), in MeV")
    generate.add_argument("--no-progress", dest="progress", action="store_false")
    generate.set_defaults(func=cmd_generate)

    demo = commands.add_parser("demo", help="the main job on the default data")
    demo.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataFormatError, FileNotFoundError, KeyError, ValueError, ImportError) as err:
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"tfp-anomaly: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
