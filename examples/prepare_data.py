"""Prepare Dark Machines events for training: read, split, grid, scale, tf.data.

    python examples/prepare_data.py FILE.csv [--config examples/configs/grid_darkflow.yaml] [--out DIR]

Prints what it did and writes the fitted scaler (JSON) to --out.
"""
import argparse
from pathlib import Path

import numpy as np
import yaml

from tfp_anomaly.data import ObjectGrid, get_scaler, make_dataset, read_darkmachines, split_background

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--config", type=Path, default=HERE / "configs" / "grid_darkflow.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/prepare"))
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text())

    events = read_darkmachines(args.file, unit=config["data"]["unit"])
    parts = split_background(events, config["split"]["fractions"], seed=config["split"]["seed"])
    grid = ObjectGrid.from_config(config["grid"])
    x, mask, overflow = grid.transform(parts["train"], return_overflow=True)
    scaler = get_scaler(**config["scaler"]).fit(x, mask)
    dataset = make_dataset({"x": scaler.transform(x, mask), "mask": mask}, batch_size=config["training"]["batch_size"])
    path = scaler.save(args.out / "scaler.json")

    print(f"{len(events):,} events -> train/val/test {[len(p) for p in parts.values()]}")
    print(f"grid {grid.shape}, objects beyond the caps: {overflow}")
    print(f"{sum(1 for _ in dataset)} batches of {config['training']['batch_size']}; scaler written to {path}")
    print(f"scaled training features: mean {np.round(scaler.transform(x, mask)[mask].mean(0), 3)}")


if __name__ == "__main__":
    main()
