"""Which encoder, which posterior flow, which way of training the flow? One comparison, three questions.

On the embedded Pythia 8 sample (object matrices, 13 j / 3 b / 3 μ± / 3 e± / 3 γ / MET, (E, pT, η, φ)):

1. ``encoders``: the ConvVAE's convolutional encoder against a dense one, a Deep Sets encoder and an
   EdgeConv graph encoder over the object list, in a VAE and in a SWAE with a uniform prior;
2. ``flows``: the ConvVAE with each flow family of the library as its posterior (full flow ELBO);
3. ``strategies``: ConvVAE + Planar×6 trained jointly, staged (VAE, then only the flow) and with a flow
   warm-up (VAE, then all together).

On the LHCO R&D high-level features (``../shared/data``, skipped when absent; flat features, so no set or
graph encoder): a dense VAE with Planar×6 under the three strategies, and with IAF and ConvFlow posteriors.

Every model is a ``tfp-anomaly train`` run scored by every applicable method on the held-out test
background and each signal (:func:`tfp_anomaly.demo.run_comparison`); each group's full report (ROC
curves, histograms, latent plots) is written to ``OUT/<group>/report``. The table gives, per model,
the best method by mean AUC over the signals, and the mean AUC of ``mse`` and ``mahalanobis``.

    python benchmarks/architectures.py [--events 20000] [--epochs 6] [--groups encoders flows strategies lhco]
                                       [--out runs/architectures] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))
from _common import command_line, machine, markdown_table, write_section  # noqa: E402
from tfp_anomaly.demo import BASE, CONV, run_comparison  # noqa: E402
from tfp_anomaly.report.metrics import auc, efficiency_at, roc  # noqa: E402

MARK = "<!-- architectures -->"
DATA = ROOT.parent / "shared" / "data"
SETS = {"deepsets": {"type": "deepsets", "phi_units": [64, 64], "rho_units": [64], "decoder_units": [64, 128]},
        "graph": {"type": "graph", "edge_units": [[32, 32], [32, 32]], "k": 8, "hidden": 64,
                  "decoder_units": [64, 128]}}
DENSE = {"type": "dense", "hidden_units": [128, 64]}
AMORTIZED = {"amortized": True}
IAF = "iaf, reverse, iaf, reverse, iaf, reverse, iaf"
CONVFLOW = "convflow, reverse, convflow, reverse, convflow, reverse, convflow"


def _vae(network=None, **model):
    return {"type": "vae", **CONV, **({"network": network} if network else {}), **model}


def _swae(network=None):
    return {"type": "swae", **CONV, **({"network": network} if network else {}), "prior": "uniform", "lam": 1.0}


ENCODERS = {
    "VAE conv": _vae(), "VAE dense": _vae(DENSE), "VAE deepsets": _vae(SETS["deepsets"]),
    "VAE graph": _vae(SETS["graph"]),
    "SWAE conv": _swae(), "SWAE dense": _swae(DENSE), "SWAE deepsets": _swae(SETS["deepsets"]),
    "SWAE graph": _swae(SETS["graph"]),
}
FLOWS = {
    "planar×6": ("planar*6", AMORTIZED), "radial×6": ("radial*6", AMORTIZED),
    "householder×4": ("householder*4", AMORTIZED),
    "sylvester orthogonal×4": ("sylvester_orthogonal*4", AMORTIZED),
    "sylvester householder×4": ("sylvester_householder*4", {**AMORTIZED, "num_householder": 8}),
    "sylvester triangular×4": ("sylvester_triangular*4", AMORTIZED),
    "nice×4": ("nice*4", {"hidden_units": [64, 64]}), "realnvp×4": ("realnvp*4", {"hidden_units": [64, 64]}),
    "iaf×4": (IAF, {"hidden_units": [64, 64]}), "maf×4": ("maf, reverse, maf, reverse, maf, reverse, maf",
                                                          {"hidden_units": [64, 64]}),
    "spline coupling×4": ("spline_coupling*4", {"hidden_units": [64, 64]}),
    "glow×2": ("glow*2", {"hidden_units": [64, 64]}), "convflow×4": (CONVFLOW, AMORTIZED),
    "ffjord": ("ffjord", {"hidden_units": [64]}),
}
STRATEGIES = ("joint", "staged", "flow_warmup")
#: scores that do not depend on the model (the scaled input's mean square): reported once, never "best"
MODEL_FREE = ("input_norm",)


def groups(data_dir: Path) -> dict:
    """name → (base configuration, {model name: model section}, training overrides per model)."""
    planar = _vae(flow="planar*6", flow_kwargs=AMORTIZED)
    out = {
        "encoders": (BASE, ENCODERS, {}),
        "flows": (BASE, {f"ConvVAE + {n}": _vae(flow=s, flow_kwargs=k) for n, (s, k) in FLOWS.items()}, {}),
        "strategies": (BASE, {f"ConvVAE + planar×6, {s}": planar for s in STRATEGIES},
                       {f"ConvVAE + planar×6, {s}": {"flow_training": s} for s in STRATEGIES}),
    }
    folder = data_dir / "lhco_rnd_scalars"
    if sorted(folder.glob("scalars_bkg0*.h5")):
        from lhco import base_config

        lhco = {**{k: v for k, v in CONV.items() if k != "network"}, "latent_dim": 4,
                "network": {"type": "dense", "hidden_units": [64, 32], "batch_norm": True}}
        models = {f"LHCO VAE + planar×6, {s}": {"type": "vae", **lhco, "flow": "planar*6", "flow_kwargs": AMORTIZED}
                  for s in STRATEGIES}
        models["LHCO VAE + iaf×4"] = {"type": "vae", **lhco, "flow": IAF, "flow_kwargs": {"hidden_units": [32, 32]}}
        models["LHCO VAE + convflow×4"] = {"type": "vae", **lhco, "flow": CONVFLOW, "flow_kwargs": AMORTIZED}
        out["lhco"] = (base_config(data_dir), models,
                       {f"LHCO VAE + planar×6, {s}": {"flow_training": s} for s in STRATEGIES})
    return out


def _train_seconds(result) -> float:
    """The run's own training time (summary.json: summed over resumptions, kept when a run is reused)."""
    return json.loads((Path(result.meta["run_dir"]) / "summary.json").read_text())["train_seconds"]


def _row(result) -> dict:
    def mean_auc(method):
        if method not in result.methods:
            return float("nan")
        return sum(auc(result.background[method], s[method]) for s in result.signals.values()) / len(result.signals)

    best = max((m for m in result.methods if m not in MODEL_FREE), key=mean_auc)
    eff = [float(efficiency_at(*roc(result.background[best], s[best]), 1e-2)) for s in result.signals.values()]
    return {"model": result.name, "parameters": result.meta["parameters"], "epochs": result.meta["epochs"],
            "train s": _train_seconds(result), "best score": best, "AUC (best)": mean_auc(best),
            "εS(1e-2) (best)": sum(eff) / len(eff), "AUC mse": mean_auc("mse"),
            "AUC mahalanobis": mean_auc("mahalanobis"), "AUC input_norm": mean_auc("input_norm")}


def run_group(name, base, models, overrides, out: Path, settings: dict) -> pd.DataFrame:
    result = run_comparison(models, out / name, base, settings, title=f"tfp-anomaly architectures: {name}",
                            training=overrides)
    return pd.DataFrame([_row(run) for run in result["runs"]])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="background events read (60 %% train)")
    parser.add_argument("--signal-events", type=int, default=2_000, help="events per signal scored")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--groups", nargs="+", default=["encoders", "flows", "strategies", "lhco"])
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "architectures")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = {"max_events": args.events, "max_signal_events": args.signal_events, "epochs": args.epochs,
                "bootstrap": 20, "jit_compile": "auto", "runs": "runs"}
    available = groups(args.data_dir)
    sections = []
    for name in args.groups:
        if name not in available:
            print(f"group {name!r} skipped (LHCO files not found in {args.data_dir})" if name == "lhco"
                  else f"unknown group {name!r}; groups: {', '.join(available)}", file=sys.stderr)
            continue
        base, models, overrides = available[name]
        start = time.perf_counter()
        table = run_group(name, base, models, overrides, args.out, settings)
        print(f"\n{name} ({time.perf_counter() - start:.0f} s)\n{table.to_string(index=False, float_format='%.3f')}")
        sections.append(f"### {name}\n\n{markdown_table(table)}\n")
    if args.markdown and sections:
        command = command_line("architectures.py", argv)
        text = (f"{MARK}\n## Encoders, flow families and flow-training strategies\n\n`{command}` on {machine()}; "
                f"{args.epochs} epochs, {args.events:,} background events read (60 % train, 20 % test), "
                f"{args.signal_events:,} events per signal (W′ → WZ, Z′ → tt̄, q*; LHCO: W′ → XY). "
                "AUC and ε_S are means over the signals; \"best\" is the best scoring method by mean AUC, leaving out "
                "`input_norm` (the scaled input's mean square: it does not depend on the model, its AUC is the "
                "reference column). One seed and few epochs: read differences of a few 0.01 as ties (over "
                "three seeds the AUC of a 30-epoch LHCO model varied by ±0.003–0.006; short runs vary more).\n\n"
                + "\n".join(sections) + f"\n{MARK}")
        write_section(args.markdown, text, MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
