"""The main job (``tfp-anomaly demo``, ``make demo``): train, score and compare on the embedded sample.

On the embedded Pythia 8 sample (SM background mixture; W′ → WZ, Z′ → tt̄ and q* signals, never seen
in training) it trains the DarkFlow ConvVAE, the ConvVAE with Planar and IAF posteriors (full flow
ELBO) and ConvSWAEs with Gaussian, uniform and ring priors; scores each with every applicable method
(scores fitted on the training background, evaluated on the held-out test background and on each
signal); and writes the report (HTML, Markdown, CSV, Dark Machines rows) into ``OUT/report``.

Each model trains in its own run directory ``OUT/runs/<name>`` (``OUT/runs-quick/<name>`` with
``--quick``; a complete ``tfp-anomaly train`` run
with its ``config.yaml``): rerunning the demo resumes an interrupted model and reuses finished ones.
``--quick`` trains on fewer events for fewer epochs (a smoke run of the whole chain, not a result).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

from . import config as config_lib

#: the object grid, scaler and split shared by every demo model (as examples/configs/grid_darkflow.yaml)
BASE = {
    "data": {"background": "sample", "signals": "sample", "unit": "GeV"},
    "grid": {"blocks": [["j", 13], ["b", 3], ["m+", 3], ["m-", 3], ["e+", 3], ["e-", 3], ["g", 3]],
             "met_row": True, "features": ["E", "pt", "eta", "phi"]},
    "scaler": {"name": "standard", "log_columns": [0, 1]},
    "split": {"fractions": [0.6, 0.2, 0.2], "seed": 0},
    "training": {"epochs": 15, "batch_size": 256, "learning_rate": 1e-3, "clipnorm": 10.0, "seed": 0,
                 "early_stopping": {"patience": 3}, "verbose": 0},
    "report": {"style": "plain"},
}
CONV = {"latent_dim": 15, "network": {"type": "conv", "hidden": 20}}
#: the VAEs' loss: the negative ELBO with a Gaussian likelihood (learned scale per feature) summed over the
#: real features, and free bits; the SWAEs keep DarkFlow's masked MSE (their SW term is on its own scale)
ELBO = {"reconstruction": "gaussian", "free_bits": 0.5}
SWAE = {"reconstruction": "mse", "lam": 1.0}

#: the models the main job compares: display name → model section
COMPARED_MODELS = {
    "ConvVAE": {"type": "vae", **CONV, **ELBO},
    "ConvVAE + Planar×6": {"type": "vae", **CONV, **ELBO, "flow": "planar*6", "flow_kwargs": {"amortized": True}},
    "ConvVAE + IAF×4": {"type": "vae", **CONV, **ELBO, "flow": "iaf, reverse, iaf, reverse, iaf, reverse, iaf",
                        "flow_kwargs": {"hidden_units": [64, 64]}},
    "ConvSWAE gaussian": {"type": "swae", **CONV, **SWAE, "prior": "gaussian"},
    "ConvSWAE uniform": {"type": "swae", **CONV, **SWAE, "prior": "uniform"},
    "ConvSWAE ring": {"type": "swae", **CONV, **SWAE, "prior": "ring",
                      "prior_kwargs": {"radius": 1.0, "radial_noise": 0.1}},
}

#: what --quick changes: fewer background and signal events, fewer epochs, fewer bootstrap resamples
#: (XLA off: for 3 short epochs its compile time costs more than it saves: 12 s against 27 s a model)
QUICK = {"max_events": 12_000, "max_signal_events": 2_000, "epochs": 3, "bootstrap": 20, "jit_compile": False,
         "runs": "runs-quick"}
FULL = {"max_events": None, "max_signal_events": None, "epochs": 15, "bootstrap": 100, "jit_compile": "auto"}


def comparison_config(model: dict, settings: dict, base: dict = BASE, training: dict | None = None) -> dict:
    """A complete run configuration: ``base`` (data, grid, scaler, split, training) with ``model``, the
    model's own ``training`` options (e.g. its flow-training strategy) and the event counts, epochs
    and XLA choice of ``settings``."""
    config = config_lib.merge(config_lib.DEFAULTS, copy.deepcopy(base))
    config["model"] = copy.deepcopy(model)
    config["training"].update(training or {})
    config["data"]["max_events"] = settings["max_events"]
    config["training"]["epochs"] = settings["epochs"]
    config["training"]["jit_compile"] = settings["jit_compile"]
    config_lib.check(config, "comparison")
    return config


def slug(name: str) -> str:
    """"ConvVAE + Planar×6" → "convvae_planarx6"."""
    words = "".join(c if c.isalnum() else " " for c in name.lower().replace("×", "x")).split()
    return "_".join(words)


def run_comparison(models: dict, out, base: dict = BASE, settings: dict = FULL, published=None,
                   title: str = "tfp-anomaly comparison", log=print, training: dict | None = None) -> dict:
    """Train each of ``models`` ({name: model section}, with ``training[name]`` options if given) on
    ``base``'s background into ``OUT/runs/<name>``, score it on the test background and ``base``'s signals, and write the report
    into ``OUT/report`` (figures in ``base``'s ``report.style``); returns ``write_report``'s result plus the
    scored runs and timings."""
    from .evaluate import score_run
    from .experiment import run
    from .report import write_report

    out = Path(out)
    scored, timings = [], {}
    start = time.perf_counter()
    for k, (name, model) in enumerate(models.items(), 1):
        t0 = time.perf_counter()
        run_dir = out / settings.get("runs", "runs") / slug(name)
        summary = run(comparison_config(model, settings, base, (training or {}).get(name)), run_dir)
        t1 = time.perf_counter()
        result = score_run(run_dir, name=name, max_signal_events=settings["max_signal_events"])
        timings[name] = {"train_s": round(t1 - t0, 1), "score_s": round(time.perf_counter() - t1, 1)}
        best = max(result.methods, key=lambda m: _mean_auc(result, m))
        log(f"[{k}/{len(models)}] {name}: {summary['parameters']:,} parameters, {summary['epochs_done']} epochs, "
            f"trained in {timings[name]['train_s']} s, scored in {timings[name]['score_s']} s; "
            f"best score {best} (mean AUC {_mean_auc(result, best):.3f})")
        scored.append(result)
    t2 = time.perf_counter()
    style = config_lib.merge(config_lib.DEFAULTS, base)["report"]["style"]
    report = write_report(scored, out / "report", published=published, bootstrap=settings["bootstrap"], title=title,
                          style=style)
    timings["report_s"] = round(time.perf_counter() - t2, 1)
    timings["total_s"] = round(time.perf_counter() - start, 1)
    return {**report, "runs": scored, "timings": timings}


def run_demo(out="runs/demo", quick: bool = False, published=None, log=print) -> dict:
    """The main job: :data:`COMPARED_MODELS` on the embedded sample (:data:`QUICK` or :data:`FULL` settings)."""
    title = "tfp-anomaly demo: embedded Pythia 8 sample" + (" (--quick)" if quick else "")
    return run_comparison(COMPARED_MODELS, out, BASE, QUICK if quick else FULL, published, title, log)


def print_result(result: dict, out) -> None:
    """The best score of each model for each signal (AUC ± error, ε_S at each ε_B) and the report path."""
    from .report.tables import summary_text

    print(summary_text(result["table"]))
    print(f"report: {Path(out) / 'report' / 'report.html'} ({result['timings']['total_s']:.0f} s in all)")


def _mean_auc(result, method) -> float:
    from .report.metrics import auc

    return sum(auc(result.background[method], s[method]) for s in result.signals.values()) / len(result.signals)


# --------------------------------------------------------------------------- for the example scripts

def add_comparison_arguments(parser, out: str) -> None:
    """The options every comparison script shares (``examples/compare_*.py``, ``examples/lhco.py``)."""
    parser.add_argument("--out", default=out, help=f"output folder (default {out})")
    parser.add_argument("--quick", action="store_true", help="fewer events and epochs (a smoke run)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 15, 3 with --quick)")
    parser.add_argument("--background", nargs="+", default=None, metavar="FILE",
                        help="background files instead of the embedded sample (Dark Machines CSV, ADC2021, cache)")
    parser.add_argument("--signal", nargs="+", default=None, metavar="FILE",
                        help="signal files (one sample per file, named by the file's stem)")
    parser.add_argument("--published", default=None, help="published results CSV to compare with")


def comparison_inputs(args, base: dict = BASE) -> tuple[dict, dict]:
    """(base configuration, settings) from the shared options."""
    base = copy.deepcopy(base)
    if args.background:
        base["data"].update(background=[str(Path(f).resolve()) for f in args.background], dir=None)
        base["data"]["signals"] = [str(Path(f).resolve()) for f in args.signal or []]  # named by file stem
    elif args.signal:
        raise ValueError("--signal needs --background (the embedded signals go with the embedded background)")
    settings = dict(QUICK if args.quick else FULL)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    return base, settings
