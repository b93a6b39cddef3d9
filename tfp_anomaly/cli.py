"""The ``tfp-anomaly`` command line.

    tfp-anomaly data formats
    tfp-anomaly data inspect FILE [FILE ...] [--format F] [--unit GeV] [--on-error skip]
                             [--tree T] [--btag-bit B] [--root-mapping MAPPING.yaml]
    tfp-anomaly data convert IN OUT [--format F] [--unit GeV] [--on-error skip] [--label 0|1]
                             [--tree T] [--btag-bit B] [--root-mapping MAPPING.yaml]
    tfp-anomaly train CONFIG.yaml [--override key=value ...] [--run-dir DIR] [--overwrite] [--print-config]
                      [--worker-index I --workers HOST:PORT,HOST:PORT,...]
    tfp-anomaly generate --process P [P ...] (--events N | --mix N) [--selection S] [--seed S] --out FILE
    tfp-anomaly tune SEARCH.yaml [--out DIR] [--overwrite] [--role chief|worker --oracle HOST:PORT]
    tfp-anomaly score RUN_DIR [RUN_DIR ...] [--methods M ...] [--background FILE ...] [--signal FILE ...]
    tfp-anomaly report RUN_DIR [RUN_DIR ...] --out DIR [--published CSV] [--channel C] [--style plain|atlas|cms]
    tfp-anomaly demo [--out DIR] [--quick] [--published CSV]
    tfp-anomaly export-hls RUN_DIR [--score mahalanobis] [--precision P] [--scan P ...] [--out DIR]

Input errors (missing file, malformed line, unknown name, a configuration value of the wrong type,
a training loss that turned non-finite or diverged) print one line naming file, line and field (or
the configuration key) and exit with status 2, checked before slow work starts; Ctrl-C prints one
line saying what can be resumed and exits with status 130; the package's warnings print one line
each. ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) is noise for a CLI user
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from . import __version__  # noqa: E402
from .data import formats  # noqa: E402
from .data.errors import DataFormatError  # noqa: E402

# the shared data folder beside a checkout of the repository (../shared/data)
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def _output_dir(path, option: str = "--out") -> Path:
    """``path`` as a Path, refused (before any work) when it is an existing file or lies under one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: exists and is not a directory (a directory is written there)")
    _check_parents(path, option)
    return path


def _output_file(path, option: str = "--out") -> Path:
    """``path`` as a Path, refused (before any work) when it is an existing directory or lies under a file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a directory; give the name of the file to write")
    _check_parents(path, option)
    return path


def _check_parents(path: Path, option: str) -> None:
    for parent in path.absolute().parents:  # the nearest existing one must be a directory
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{option} {path}: {parent} is a file, not a directory")
            return


def _input_file(path, option: str) -> Path:
    """``path`` as a Path, refused when it does not exist or is a directory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{option}: file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a directory, not a file")
    return path


def _progress(total):
    """A Keras progress bar over the input's bytes (over events when the size is unknown)."""
    from keras.utils import Progbar

    return Progbar(total, unit_name="byte" if total else "event")


def cmd_formats(args) -> int:
    for fmt in formats.FORMATS.values():
        print(f"{fmt.name:14s} {fmt.kind:7s} {fmt.description}")
    return 0


def _reader_settings(args) -> dict:
    """The readers' options of the command line as a configuration's ``data`` section holds them:
    ``{"root": ...}`` from ``--root-mapping`` (a YAML mapping with the keys of ``data.root``), ``--tree``
    and ``--btag-bit``, checked as ``data.root`` is; empty when none is given."""
    from . import config as config_lib
    from .data.root import check_options

    if args.root_mapping is None and args.tree is None and args.btag_bit is None:
        return {}
    options, where = {}, "--tree/--btag-bit"
    if args.root_mapping is not None:
        path = _input_file(args.root_mapping, "--root-mapping")
        where = f"--root-mapping {path}"
        options = config_lib.parse_yaml(config_lib.read_text(path, "ROOT branch mapping"), path)
        if not isinstance(options, dict):
            raise config_lib.ConfigError(f"{where}: expected a mapping with the keys of data.root, got "
                                         f"{type(options).__name__}")
    options = {**options, **{k: v for k, v in (("tree", args.tree), ("btag_bit", args.btag_bit)) if v is not None}}
    problem = config_lib.ROOT_OPTIONS.error(options, "mapping")
    if problem:
        raise config_lib.ConfigError(f"{where}: {problem}")
    check_options(options, args.format, where)
    return {"root": options}


def cmd_inspect(args) -> int:
    from .data.inspect import inspect_paths

    print(inspect_paths(args.files, args.format, chunk_size=args.chunk_size, on_error=args.on_error,
                        unit=args.unit, reader_settings=_reader_settings(args)))
    return 0


def cmd_convert(args) -> int:
    from .data.convert import convert

    bar, seen = [None], [0]

    def on_chunk(chunk, position, total):
        seen[0] += len(chunk)
        if args.progress:
            bar[0] = bar[0] or _progress(total)
            bar[0].update(position if position is not None and total else seen[0])

    settings = _reader_settings(args)
    start = time.perf_counter()
    summary = convert(args.input, args.output, format=args.format, unit=args.unit, on_error=args.on_error,
                      label=args.label, chunk_size=args.chunk_size, progress=on_chunk, reader_settings=settings)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.output}: {summary['events']:,} events, {summary['objects']:,} objects "
          f"({summary['unit']}), {summary['n_skipped']} malformed line(s) skipped, "
          f"{summary['events'] / max(elapsed, 1e-9):,.0f} events/s")
    if summary["removed"]:
        print(f"removed {len(summary['removed'])} temporary file(s) left by interrupted conversions to {args.output}: "
              f"{', '.join(p.name for p in summary['removed'])}")
    if summary["kept"]:
        print(f"left {len(summary['kept'])} temporary file(s) of conversions to {args.output} that may still run: "
              f"{', '.join(p.name for p in summary['kept'])}")
    return 0


def cmd_train(args) -> int:
    from . import config as config_lib
    from . import distribute

    overrides = list(args.override)
    if args.worker_index is not None or args.workers is not None:
        if args.worker_index is None or args.workers is None:
            given, missing = ("--workers", "--worker-index") if args.worker_index is None else \
                ("--worker-index", "--workers")
            raise ValueError(f"{given} needs {missing}: pass both, --worker-index I --workers HOST:PORT,HOST:PORT,... "
                             "(worker I of the list; worker 0 is the chief)")
        distribute.write_tf_config(args.worker_index, args.workers)  # before TensorFlow reads it
        overrides.append("training.strategy=multi_worker")
    config = config_lib.load_config(args.config, overrides)
    if args.print_config:
        print(config_lib.dump(config), end="")
        return 0
    # the strategy before any TensorFlow operation: a MultiWorkerMirroredStrategy can only be created first
    distribute.strategy(config["training"]["strategy"])
    from .experiment import run

    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / Path(args.config).stem
    summary = run(config, run_dir, overwrite=args.overwrite)
    final = ", ".join(f"{k} {v:.4g}" for k, v in summary["final"].items())
    print(f"{summary['model']} {tuple(summary['input_shape'])}, {summary['parameters']:,} parameters, "
          f"{summary['epochs_done']} epochs ({summary['epochs_this_call']} now, {summary['train_seconds']} s); "
          f"{final or 'already complete'}\n"
          + (f"worker {args.worker_index}: the chief (worker 0) writes {run_dir}" if summary.get("worker")
             else f"run directory: {run_dir}"))
    return 0


def cmd_generate(args) -> int:
    from .data import write_darkmachines
    from .data.generate.mixture import generate_many, mixture_counts

    if (args.events is None) == (args.mix is None):
        raise ValueError("give either --events N (per process) or --mix N (a total shared by cross section)")
    _output_file(args.out)
    start = time.perf_counter()
    counts = ({p: args.events for p in args.process} if args.events is not None else
              mixture_counts(args.process, args.mix, args.seed, args.selection, jobs=args.jobs))
    if args.mix is not None:
        print("mixture by accepted cross section: " + ", ".join(f"{p} {n:,}" for p, n in counts.items()))
    events, _ = generate_many(counts, args.seed, args.selection, args.jobs, progress=args.progress)
    write_darkmachines(events, args.out)
    print(f"wrote {args.out}: {len(events):,} events in {time.perf_counter() - start:,.0f} s")
    return 0


def cmd_tune(args) -> int:
    from . import config as config_lib

    try:
        from tuning.search import run_search, set_role
    except ImportError as err:
        raise ImportError(f"the tuning package is not importable ({err}); install tfp-anomaly from its repository") from None
    config = config_lib.load_config(args.config, args.override)
    set_role(args.role, args.oracle, args.tuner_id)
    out = _output_dir(args.out if args.out else Path("runs") / f"search_{Path(args.config).stem}")
    result = run_search(config, out, overwrite=args.overwrite, verbose=args.verbose)
    if result is None:
        print(f"worker {args.tuner_id or ''} done; the chief writes the results into {out}")
        return 0
    print(result["table"].head(10).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"best trial {result['trial_id']}: {result['objective_name']} {result['objective']:.4g} "
          f"({result['completed']} of {result['trials']} trials completed)\n"
          f"best model: {result['best_dir']} (tfp-anomaly score {result['best_dir']}); "
          f"trials: {out / 'trials.csv'}; report: {out / 'search_report.html'}")
    return 0


def cmd_score(args) -> int:
    from .evaluate import check_background_files, check_run, parse_shard, score_run
    from .rundir import RunDirectory

    shard = None if args.shard is None else parse_shard(args.shard)
    configs = [check_run(run_dir) for run_dir in args.run_dirs]  # a damaged run fails before any slow work
    if args.background:
        for run_dir, config in zip(args.run_dirs, configs):
            check_background_files(run_dir, args.background, config)
    signals = None
    if args.signal:
        from .inputs import signal_part_map

        for path in args.signal:
            _input_file(path, "--signal")
    for run_dir, config in zip(args.run_dirs, configs):
        if args.signal:  # the run's data options, the files named by their stems
            config = {**config, "data": {**config["data"], "dir": None,
                                         "signals": [str(Path(f).absolute()) for f in args.signal]}}
            signals = signal_part_map(config, args.max_signal_events)
        result = score_run(run_dir, methods=args.methods if args.methods else "all", signals=signals,
                           batch_size=args.batch_size, max_signal_events=args.max_signal_events,
                           progress=args.progress, background=args.background, shard=shard)
        origin = "test" if args.background is None else "independent"
        target = RunDirectory(run_dir).scores_file if shard is None else RunDirectory(run_dir).shard_file(*shard)
        print(f"{run_dir}: {len(result.methods)} scores ({', '.join(result.methods)}) of "
              f"{len(next(iter(result.background.values()))):,} {origin} background events and "
              f"{', '.join(f'{n} ({len(next(iter(s.values()))):,})' for n, s in result.signals.items())}"
              f"{'' if shard is None else f' (shard {shard[0]} of {shard[1]})'} -> {target}")
    return 0


def cmd_export_hls(args) -> int:
    import pandas as pd

    from .trigger import SCAN, export_run

    from .evaluate import check_run

    check_run(args.run_dir)
    if args.out:
        _output_dir(args.out)
    scan = SCAN if args.scan is None else args.scan
    result = export_run(args.run_dir, args.score, args.precision, scan, args.out, args.max_events, args.reuse_factor)
    out = Path(args.out) if args.out else Path(args.run_dir) / f"hls_{args.score}"
    columns = ["precision", "auc_keras", "auc_csim", "auc_difference", "eff_keras", "eff_csim",
               "median_relative_deviation", "decisions_differing"]
    print(f"{args.run_dir}: encoder + {args.score}, {result['parameters']:,} parameters, "
          f"{result['multiplications']:,} multiplications per event; events {result['events']}")
    print(pd.DataFrame(result["rows"])[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"HLS project ({args.precision}) -> {out / 'hls'}; table -> {out / 'agreement.csv'}")
    return 0


def _runs_style(run_dirs) -> str:
    """The ``report.style`` the runs' configurations name, when they agree; ``plain`` otherwise (said). A
    run whose configuration cannot be read names none (said on stderr; its scores may still load)."""
    from .config import ConfigError
    from .evaluate import read_run_config

    styles = set()
    for run_dir in run_dirs:
        try:
            styles.add(str((read_run_config(run_dir).get("report") or {}).get("style", "plain")))
        except FileNotFoundError:  # not a run directory: loading its scores says so, in one line
            continue
        except (OSError, ValueError, ConfigError) as error:
            print(f"{run_dir}: its configuration names no report style ({' '.join(str(error).split())[:200]}); "
                  "drawn as the others", file=sys.stderr)
    if len(styles) > 1:
        print(f"the runs name different report.style values ({', '.join(sorted(styles))}): plain; "
              "choose one with --style", file=sys.stderr)
    return styles.pop() if len(styles) == 1 else "plain"


def cmd_report(args) -> int:
    from .report import write_report
    from .report.tables import summary_text
    from .rundir import RunDirectory

    from .report.styles import lookup

    _output_dir(args.out)
    if args.published:
        _input_file(args.published, "--published")
    style = args.style or _runs_style(args.run_dirs)
    lookup(style, "--style")  # before the runs are read
    runs = [RunDirectory(d).load_scores() for d in args.run_dirs]
    result = write_report(runs, args.out, published=args.published, channel=args.channel,
                          bootstrap=args.bootstrap, style=style)
    print(summary_text(result["table"]))
    print(f"report: {Path(args.out) / 'report.html'} (and report.md, comparison.csv, darkmachines.csv)")
    return 0


def cmd_demo(args) -> int:
    """Train, score and compare six models on the embedded sample; write the report."""
    import warnings

    from .demo import print_result, run_demo
    from .report.metrics import LowStatisticsWarning

    _output_dir(args.out)
    if args.published:
        _input_file(args.published, "--published")
    published = args.published or _default_anchor(Path(args.data_dir))
    print(f"tfp-anomaly demo{' --quick' if args.quick else ''}: 6 models on the embedded Pythia 8 sample -> {args.out}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowStatisticsWarning)  # flagged in the report itself
        result = run_demo(args.out, quick=args.quick, published=published)
    print()
    print_result(result, args.out)
    return 0


def _default_anchor(data_dir: Path):
    path = data_dir / "anchors" / "darkmachines_challenge_ConvVAE_and_Flows.csv"
    return path if path.exists() else None


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
        p.add_argument("--tree", default=None, help="ROOT files: the tree to read (Delphes: default 'Delphes', "
                       "else the first tree with a Jet.PT branch)")
        p.add_argument("--btag-bit", type=int, default=None, metavar="B",
                       help="ROOT files: the bit of the b-tag branch (Delphes Jet.BTag) that makes a jet a b-jet "
                            "(default 0)")
        p.add_argument("--root-mapping", type=Path, default=None, metavar="MAPPING.yaml",
                       help="ROOT ntuples (--format root-ntuple): the branches of each object type, MET, weight and "
                            "event number, with the keys of data.root (docs/data.md)")

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
    train.add_argument("--worker-index", default=None, metavar="I",
                       help="multi-worker training: this process is worker I of --workers (0: the chief, which "
                            "writes the run directory); sets TF_CONFIG and training.strategy=multi_worker")
    train.add_argument("--workers", default=None, metavar="HOST:PORT,...",
                       help="multi-worker training: every worker's address, the same list for all (docs/distributed.md)")
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

    tune = commands.add_parser("tune", help="Keras Tuner search over a YAML search space (one machine or chief/workers)")
    tune.add_argument("config", type=Path)
    tune.add_argument("--override", "-o", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    tune.add_argument("--out", default=None, help="search directory (default runs/search_<config name>); a rerun resumes it")
    tune.add_argument("--overwrite", action="store_true", help="start the search afresh, deleting its trials")
    tune.add_argument("--role", choices=["chief", "worker"], default=None, help="distributed search: this process's role")
    tune.add_argument("--oracle", default=None, metavar="HOST:PORT", help="the chief's address (with --role)")
    tune.add_argument("--tuner-id", default=None, help="a worker's unique name (default worker-<pid>)")
    tune.add_argument("--verbose", type=int, default=0, help="Keras progress output per trial (0, 1, 2)")
    tune.set_defaults(func=cmd_tune)

    score = commands.add_parser("score", help="score trained runs: every applicable method, unseen background and signals")
    score.add_argument("run_dirs", nargs="+", help="run directories of tfp-anomaly train")
    score.add_argument("--methods", nargs="+", default=None,
                       help="scoring methods (default: all that apply), e.g. mse mahalanobis mse+mahalanobis")
    score.add_argument("--background", nargs="+", default=None, metavar="FILE",
                       help="an independent background to score instead of the run's test split "
                            "(read with the run's data options; the scores are still fitted on its training part)")
    score.add_argument("--signal", nargs="+", default=None, metavar="FILE",
                       help="signal files (default: the configuration's data.signals)")
    score.add_argument("--max-signal-events", type=int, default=None)
    score.add_argument("--batch-size", type=int, default=4096)
    score.add_argument("--shard", default=None, metavar="I/N",
                       help="score only shard I of N (counted from 0) into RUN/scores.shard-I-of-N.h5; "
                            "`tfp-anomaly report` merges the shards")
    score.add_argument("--no-progress", dest="progress", action="store_false")
    score.set_defaults(func=cmd_score)

    report = commands.add_parser("report", help="compare scored runs: tables, plots, HTML/Markdown/CSV")
    report.add_argument("run_dirs", nargs="+", help="run directories holding scores.h5 (or every shard of "
                        "score --shard, merged)")
    report.add_argument("--out", required=True, help="report directory")
    report.add_argument("--published", default=None, help="published results CSV (Signal,Model,Chan,AUC,1e-2,1e-3,1e-4)")
    report.add_argument("--channel", default="sample", help="the Chan value of the Dark Machines rows")
    report.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples for the uncertainties")
    report.add_argument("--style", default=None, help="look of the figures: plain, atlas or cms (the mplhep "
                        "styles); default: the report.style the runs' configurations name (plain)")
    report.set_defaults(func=cmd_report)

    demo = commands.add_parser("demo", help="the main job: train, score and compare six models on the embedded sample")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--quick", action="store_true", help="fewer events and epochs: the whole chain in minutes")
    demo.add_argument("--published", default=None, help="published results CSV to compare with "
                      "(default: the Dark Machines anchor table in --data-dir when present)")
    demo.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="the shared data folder (for the anchor table)")
    demo.set_defaults(func=cmd_demo)

    export = commands.add_parser("export-hls", help="encoder + encoder-only score as an hls4ml HLS project, "
                                 "checked against Keras in the C simulation (extra: fpga)")
    export.add_argument("run_dir", help="a trained run directory (tfp-anomaly train); its dense or conv encoder")
    export.add_argument("--score", default="mahalanobis", help="encoder-only score to export: mahalanobis, kl or rz (VAEs)")
    export.add_argument("--precision", default="ap_fixed<18,8,AP_RND,AP_SAT>",
                        help="fixed-point type of the project written (an hls4ml precision string)")
    export.add_argument("--scan", nargs="*", default=None, metavar="P",
                        help="precisions compared with Keras besides --precision (default: a scan from 12 to 32 bits; "
                             "give none for no scan)")
    export.add_argument("--out", default=None, help="output folder (default RUN_DIR/hls_SCORE)")
    export.add_argument("--max-events", type=int, default=None, help="events per sample compared (default all)")
    export.add_argument("--reuse-factor", type=int, default=1, help="hls4ml reuse factor (1: fully parallel)")
    export.set_defaults(func=cmd_export_hls)
    return parser


#: the errors a command-line user gets as one line and exit status 2 (``--debug``: the traceback):
#: bad input of any kind (a file, a configuration value, a name), and a training loss that became
#: non-finite or diverged (:class:`tfp_anomaly.models.training.NonFiniteLossError`, a FloatingPointError)
INPUT_ERRORS = (DataFormatError, OSError, KeyError, ValueError, ImportError, FloatingPointError)


def one_line(text: str) -> str:
    """``text`` on one line: its lines joined by "; " (a YAML or NumPy message spans several)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def error_message(err: BaseException) -> str:
    """The one-line message of an input error: a KeyError's text unquoted, an OSError as "file: reason"."""
    if isinstance(err, KeyError) and err.args:
        message = str(err.args[0])
    elif isinstance(err, OSError) and err.filename is not None and err.strerror:
        message = f"{err.filename}: {err.strerror}"
    else:
        message = str(err)
    return one_line(message) or type(err).__name__


def _after_interrupt(args) -> str:
    """What an interrupted command left to resume, in words."""
    func = getattr(args, "func", None)
    if func is cmd_train and not args.print_config:
        run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / Path(args.config).stem
        return f"; the same command continues {run_dir} from its last finished epoch"
    if func is cmd_tune:
        out = Path(args.out) if args.out else Path("runs") / f"search_{Path(args.config).stem}"
        return f"; the same command resumes the search in {out}"
    if func is cmd_demo:
        return f"; the same command reuses the runs already finished in {args.out}"
    return "; files are written atomically, so no half-written file was left"


def _from_this_package(category, filename) -> bool:
    package = str(Path(__file__).resolve().parent)
    return getattr(category, "__module__", "").startswith("tfp_anomaly") or \
        str(Path(filename).resolve()).startswith(package + os.sep)


@contextlib.contextmanager
def one_line_warnings():
    """Within the block, warnings of this package print as one line on stderr, ``tfp-anomaly:
    warning: <message>``; other warnings as Python shows them."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if _from_this_package(category, filename):
            print(f"tfp-anomaly: warning: {one_line(message)}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with one_line_warnings():
        try:
            return args.func(args)
        except KeyboardInterrupt:
            if args.debug:
                raise
            print(f"tfp-anomaly: interrupted{_after_interrupt(args)}", file=sys.stderr)
            return 130
        except INPUT_ERRORS as err:
            if args.debug:
                raise
            print(f"tfp-anomaly: error: {error_message(err)}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
