"""The same comparison on the LHC Olympics 2020 R&D high-level jet features (../shared/data).

    python examples/lhco.py [--quick] [--data-dir ../shared/data] [--out runs/lhco]

Background: the QCD dijet events of lhco_rnd_scalars/scalars_bkg0*.h5 (labelled files: label-1 events
are removed before training), split 60/20/20; signal: scalars_sig0*.h5 (W′ → XY → 4 quarks), never seen
in training. Dense VAEs (with and without an IAF posterior) and SWAEs with three priors, on
Gauss-rank (quantile) scaled features; every applicable score; the report in OUT/report.
"""
import argparse
import sys
from pathlib import Path

from tfp_anomaly.demo import FULL, QUICK, print_result, run_comparison

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DENSE = {"network": {"type": "dense", "hidden_units": [64, 32], "batch_norm": True}, "latent_dim": 4}
MODELS = {
    "VAE": {"type": "vae", **DENSE},
    "VAE + IAF×4": {"type": "vae", **DENSE, "flow": "iaf, reverse, iaf, reverse, iaf, reverse, iaf",
                    "flow_kwargs": {"hidden_units": [32, 32]}},
    "SWAE gaussian": {"type": "swae", **DENSE, "prior": "gaussian"},
    "SWAE uniform": {"type": "swae", **DENSE, "prior": "uniform"},
    "SWAE ring": {"type": "swae", **DENSE, "prior": "ring"},
}


def base_config(data_dir: Path) -> dict:
    folder = data_dir / "lhco_rnd_scalars"
    background = sorted(str(p) for p in folder.glob("scalars_bkg0*.h5"))
    signal = sorted(str(p) for p in folder.glob("scalars_sig0*.h5"))
    if not background or not signal:
        raise FileNotFoundError(f"no LHCO R&D feature files (scalars_bkg0*.h5, scalars_sig0*.h5) in {folder}")
    return {"data": {"background": background, "signals": {"wprime_xy": signal}},
            "scaler": {"name": "quantile"}, "split": {"fractions": [0.6, 0.2, 0.2], "seed": 0},
            "training": {"batch_size": 256, "learning_rate": 1e-3, "seed": 0, "verbose": 0,
                         "early_stopping": {"patience": 3}}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", default="runs/lhco")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    try:
        base = base_config(args.data_dir)
    except FileNotFoundError as err:
        print(f"lhco.py: {err}", file=sys.stderr)
        return 2
    settings = {**(QUICK if args.quick else FULL), "max_signal_events": None}
    result = run_comparison(MODELS, args.out, base, settings, title="LHCO R&D high-level features")
    print_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
