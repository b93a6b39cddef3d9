"""The main job's wall time and result: ``tfp-anomaly demo`` and ``tfp-anomaly demo --quick`` from scratch.

Each runs as a fresh process (the command a user types, the interpreter's start-up and imports
included) into a new temporary folder, so nothing is reused; then the best scoring method of every
model, by AUC averaged over the three embedded signals, is read from the report's ``comparison.csv``.
Targets (the main-job issue): the full run under 15 minutes, ``--quick`` under 3, on 2 CPU cores.

    python benchmarks/main_job.py [--runs full quick] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import command_line, machine, markdown_table, write_section  # noqa: E402

MARK = "<!-- main_job -->"
#: run name -> (extra demo arguments, target in minutes)
RUNS = {"full": ([], 15), "quick": (["--quick"], 3)}


def run_demo(name: str, out: Path) -> float:
    """Wall seconds of ``tfp-anomaly demo`` into ``out`` (raises with its output if it fails)."""
    extra, _ = RUNS[name]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tfp_anomaly", "demo", "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"demo {name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def best_scores(out: Path) -> pd.DataFrame:
    """Per model: the scoring method with the best AUC averaged over the signals, and that mean."""
    table = pd.read_csv(out / "report" / "comparison.csv")
    means = table.groupby(["model", "score"], sort=False)[["AUC", "eff@1e-2"]].mean().reset_index()
    best = means.loc[means.groupby("model", sort=False)["AUC"].idxmax()]
    best = best.sort_values("AUC", ascending=False)
    return best.rename(columns={"AUC": "mean AUC", "eff@1e-2": "mean εS(1e-2)"}).reset_index(drop=True)


def measure(args) -> tuple[pd.DataFrame, dict]:
    rows, results = [], {}
    for name in args.runs:
        with tempfile.TemporaryDirectory(prefix=f"tfp-anomaly-demo-{name}-") as tmp:
            seconds = run_demo(name, Path(tmp))
            results[name] = best_scores(Path(tmp))
        target = RUNS[name][1]
        rows.append({"run": f"demo{' --quick' if name == 'quick' else ''}", "wall time": _minutes(seconds),
                     "target": f"< {target} min", "of the target": f"{seconds / 60 / target:.2f}×"})
        print(f"{name}: {_minutes(seconds)}\n{results[name].to_string(index=False)}", flush=True)
    return pd.DataFrame(rows), results


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def to_markdown(table: pd.DataFrame, results: dict, argv) -> str:
    lines = [MARK, "## The main job (`make demo`, `benchmarks/main_job.py`)", "",
             f"Command: `{command_line('main_job.py', argv)}` (also `make bench`)  ",
             f"Machine: {machine()}  ",
             "Each run from scratch in a fresh process and folder: six models (ConvVAE; ConvVAE + Planar×6, + IAF×4; "
             "ConvSWAE gaussian, uniform, ring), each scored with every applicable method on the three embedded "
             "signals, then the report. Full: 30,000 / 10,000 / 5,000 events (train / test background / each "
             "signal), up to 15 epochs with early stopping; quick: 7,200 / 2,400 / 2,000, 3 epochs, XLA off.", "",
             markdown_table(table), ""]
    for name, best in results.items():
        lines += [f"Best score per model, {name} run (AUC and εS at εB = 1e-2 averaged over the signals):", "",
                  markdown_table(best), ""]
    return "\n".join(lines + [MARK])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    table, results = measure(args)
    print(table.to_string(index=False))
    if args.markdown:
        write_section(args.markdown, to_markdown(table, results, argv), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
