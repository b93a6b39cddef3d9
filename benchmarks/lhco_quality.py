"""Do the toolkit's models separate signal from background? LHCO R&D high-level features.

Background: the QCD dijet events of ``lhco_rnd_scalars/scalars_bkg0{1..5}.h5`` split 60/20/20 (split
seed 0) into train/validation/test; signal: every event of ``scalars_sig0{1..5}.h5`` (W′ → XY → 4q),
never seen in training. Features: the files' columns as the reader keeps them (phi dropped, constant
``nj`` dropped, the ``tau21`` columns dropped because in these files they duplicate ``tau32``) plus
τ21 = τ2/τ1 of each jet recomputed from the τ columns.

1. every model × prior of :data:`MODELS` (seed 0), scored with every applicable method: AUC and ε_S at
   ε_B = 1e-2 and 1e-3 (the ~9,100 test background events leave 9 above the 1e-3 cut: rough);
2. :data:`BEST`, the best documented configuration, over three seeds: mean ± standard deviation. It is
   a SWAE with a uniform prior on Gauss-rank (``quantile``) scaled features, scored by the rank
   combination of ``input_norm`` (the marginal-outlier χ² of the scaled input) and half the latent
   ``mahalanobis`` distance. It was chosen by looking at this signal's figures (model selection with
   labels, as any published benchmark number is): training and scoring use background only;
3. scikit-learn baselines on the same split: Mahalanobis distance (Ledoit-Wolf) on standardised
   features, PCA reconstruction error, IsolationForest.

    python benchmarks/lhco_quality.py [--epochs 30] [--seeds 0 1 2] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import machine, write_section  # noqa: E402
from tfp_anomaly.data import get_scaler, read_lhco_scalars, split_indices  # noqa: E402
from tfp_anomaly.models import SWAE, VAE  # noqa: E402
from tfp_anomaly.models.training import train  # noqa: E402
from tfp_anomaly.report.metrics import figures_of_merit  # noqa: E402
from tfp_anomaly.scoring import Scorer, compute_terms  # noqa: E402

MARK = "<!-- lhco_quality -->"
DATA = ROOT.parent / "shared" / "data" / "lhco_rnd_scalars"
DENSE = {"type": "dense", "hidden_units": [128, 64], "batch_norm": True}
LATENT = 4

#: label -> (class, options); every model also gets the input shape, LATENT, DENSE and the quantile scaler
MODELS = {
    "VAE": (VAE, {}),
    "VAE + IAF×4": (VAE, {"flow": "iaf, reverse, iaf, reverse, iaf, reverse, iaf", "flow_kwargs": {"hidden_units": [32, 32]}}),
    "VAE + Planar×6": (VAE, {"flow": "planar*6", "flow_kwargs": {"amortized": True}}),
    "SWAE gaussian": (SWAE, {"prior": "gaussian"}),
    "SWAE uniform": (SWAE, {"prior": "uniform"}),
    "SWAE ring": (SWAE, {"prior": "ring"}),
}
#: the best documented unsupervised configuration: (model label, score)
BEST = ("SWAE uniform", "rank:input_norm+0.5*mahalanobis")
EFFICIENCIES = (1e-2, 1e-3)


def with_tau21(table) -> np.ndarray:
    names = table.names
    f = table.features
    tau21 = [f[:, names.index(f"tau2_{j}")] / np.maximum(f[:, names.index(f"tau1_{j}")], 1e-6) for j in (1, 2)]
    return np.c_[f, np.stack(tau21, axis=1)].astype("float32")


def load():
    background = read_lhco_scalars(sorted(DATA.glob("scalars_bkg0*.h5")))
    signal = read_lhco_scalars(sorted(DATA.glob("scalars_sig0*.h5")))
    assert background.names == signal.names, "background and signal columns differ"
    split = split_indices(len(background), (0.6, 0.2, 0.2), seed=0)
    x, s = with_tau21(background), with_tau21(signal)
    return x[split.train], x[split.val], x[split.test], s


def row(label, score, seed, background, signal) -> dict:
    fom = figures_of_merit(background, signal, EFFICIENCIES, bootstrap=0, warn=False)
    return {"model": label, "score": score, "seed": seed, "AUC": fom["AUC"], "eff@1e-2": fom["eff@1e-2"],
            "eff@1e-3": fom["eff@1e-3"]}


def baselines(train_x, test_x, signal_x, seed=0) -> list[dict]:
    scaler = StandardScaler().fit(train_x)
    a, b, c = (scaler.transform(v) for v in (train_x, test_x, signal_x))
    rows = []
    cov = LedoitWolf().fit(a)
    rows.append(row("sklearn", "Mahalanobis (standardised)", seed, cov.mahalanobis(b), cov.mahalanobis(c)))
    pca = PCA(n_components=0.9, random_state=seed).fit(a)  # components for 90 % of the variance

    def pca_error(v):
        return ((v - pca.inverse_transform(pca.transform(v))) ** 2).mean(1)

    rows.append(row("sklearn", f"PCA({pca.n_components_}) reconstruction", seed, pca_error(b), pca_error(c)))
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(a)
    rows.append(row("sklearn", "IsolationForest", seed, -forest.score_samples(b), -forest.score_samples(c)))
    return rows


def train_and_score(label, train_x, val_x, test_x, signal_x, epochs, seed, methods=("all",)):
    """Rows for each scoring spec in ``methods`` (``"all"``: every applicable method); the model's terms
    are computed once per sample."""
    cls, options = MODELS[label]
    scaler = get_scaler("quantile").fit(train_x).get_config()
    keras.utils.set_random_seed(seed)
    model = cls(train_x.shape[1:], latent_dim=LATENT, network=DENSE, scaler=scaler, seed=seed, **options)
    model, _ = train(model, train_x, val_x, epochs=epochs, batch_size=256, seed=seed, verbose=0)
    terms = [compute_terms(model, x, seed=seed) for x in (train_x, test_x, signal_x)]
    rows = []
    for spec in methods:
        scorer = Scorer(spec if spec == "all" else [spec], seed=seed).fit(model, train_x, terms=terms[0])
        test, signal = scorer.score(model, test_x, terms=terms[1]), scorer.score(model, signal_x, terms=terms[2])
        rows += [row(label, m, seed, test[m], signal[m]) for m in test]
    return rows


def measure(args):
    train_x, val_x, test_x, signal_x = load()
    grid = baselines(train_x, test_x, signal_x)
    for label in MODELS:
        start = time.perf_counter()
        methods = ("all", BEST[1]) if label == BEST[0] else ("all",)
        grid += train_and_score(label, train_x, val_x, test_x, signal_x, args.epochs, args.seeds[0], methods)
        best = max((r for r in grid if r["model"] == label), key=lambda r: r["AUC"])
        print(f"{label:18s} {time.perf_counter() - start:5.0f} s; best {best['score']}: AUC {best['AUC']:.3f} "
              f"eff@1e-2 {best['eff@1e-2']:.3f}", flush=True)
    seeds = [r for r in grid if (r["model"], r["score"]) == BEST and r["seed"] == args.seeds[0]]
    for seed in args.seeds:
        if seed != args.seeds[0]:  # the first seed's model is the grid's
            seeds += train_and_score(BEST[0], train_x, val_x, test_x, signal_x, args.epochs, seed, methods=(BEST[1],))
        seeds += [dict(r, model=f"baseline: {r['score']}") for r in baselines(train_x, test_x, signal_x, seed)
                  if r["score"] == "IsolationForest"]
    counts = {"train": len(train_x), "validation": len(val_x), "test background": len(test_x),
              "signal": len(signal_x), "features": train_x.shape[1]}
    return pd.DataFrame(grid), pd.DataFrame(seeds), counts


def seed_summary(seeds: pd.DataFrame) -> pd.DataFrame:
    stats = seeds.groupby(["model", "score"])[["AUC", "eff@1e-2", "eff@1e-3"]].agg(["mean", "std"])
    return stats.reset_index()


def to_markdown(grid, seeds, counts, args) -> str:
    def fmt(v):
        return f"{v:.3f}"

    summary = seed_summary(seeds)
    lines = [MARK, "## Signal/background separation on LHCO R&D (`benchmarks/lhco_quality.py`)", "",
             f"Command: `python benchmarks/lhco_quality.py --epochs {args.epochs} --seeds "
             f"{' '.join(map(str, args.seeds))} --markdown docs/benchmarks.md` (also `make bench`)  ",
             f"Machine: {machine()}; TensorFlow {tf.__version__}, CPU  ",
             "Data: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + " (chunks 01–05; the W′ → XY signal "
             "is never seen in training; τ21 = τ2/τ1 of both jets recomputed, as the files' tau21 columns "
             "duplicate tau32). Models: dense 128-64 with batch norm, latent "
             f"{LATENT}, Gauss-rank (quantile) scaler fitted on the training background, Adam 1e-3, batch 256, "
             f"{args.epochs} epochs.", "",
             f"**Best documented configuration: {BEST[0]}, score `{BEST[1]}`** over seeds "
             f"{', '.join(map(str, args.seeds))} (mean ± standard deviation; IsolationForest over the same seeds):", "",
             "| model | score | AUC | εS at εB = 1e-2 | εS at εB = 1e-3 |", "|---|---|---:|---:|---:|"]
    for _, r in summary.iterrows():
        lines.append(f"| {r[('model', '')]} | {r[('score', '')]} | "
                     + " | ".join(f"{fmt(r[(c, 'mean')])} ± {fmt(r[(c, 'std')])}" for c in ("AUC", "eff@1e-2", "eff@1e-3"))
                     + " |")
    lines += ["", f"Every model × score (seed {args.seeds[0]}) and the scikit-learn baselines on the same split:", "",
              "| model | score | AUC | εS at εB = 1e-2 | εS at εB = 1e-3 |", "|---|---|---:|---:|---:|"]
    for _, r in grid.sort_values("AUC", ascending=False).iterrows():
        lines.append(f"| {r['model']} | {r['score']} | {fmt(r['AUC'])} | {fmt(r['eff@1e-2'])} | {fmt(r['eff@1e-3'])} |")
    lines += ["", "εB = 1e-3 leaves ~9 test background events above the cut and 1e-4 under one: the 1e-3 column is "
              "rough and 1e-4 is not reported (the report flags such points).", MARK]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"needs the LHCO R&D feature files in {DATA}", file=sys.stderr)
        return 2
    grid, seeds, counts = measure(args)
    print(grid.sort_values("AUC", ascending=False).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(seed_summary(seeds).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.markdown:
        write_section(args.markdown, to_markdown(grid, seeds, counts, args), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
