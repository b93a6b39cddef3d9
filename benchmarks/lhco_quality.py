"""Do the toolkit's models separate signal from background? LHCO R&D high-level features, over seeds.

Background: the QCD dijet events of ``lhco_rnd_scalars/scalars_bkg0{1..5}.h5`` split 60/20/20 (split
seed 0) into train/validation/test; signal: every event of ``scalars_sig0{1..5}.h5`` (W′ → XY → 4q),
never seen in training. Features as ``tfp-anomaly train`` reads them (43 columns: τ21 recomputed as
τ2/τ1, φ and the constant ``nj`` dropped), Gauss-rank scaled on the training background.

Both configurations are trained exactly as ``tfp-anomaly train`` trains them
(:func:`tfp_anomaly.experiment.run`), once per seed:

1. **The shipped configuration**, ``examples/configs/lhco_best.yaml``: a SWAE with a uniform prior,
   score ``rank:input_norm+mahalanobis`` with equal weights (the earlier ½ was chosen by looking at the
   signal; the model family and score were chosen by earlier work looking at this signal, as its file
   says).
2. **The label-free candidate**, ``examples/configs/lhco_vae_ensemble.yaml``, every choice made on
   background only and its primary score ``iwae`` fixed before the first measurement: a seed ensemble
   of 5 VAEs, trained with seed 5s for s = 0 … 4. Its members are single models trained as they would be
   alone (on the same batches), differently initialised: the 25 members of the 5 ensembles are the
   "single VAE" rows (their `seeds` column counts 25 distinct models, labelled 5s + k).
3. **Baselines in the same run**: ``input_norm`` (Σ x′² of the Gauss-rank scaled input: no model, no
   seed), and scikit-learn's Mahalanobis distance, PCA reconstruction and IsolationForest.

All scores are shown. Every figure is the mean ± standard deviation over seeds; the targets of the
detection-quality issue are checked at the end for both configurations' primary scores.

    python benchmarks/lhco_quality.py [--seeds 0 1 2 3 4] [--epochs 30] [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import command_line, machine, markdown_table, write_section  # noqa: E402
from tfp_anomaly import config as config_lib  # noqa: E402
from tfp_anomaly.experiment import run  # noqa: E402
from tfp_anomaly.inputs import load_signals, model_input, prepare_data  # noqa: E402
from tfp_anomaly.rundir import RunDirectory  # noqa: E402
from tfp_anomaly.report.metrics import figures_of_merit  # noqa: E402
from tfp_anomaly.scoring import Scorer, compute_terms, member_terms  # noqa: E402

MARK = "<!-- lhco_quality -->"
DATA = ROOT.parent / "shared" / "data"
CONFIGS = ROOT / "examples" / "configs"
SHIPPED, CANDIDATE = "SWAE uniform (lhco_best.yaml)", "VAE ensemble×5 (lhco_vae_ensemble.yaml)"
#: label -> (configuration file, primary score, scores shown)
MODELS = {
    SHIPPED: ("lhco_best.yaml", "rank:input_norm+mahalanobis", ("rank:input_norm+mahalanobis", "mahalanobis",
                                                                 "latent_flow")),
    CANDIDATE: ("lhco_vae_ensemble.yaml", "iwae", ("iwae", "reconstruction", "kl", "mahalanobis", "latent_flow",
                                                   "rank:input_norm+latent_flow")),
}
EFFICIENCIES = (1e-2, 1e-3)
TARGETS = {"AUC": 0.92, "AUC std": 0.01, "eff@1e-2": 0.30, "AUC over input_norm": 0.02}


def load_config(name: str, data_dir: Path, epochs: int) -> dict:
    config = config_lib.merge(config_lib.DEFAULTS, config_lib.read_yaml(CONFIGS / name))
    config["data"]["dir"] = str(data_dir)
    config["training"].update(epochs=epochs, verbose=0)
    return config


def row(model, score, seed, background, signal) -> dict:
    fom = figures_of_merit(background, signal, EFFICIENCIES, bootstrap=0, warn=False)
    return {"model": model, "score": score, "seed": seed, "AUC": fom["AUC"], "eff@1e-2": fom["eff@1e-2"],
            "eff@1e-3": fom["eff@1e-3"]}


def scored_rows(label, model, terms, methods, seed, members_label=None) -> list[dict]:
    """Rows of ``methods`` fitted on the training terms, evaluated on test background vs signal; for an
    ensemble also each member's own score (the member methods the ensemble's scorer fitted) as a
    single model's, labelled ``members_label`` with seed ``seed + k``."""
    scorer = Scorer(list(methods), seed=seed).fit(model, None, terms=terms["train"])
    test, signal = scorer.score(model, None, terms=terms["test"]), scorer.score(model, None, terms=terms["signal"])
    rows = [row(label, m, seed, test[m], signal[m]) for m in test]
    for k in range(getattr(model, "ensemble_size", 1) if members_label else 0):
        for name, method in scorer.methods.items():
            single = method.members[k]
            rows.append(row(members_label, name, seed + k, single.score(member_terms(terms["test"], k)),
                            single.score(member_terms(terms["signal"], k))))
    return rows


def train_and_score(config, samples, seed, work: Path, methods, label, members_label=None) -> list[dict]:
    """Train ``config`` with training seed ``seed`` as ``tfp-anomaly train`` does, and score it (an
    ensemble's members also as single models)."""

    config = copy.deepcopy(config)
    config["training"]["seed"] = seed
    run_dir = work / f"{config['model']['type']}_{seed}"
    run(config, run_dir)
    model = RunDirectory(run_dir).load_model()
    terms = {name: compute_terms(model, x, seed=seed) for name, x in samples.items()}
    return scored_rows(label, model, terms, methods, seed, members_label)


def baselines(samples, input_norm, seed) -> list[dict]:
    """Model-free ``input_norm`` and the scikit-learn baselines on standardised features."""
    train_x, test_x, signal_x = samples["train"], samples["test"], samples["signal"]
    rows = [row("baseline", "input_norm (no model)", seed, input_norm(test_x), input_norm(signal_x))]
    scaler = StandardScaler().fit(train_x)
    a, b, c = (scaler.transform(v) for v in (train_x, test_x, signal_x))
    cov = LedoitWolf().fit(a)
    rows.append(row("baseline", "sklearn Mahalanobis (standardised)", seed, cov.mahalanobis(b), cov.mahalanobis(c)))
    pca = PCA(n_components=0.9, random_state=seed).fit(a)  # components for 90 % of the variance

    def pca_error(v):
        return ((v - pca.inverse_transform(pca.transform(v))) ** 2).mean(1)

    rows.append(row("baseline", "sklearn PCA reconstruction (90 % variance)", seed, pca_error(b), pca_error(c)))
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(a)
    rows.append(row("baseline", "sklearn IsolationForest", seed, -forest.score_samples(b), -forest.score_samples(c)))
    return rows


def measure(args):
    config, swae = (load_config(MODELS[label][0], args.data, args.epochs) for label in (CANDIDATE, SHIPPED))
    prepared = prepare_data(config)
    signal = model_input(config, load_signals(config)["wprime_xy"])
    samples = {"train": prepared.parts["train"], "test": prepared.parts["test"], "signal": signal}
    scaler = prepared.scaler

    def input_norm(x):
        return np.mean(np.square(scaler.transform(x)), axis=1)

    size = int(config["model"]["ensemble"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for seed in args.seeds:
            start = time.perf_counter()
            rows += train_and_score(config, samples, size * seed, work, MODELS[CANDIDATE][2], CANDIDATE,
                                    "VAE (single members)")
            rows += train_and_score(swae, samples, seed, work, MODELS[SHIPPED][2], SHIPPED)
            rows += baselines(samples, input_norm, seed)
            print(f"seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    counts = {"train": len(samples["train"]), "validation": len(prepared.parts["val"]),
              "test background": len(samples["test"]), "signal": len(signal), "features": signal.shape[1]}
    return pd.DataFrame(rows), counts


def seed_summary(rows: pd.DataFrame) -> pd.DataFrame:
    stats = rows.groupby(["model", "score"], sort=False)[["AUC", "eff@1e-2", "eff@1e-3"]].agg(["mean", "std"])
    stats.columns = [f"{a} {b}" for a, b in stats.columns]
    stats["seeds"] = rows.groupby(["model", "score"], sort=False)["seed"].nunique()
    return stats.reset_index().sort_values("AUC mean", ascending=False)


def target_checks(summary: pd.DataFrame) -> list[str]:
    """One line per (configuration, target): measured value of its primary score, met or not."""
    free = summary[summary["score"] == "input_norm (no model)"].iloc[0]
    lines = []
    for label, (_, score, _) in MODELS.items():
        p = summary[(summary["model"] == label) & (summary["score"] == score)].iloc[0]
        checks = [("AUC ≥ 0.92", p["AUC mean"] >= TARGETS["AUC"], f"{p['AUC mean']:.3f}"),
                  ("AUC std ≤ 0.01", p["AUC std"] <= TARGETS["AUC std"], f"{p['AUC std']:.3f}"),
                  ("εS(1e-2) ≥ 0.30", p["eff@1e-2 mean"] >= TARGETS["eff@1e-2"], f"{p['eff@1e-2 mean']:.3f}"),
                  ("AUC ≥ input_norm + 0.02", p["AUC mean"] - free["AUC mean"] >= TARGETS["AUC over input_norm"],
                   f"{p['AUC mean'] - free['AUC mean']:+.3f}")]
        lines += [f"| {label}, `{score}` | {name} | {value} | {'met' if ok else 'not met'} |"
                  for name, ok, value in checks]
    return lines


def to_markdown(rows, counts, args) -> str:
    summary = seed_summary(rows)
    table = summary.copy()
    for c in ("AUC", "eff@1e-2", "eff@1e-3"):
        table[c] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(table[f"{c} mean"], table[f"{c} std"].fillna(0.0))]
    table = table[["model", "score", "seeds", "AUC", "eff@1e-2", "eff@1e-3"]].rename(
        columns={"eff@1e-2": "εS at εB = 1e-2", "eff@1e-3": "εS at εB = 1e-3"})
    table["score"] = [f"**{s}** (primary)" if m in MODELS and s == MODELS[m][1] else s
                      for m, s in zip(table["model"], table["score"])]
    return "\n".join([
        MARK, "## Signal/background separation on LHCO R&D (`benchmarks/lhco_quality.py`)", "",
        f"Command: `{command_line('lhco_quality.py', args.argv)}` (also `make bench`)  ",
        f"Machine: {machine()}  ",
        "Data: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + " (chunks 01–05; the W′ → XY signal is "
        "never seen in training). Both configurations trained by `tfp-anomaly train`'s own code, "
        f"{args.epochs} epochs, once per seed: the shipped `examples/configs/lhco_best.yaml` (SWAE, uniform prior; "
        "its model and score were chosen by earlier work looking at this signal, its weights are equal) and the "
        "label-free candidate `examples/configs/lhco_vae_ensemble.yaml` (5 VAEs; every choice on background "
        "only, primary score fixed in advance), whose members are the single-VAE rows. Mean ± standard "
        "deviation over seeds (`seeds` column).", "",
        markdown_table(table), "",
        "Targets of the detection-quality issue, for each configuration's primary score:", "",
        "| configuration | target | measured | |", "|---|---|---:|---|", *target_checks(summary), "",
        "εB = 1e-3 leaves ~9 test background events above the cut: that column is rough, and 1e-4 is not "
        "reported.", MARK])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding lhco_rnd_scalars/")
    parser.add_argument("--work", type=Path, help="keep the run directories here (default: a temporary folder)")
    parser.add_argument("--csv", type=Path, help="also write every (model, score, seed) row to this CSV")
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    args.argv = argv
    if not (args.data / "lhco_rnd_scalars").exists():
        print(f"needs the LHCO R&D feature files in {args.data / 'lhco_rnd_scalars'}", file=sys.stderr)
        return 2
    rows, counts = measure(args)
    print(seed_summary(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        rows.to_csv(args.csv, index=False)
    if args.markdown:
        write_section(args.markdown, to_markdown(rows, counts, args), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
