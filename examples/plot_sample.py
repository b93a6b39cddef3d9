"""Background vs signal distributions of the embedded sample (or of any Dark Machines files).

    python examples/plot_sample.py [--out docs/sample_distributions.png]
    python examples/plot_sample.py --files bkg.csv sig.csv --names background signal

Leading jet pT, HT, MET, jet / b-jet / lepton multiplicities, each normalised to unit area, one
line per part (seaborn, log-scale counts where the tails matter).
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from tfp_anomaly.atomic import atomic_path  # noqa: E402
from tfp_anomaly.data import ObjectGrid, read_darkmachines  # noqa: E402
from tfp_anomaly.data.sample import load_sample, manifest  # noqa: E402


def summary(events) -> pd.DataFrame:
    jets = ObjectGrid(blocks=[(["j", "b"], 1)], met_row=False, features=["pt"]).transform(events)[0][:, 0, 0]
    ht_grid, mask = ObjectGrid(blocks=[(["j", "b"], 30)], met_row=False, features=["pt"]).transform(events)
    return pd.DataFrame({
        "leading jet pT [GeV]": jets, "HT [GeV]": (ht_grid[..., 0] * mask).sum(1), "MET [GeV]": events.met,
        "jets": events.multiplicity("j") + events.multiplicity("b"), "b-jets": events.multiplicity("b"),
        "leptons": sum(events.multiplicity(c) for c in ("e-", "e+", "m-", "m+"))})


def load(args) -> pd.DataFrame:
    if args.files:
        parts = {name: read_darkmachines(f, unit="GeV") for name, f in zip(args.names or args.files, args.files)}
    else:
        parts = {name: load_sample(name) for name in manifest()["files"]}
    return pd.concat([summary(e).assign(part=name) for name, e in parts.items()], ignore_index=True)


def plot(table: pd.DataFrame, out: Path) -> None:
    columns = [c for c in table.columns if c != "part"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, column in zip(axes.flat, columns):
        discrete = table[column].dtype.kind in "iu"
        bins = np.arange(-0.5, table[column].max() + 1.5) if discrete else 40
        sns.histplot(table, x=column, hue="part", stat="density", common_norm=False, element="step", fill=False,
                     bins=bins, ax=ax, log_scale=(False, not discrete))
    fig.suptitle("embedded sample: background vs signals (each normalised to unit area)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="*", type=Path)
    parser.add_argument("--names", nargs="*")
    parser.add_argument("--out", type=Path, default=Path("docs/sample_distributions.png"))
    args = parser.parse_args(argv)
    table = load(args)
    plot(table, args.out)
    print(table.groupby("part").mean().round(1).to_string())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
