"""The report's figures (matplotlib/seaborn, Agg backend): ROC curves with logarithmic background
efficiency, score distributions of background against each signal, latent pair plots, training curves.
Every function returns a ``matplotlib.figure.Figure``; :func:`png` renders one to bytes. A run with
event weights (``run.weights``, :func:`tfp_anomaly.report.tables.event_weights`) gets weighted ROC
curves and weighted score histograms, and says so in the title.
"""
from __future__ import annotations

import io

import numpy as np

from .metrics import BACKGROUND_EFFICIENCIES, roc
from .tables import event_weights

#: rows drawn per sample in the latent pair plots, and latent dimensions shown
PAIRPLOT_ROWS, PAIRPLOT_DIMS = 1000, 4


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_grid(n: int, max_cols: int, width: float, height: float):
    """(figure, the first n axes) of a grid of n panels, max_cols wide; unused panels hidden."""
    cols = min(max_cols, n)
    rows = -(-n // cols)
    fig, axes = _plt().subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, list(axes.ravel()[:n])


def png(figure, dpi: int = 90) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    _plt().close(figure)
    return buffer.getvalue()


def _weighted(run) -> bool:
    return bool(getattr(run, "weights", None))


def _roc_axes(ax, n_background):
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency ε_S")
    ax.set_ylabel("background efficiency ε_B")
    ax.set_xlim(0, 1)
    ax.set_ylim(max(0.5 / max(n_background, 1), 1e-5), 1.0)
    for e in BACKGROUND_EFFICIENCIES:
        ax.axhline(e, color="0.8", lw=0.8, ls=":")
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="random")
    ax.grid(alpha=0.3)


def roc_by_signal(runs, table, signal):
    """One ROC curve per model (its best score by AUC) for one signal."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    rows = table[table["signal"] == signal]
    n_background = 1
    for run in runs:
        own = rows[rows["model"] == run.name]
        if own.empty:
            continue
        best = own.loc[own["AUC"].idxmax()]
        fpr, tpr = roc(run.background[best["score"]], run.signals[signal][best["score"]],
                       event_weights(run, "background"), event_weights(run, signal))
        n_background = max(n_background, len(run.background[best["score"]]))
        weighted = " (weighted)" if _weighted(run) else ""
        ax.plot(tpr[1:], fpr[1:], label=f"{run.name}: {best['score']} (AUC {best['AUC']:.3f}){weighted}")
    _roc_axes(ax, n_background)
    ax.set_title(f"signal {signal}: best score per model")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def roc_by_method(run, signals=None):
    """Every scoring method of one model, one panel per signal."""
    plt = _plt()
    signals = list(signals or run.signals)
    fig, axes = plt.subplots(1, len(signals), figsize=(5 * len(signals), 4.2), squeeze=False)
    for ax, signal in zip(axes[0], signals):
        for method in run.methods:
            fpr, tpr = roc(run.background[method], run.signals[signal][method],
                           event_weights(run, "background"), event_weights(run, signal))
            ax.plot(tpr[1:], fpr[1:], lw=1.2, label=method)
        _roc_axes(ax, len(next(iter(run.background.values()))))
        ax.set_title(f"{run.name}: {signal}" + (" (weighted)" if _weighted(run) else ""), fontsize=9)
    axes[0][-1].legend(fontsize=6, loc="lower right")
    return fig


def score_histograms(run, methods=None):
    """Distributions of each method's score: background against every signal (densities, log scale,
    weighted by the event weights where the run has them), on common bins from the 0.1 % to the
    99.9 % quantile of all scores."""
    methods = list(methods or run.methods)
    fig, axes = panel_grid(len(methods), 4, 4.0, 3.0)
    for ax, method in zip(axes, methods):
        samples = {"background": run.background[method], **{s: v[method] for s, v in run.signals.items()}}
        every = np.concatenate(list(samples.values()))
        bins = np.linspace(*np.quantile(every, [0.001, 0.999]), 50)
        for k, (label, values) in enumerate(samples.items()):
            ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, weights=event_weights(run, label), density=True,
                    histtype="step" if k else "stepfilled", alpha=0.35 if not k else 1.0, lw=1.2, label=label,
                    color="0.5" if not k else None)
        ax.set_yscale("log")
        ax.set_title(method, fontsize=9)
    axes[0].legend(fontsize=7)
    weighted = ", event-weighted" if _weighted(run) else ""
    fig.suptitle(f"{run.name}: scores (higher = more anomalous{weighted})", fontsize=10)
    fig.tight_layout()
    return fig


def latent_pairs(run, seed: int = 0):
    """Seaborn pair plot of the first latent dimensions, background against each signal."""
    import pandas as pd
    import seaborn as sns

    rng = np.random.default_rng(seed)
    frames = []
    for sample, z in run.latent.items():
        z = np.asarray(z)[:, :PAIRPLOT_DIMS]
        pick = rng.permutation(len(z))[:PAIRPLOT_ROWS]
        frame = pd.DataFrame(z[pick], columns=[f"z{i}" for i in range(z.shape[1])])
        frames.append(frame.assign(sample=sample))
    data = pd.concat(frames, ignore_index=True)
    grid = sns.pairplot(data, hue="sample", corner=True, plot_kws={"s": 4, "alpha": 0.4, "linewidth": 0},
                        diag_kind="kde", height=1.8, diag_kws={"common_norm": False})
    prior = run.meta.get("prior")
    grid.figure.suptitle(f"{run.name}: encodings" + (f" (prior: {prior})" if prior else ""), y=1.02, fontsize=10)
    return grid.figure


def training_curves(runs):
    """Training and validation loss per epoch, one panel per model."""
    runs = [r for r in runs if r.history]
    if not runs:
        return None
    fig, axes = panel_grid(len(runs), 3, 4.5, 3.0)
    for ax, run in zip(axes, runs):
        for key in ("loss", "val_loss"):
            if key in run.history:
                values = run.history[key]
                ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=key)
        ax.set_title(run.name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
