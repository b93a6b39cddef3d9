"""Do the trained models separate signal from background? LHCO R&D high-level features.

Background: the QCD dijet events of ``lhco_rnd_scalars/scalars_bkg0{1..5}.h5`` split 60/20/20 (seed 0)
into train/validation/test; signal: every event of ``scalars_sig0{1..5}.h5`` (W′ → XY → 4q), never
seen in training. Each model family trains on the training background (``train``, fixed epochs,
scaler fitted on the training part) and scores the test background and the signal by its own
per-event loss terms: the reconstruction error and, for the VAEs, reconstruction + KL (the negative
single-sample ELBO); for the SWAEs the distance of the encoding from the origin (‖z‖). AUC and the
signal efficiency at background efficiency 1e-2 come from scikit-learn's ROC. Baselines on the same
split: scikit-learn PCA reconstruction error and the Mahalanobis distance to the training background.

    python benchmarks/model_quality.py [--epochs 15] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score, roc_curve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import machine, write_section  # noqa: E402
from tfp_anomaly.data import get_scaler, read_lhco_scalars, split_indices  # noqa: E402
from tfp_anomaly.models import SWAE, VAE  # noqa: E402
from tfp_anomaly.models.training import train  # noqa: E402

MARK = "<!-- model_quality -->"
DATA = ROOT.parent / "shared" / "data" / "lhco_rnd_scalars"
DENSE = {"type": "dense", "hidden_units": [64, 32], "batch_norm": True}

#: label -> (class, options); every model also gets the input shape, latent 8, DENSE and the scaler
MODELS = {
    "VAE": (VAE, {}),
    "VAE + IAF×4": (VAE, {"flow": "iaf, reverse, iaf, reverse, iaf, reverse, iaf",
                          "flow_kwargs": {"hidden_units": [32, 32]}}),
    "VAE + Planar×6": (VAE, {"flow": "planar*6", "flow_kwargs": {"amortized": True}}),
    "SWAE (gaussian)": (SWAE, {"prior": "gaussian"}),
    "SWAE (uniform)": (SWAE, {"prior": "uniform"}),
}


def load():
    background = read_lhco_scalars(sorted(DATA.glob("scalars_bkg0*.h5")))
    signal = read_lhco_scalars(sorted(DATA.glob("scalars_sig0*.h5")))
    assert background.names == signal.names, "background and signal columns differ"
    split = split_indices(len(background), (0.6, 0.2, 0.2), seed=0)
    x = background.features.astype("float32")
    return x[split.train], x[split.val], x[split.test], signal.features.astype("float32")


def efficiency_at(labels, scores, background_efficiency):
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.interp(background_efficiency, fpr, tpr))


def figures(name, test_scores, signal_scores):
    labels = np.r_[np.zeros(len(test_scores)), np.ones(len(signal_scores))]
    scores = np.r_[test_scores, signal_scores]
    return {"model / score": name, "AUC": roc_auc_score(labels, scores), "εS at εB=1e-2": efficiency_at(labels, scores, 1e-2)}


def model_scores(model, x, batch=4096):
    """Per-event score arrays of one trained model."""
    out = {"reconstruction": [], "reconstruction + KL": [], "‖z‖": []}
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        y = model(chunk, training=False)
        recon = model.reconstruction_loss(chunk, y["out"])
        out["reconstruction"].append(recon)
        if isinstance(model, VAE):
            out["reconstruction + KL"].append(recon + model.kl(y))
        else:
            out["‖z‖"].append(tf.norm(y["z"], axis=-1))
    return {k: np.concatenate([t.numpy() for t in v]) for k, v in out.items() if v}


def baselines(train_x, test_x, signal_x, rows):
    scaler = get_scaler("robust").fit(train_x)
    a, b, c = (scaler.transform(v) for v in (train_x, test_x, signal_x))
    pca = PCA(n_components=8, random_state=0).fit(a)

    def pca_error(v):
        return ((v - pca.inverse_transform(pca.transform(v))) ** 2).mean(1)

    rows.append(figures("sklearn PCA(8) reconstruction", pca_error(b), pca_error(c)))
    cov = LedoitWolf().fit(a)
    rows.append(figures("sklearn Mahalanobis (Ledoit-Wolf)", cov.mahalanobis(b), cov.mahalanobis(c)))


def measure(args) -> tuple[pd.DataFrame, dict]:
    train_x, val_x, test_x, signal_x = load()
    scaler = get_scaler("robust").fit(train_x).get_config()
    rows = []
    baselines(train_x, test_x, signal_x, rows)
    for label, (cls, options) in MODELS.items():
        keras.utils.set_random_seed(0)
        model = cls(train_x.shape[1:], latent_dim=8, network=DENSE, scaler=scaler, **options)
        model, _ = train(model, train_x, val_x, epochs=args.epochs, batch_size=256, seed=0, verbose=0)
        test, signal = model_scores(model, test_x), model_scores(model, signal_x)
        for score in test:
            rows.append(figures(f"{label}: {score}", test[score], signal[score]))
            print(f"{rows[-1]['model / score']:45s} AUC {rows[-1]['AUC']:.3f}  "
                  f"eff@1e-2 {rows[-1]['εS at εB=1e-2']:.3f}", flush=True)
    counts = {"train": len(train_x), "validation": len(val_x), "test background": len(test_x),
              "signal": len(signal_x), "features": train_x.shape[1]}
    return pd.DataFrame(rows), counts


def to_markdown(table: pd.DataFrame, counts: dict, args) -> str:
    lines = [MARK, "## Signal/background separation on LHCO R&D (`benchmarks/model_quality.py`)", "",
             f"Command: `python benchmarks/model_quality.py --epochs {args.epochs} --markdown docs/benchmarks.md` "
             "(also `make bench`)  ",
             f"Machine: {machine()}; TensorFlow {tf.__version__}, CPU  ",
             "Data: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + " (chunks 01–05; the W′ signal "
             "is never seen in training). Dense networks 64-32 with batch norm, latent 8, robust scaler, Adam 1e-3, "
             f"batch 256, {args.epochs} epochs, seed 0.", "",
             "| model / score | AUC | εS at εB = 1e-2 |", "|---|---:|---:|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['model / score']} | {r['AUC']:.3f} | {r['εS at εB=1e-2']:.3f} |")
    lines += ["", "εB = 1e-3 and 1e-4 need more test background than these ~9,000 events (9 and 1 events "
              "above the cut); the report of the scoring issue adds them with bootstrap uncertainties.", MARK]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args()
    if not DATA.exists():
        print(f"needs the LHCO R&D feature files in {DATA}", file=sys.stderr)
        return 2
    table, counts = measure(args)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.markdown:
        write_section(args.markdown, to_markdown(table, counts, args), MARK)
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
