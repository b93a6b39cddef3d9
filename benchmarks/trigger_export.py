"""Does the FPGA C simulation score events as Keras does? Encoder + score through hls4ml, over a precision scan.

Trains (or reuses) SWAEs (uniform prior; dense and DarkFlow conv encoders) and a dense VAE on the embedded
sample, then exports each encoder-only score (SWAE: ``mahalanobis``; VAE: ``mahalanobis``, ``kl``, ``rz``) with
:func:`tfp_anomaly.trigger.export_run` and prints, per fixed-point precision, the AUC and ε_S at
ε_B = 1e-3 from Keras and from the C simulation on the same events (held-out test background and the
three signals), the fraction of trigger decisions that differ, and the parameters and multiplications
per event. Needs the ``fpga`` extra (hls4ml) and a C++ compiler.

    python benchmarks/trigger_export.py [--events 20000] [--epochs 10] [--out runs/trigger_export]
                                        [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import command_line, machine, markdown_table, write_section  # noqa: E402
from tfp_anomaly import config as config_lib  # noqa: E402
from tfp_anomaly.experiment import run  # noqa: E402
from tfp_anomaly.trigger import SCAN, export_run  # noqa: E402

MARK = "<!-- trigger_export -->"
NETWORK = {"type": "dense", "hidden_units": [64, 32]}
#: name → (configuration, network (None: the configuration's, the DarkFlow conv), scores, precisions)
MODELS = {
    "SWAE uniform, dense": ("swae_uniform.yaml", NETWORK, ["mahalanobis"], SCAN),
    "VAE, dense": ("convvae.yaml", NETWORK, ["mahalanobis", "kl", "rz"], SCAN),
    # the conv encoder's C simulation takes about a minute to compile: the wider types only
    "SWAE uniform, conv": ("swae_uniform.yaml", None, ["mahalanobis"], SCAN[2:]),
}


def train_model(config_file: str, network, out: Path, events: int, epochs: int) -> Path:
    overrides = [f"data.max_events={events}", f"training.epochs={epochs}", "training.verbose=0",
                 "model.latent_dim=8", "training.early_stopping=null"]
    overrides += [f"model.network={network}"] if network else []
    config = config_lib.load_config(ROOT / "examples" / "configs" / config_file, overrides)
    run(config, out)  # reuses a finished run of the same configuration
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "trigger_export")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for name, (config_file, network, scores, scan) in MODELS.items():
        folder = "".join(c if c.isalnum() else "_" for c in name.lower())
        run_dir = train_model(config_file, network, args.out / folder, args.events, args.epochs)
        for score in scores:
            start = time.perf_counter()
            result = export_run(run_dir, score, SCAN[2], scan, out=run_dir / f"hls_{score}")
            seconds = time.perf_counter() - start
            for row in result["rows"]:
                rows.append({"model": name, "score": score, "parameters": result["parameters"],
                             "multiplications": result["multiplications"], "precision": row["precision"],
                             "AUC keras": row["auc_keras"], "AUC csim": row["auc_csim"],
                             "ΔAUC": row["auc_difference"], "εS(1e-3) keras": row["eff_keras"],
                             "εS(1e-3) csim": row["eff_csim"], "decisions differing": row["decisions_differing"]})
            print(f"{name} {score}: {len(result['rows'])} precisions converted, compiled and compared in {seconds:.0f} s")
    table = pd.DataFrame(rows)
    table["bits"] = table["precision"].str.extract(r"<(\d+),", expand=False).astype(int)
    table = table.sort_values(["model", "score", "bits"], kind="stable").drop(columns="bits")
    table["precision"] = table["precision"].str.replace(",AP_RND,AP_SAT", "", regex=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.markdown:
        command = command_line("trigger_export.py", argv)
        text = (f"{MARK}\n## Trigger export: Keras vs hls4ml C simulation (`benchmarks/trigger_export.py`)\n\n"
                f"`{command}` on {machine()}; hls4ml 1.3 (Vitis backend, io_parallel), g++. Dense 64-32 or conv "
                f"encoders, latent 8, {args.epochs} epochs on {args.events:,} embedded background events (60 % train); "
                "AUC and ε_S means over the three embedded signals, on the 20 % test background. Every type rounds "
                "to nearest and saturates (`AP_RND,AP_SAT`); the conv encoder is the DarkFlow preset (dense 20); "
                "\"decisions differing\": events whose ε_B = 1e-3 "
                "trigger decision differs, each side at its own background threshold.\n\n"
                f"{markdown_table(table, 4)}\n{MARK}")
        write_section(args.markdown, text, MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
