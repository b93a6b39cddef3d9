"""Search VAE architectures and posterior flows with Keras Tuner, then score the best model.

    python examples/tune_vae.py [--config examples/configs/search_vae.yaml] [--out runs/tune_vae] [--trials 20]

The same as `tfp-anomaly tune CONFIG` followed by `tfp-anomaly score OUT/best` and `tfp-anomaly report`,
from Python. Rerunning resumes the search; --overwrite starts it afresh. For a distributed search use
the command line (`--role chief|worker`, docs/tuning.md).
"""
import argparse
import sys
from pathlib import Path

from tfp_anomaly import config as config_lib
from tfp_anomaly.evaluate import score_run
from tfp_anomaly.report import write_report
from tuning.search import run_search

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=HERE / "configs" / "search_vae.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/tune_vae"))
    parser.add_argument("--trials", type=int, default=None, help="override search.max_trials")
    parser.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    parser.add_argument("--max-events", type=int, default=None, help="use only this many background events")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    overrides = [f"search.max_trials={args.trials}"] if args.trials else []
    overrides += [f"training.epochs={args.epochs}"] if args.epochs else []
    overrides += [f"data.max_events={args.max_events}"] if args.max_events else []
    config = config_lib.load_config(args.config, overrides)
    result = run_search(config, args.out, overwrite=args.overwrite)
    print(result["table"].head(10).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    scored = score_run(result["best_dir"], name=f"best trial {result['trial_id']}", max_signal_events=2000)
    report = write_report([scored], args.out / "report", bootstrap=20, title="Best model of the search")
    print(report["table"][["score", "signal", "AUC", "eff@1e-2"]].head(12).to_string(index=False))
    print(f"search: {args.out / 'search_report.html'}; best model: {args.out / 'report' / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
