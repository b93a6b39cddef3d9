"""Keras Tuner searches end to end: the SWAE search space under an unlabelled and a labelled objective.

``tfp-anomaly tune examples/configs/search_swae.yaml`` with a random tuner, ``--trials`` trials of
``--epochs`` epochs on ``--events`` embedded background events, once with the objective ``val_loss``
(background only) and once with ``val_auc`` (the embedded signals as labelled validation signal);
then ``tfp-anomaly score`` of each search's best model on the held-out test background and the three
signals, with the score ``rank:mse+mahalanobis``. Each command runs as a user would type it, in a
fresh process, into a temporary folder; the table gives the search's wall time, its best trial's
hyper-parameters and the test figures.

    python benchmarks/searches.py [--trials 6 --epochs 5 --events 20000] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import command_line, machine, markdown_table, write_section  # noqa: E402
from tfp_anomaly.report import ScoredRun, figures_of_merit  # noqa: E402

MARK = "<!-- searches -->"
SPACE = "examples/configs/search_swae.yaml"
SCORE = "rank:mse+mahalanobis"
#: objective -> extra overrides
OBJECTIVES = {"val_loss": [], "val_auc": ["search.objective=val_auc", "search.validation_signal=sample"]}


def tfp_anomaly(*args) -> float:
    """Run one ``tfp-anomaly`` command in a fresh process; its wall seconds (raises with its output)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tfp_anomaly", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"tfp-anomaly {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def best_trial(out: Path) -> str:
    """The best trial's hyper-parameters, ``name=value`` (floats to two significant digits)."""
    trial = json.loads((out / "best" / "summary.json").read_text())["trial_id"]
    row = pd.read_csv(out / "trials.csv", dtype={"trial_id": str}).set_index("trial_id").loc[str(trial)]
    values = row.drop(labels=[c for c in ("status", "objective") if c in row.index]).dropna()
    return ", ".join(f"{k.split('.')[-1]}={v:.2g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                     for k, v in values.items())


def figures_on_test(best: Path) -> dict:
    run = ScoredRun.load(best / "scores.h5")
    per_signal = [figures_of_merit(run.background[SCORE], scores[SCORE], bootstrap=0, warn=False)
                  for scores in run.signals.values()]
    return {"test AUC": float(np.mean([f["AUC"] for f in per_signal])),
            "test εS(1e-2)": float(np.mean([f["eff@1e-2"] for f in per_signal]))}


def measure(args) -> pd.DataFrame:
    rows = []
    base = ["-o", "search.tuner=random", f"search.max_trials={args.trials}", f"training.epochs={args.epochs}",
            f"data.max_events={args.events}"]
    for objective, extra in OBJECTIVES.items():
        with tempfile.TemporaryDirectory(prefix=f"tfp-anomaly-search-{objective}-") as tmp:
            out = Path(tmp)
            seconds = tfp_anomaly("tune", SPACE, *base, *extra, "--out", str(out))
            tfp_anomaly("score", str(out / "best"), "--methods", SCORE)
            rows.append({"objective": objective, "wall time s": round(seconds), "best trial": best_trial(out),
                         **figures_on_test(out / "best")})
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, args, argv) -> str:
    return "\n".join([
        MARK, "## Searches (`tfp-anomaly tune`, `benchmarks/searches.py`)", "",
        f"Command: `{command_line('searches.py', argv)}` (also `make bench`)  ",
        f"Machine: {machine()}  ",
        f"`tfp-anomaly tune {SPACE} -o search.tuner=random search.max_trials={args.trials} "
        f"training.epochs={args.epochs} data.max_events={args.events}` (60 % train, 20 % validation, 20 % test), "
        "plus `search.objective=val_auc search.validation_signal=sample` for the labelled objective; then "
        f"`tfp-anomaly score OUT/best --methods {SCORE}`. Test figures: means over the three embedded signals "
        "against the held-out test background.", "",
        markdown_table(table), "",
        "The `val_auc` search selects with the same three signals it is then tested on (the test background "
        "is held out, the signal events are not): model selection with labels, not a blind result.",
        MARK])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    table = measure(args)
    print(table.to_string(index=False))
    if args.markdown:
        write_section(args.markdown, to_markdown(table, args, argv), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
