"""The report's figures (matplotlib/seaborn, Agg backend): the first-screen heatmap of AUC and ε_S
(model × score, per signal and averaged, ± over seeds), ROC curves in the HEP convention (signal
efficiency ε_S across, background rejection 1/ε_B up on a log scale), the physics observables of the
events a cut selects, score distributions of background against each signal, latent pair plots and
training curves. Every function returns a ``matplotlib.figure.Figure``; :func:`png` renders one to
bytes. A run with event weights (``run.weights``, :func:`tfp_anomaly.report.tables.event_weights`) gets
weighted ROC curves, histograms and cuts, and says so.
"""
from __future__ import annotations

import io

import numpy as np

from .metrics import BACKGROUND_EFFICIENCIES, roc
from .tables import event_weights, run_weighs

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


def rejection(fpr, tpr) -> tuple[np.ndarray, np.ndarray]:
    """(ε_S, 1/ε_B) of a ROC (fpr = ε_B, tpr = ε_S) at its vertices with ε_B > 0: the curve in the
    HEP convention."""
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    keep = fpr > 0
    return tpr[keep], 1.0 / fpr[keep]


def _roc_axes(ax):
    """ROC axes in the HEP convention: signal efficiency ε_S across, background rejection 1/ε_B up on
    a log scale, the random classifier 1/ε_S dashed, the operating points ε_B = 1e-2, 1e-3, 1e-4 dotted
    (kept in view even where the test background is too small to reach them)."""
    ax.set_yscale("log")
    ax.set_xlabel(r"signal efficiency $\varepsilon_S$")
    ax.set_ylabel(r"background rejection $1/\varepsilon_B$")
    ax.set_xlim(0, 1)
    top = max(ax.get_ylim()[1], 2.0 / min(BACKGROUND_EFFICIENCIES))
    eps = np.geomspace(1.0 / top, 1.0, 200)
    ax.plot(eps, 1.0 / eps, color="0.6", lw=0.8, ls="--", label=r"random ($1/\varepsilon_S$)")
    for e in BACKGROUND_EFFICIENCIES:
        ax.axhline(1.0 / e, color="0.75", lw=0.8, ls=":")
        ax.text(1.01, 1.0 / e, rf"$\varepsilon_B = 10^{{{int(round(np.log10(e)))}}}$", ha="left", va="center",
                fontsize=6, color="0.45", transform=ax.get_yaxis_transform(), clip_on=False)
    ax.set_ylim(1.0, top)
    ax.grid(alpha=0.3)


def roc_best(runs, summary, signals=None):
    """ROC curves in the HEP convention (:func:`_roc_axes`), one panel per signal: for each model (seed
    group, :func:`tfp_anomaly.report.tables.seed_groups`) its best score on that signal by mean AUC,
    one curve per seed in the model's colour, labelled with AUC (± std over seeds where several)."""
    from .tables import SIGNAL_MEAN, seed_groups

    groups = seed_groups(runs)
    signals = list(signals or [s for s in dict.fromkeys(summary["signal"]) if s != SIGNAL_MEAN])
    fig, axes = panel_grid(len(signals), 3, 4.6, 3.8)
    for ax, signal in zip(axes, signals):
        rows = summary[summary["signal"] == signal]
        for k, (key, group) in enumerate(groups.items()):
            own = rows[rows["group"] == key]
            if own.empty:
                continue
            best = own.loc[own["AUC"].idxmax()]
            for j, run in enumerate(group["runs"]):
                fpr, tpr = roc(run.background[best["score"]], run.signals[signal][best["score"]],
                               event_weights(run, "background"), event_weights(run, signal))
                ax.plot(*rejection(fpr, tpr), color=f"C{k % 10}", lw=1.3 if j == 0 else 0.7,
                        label=_roc_label(group, best, run) if j == 0 else None)
        _roc_axes(ax)
        ax.set_title(f"{signal}: best score per model", fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


def _roc_label(group, best, run) -> str:
    spread = f" ± {best['AUC_std']:.3f}, {int(best['n_seeds'])} seeds" if best["n_seeds"] > 1 else ""
    return f"{group['label']}: {best['score']} (AUC {best['AUC']:.3f}{spread})" + (" (w)" if run_weighs(run) else "")


def roc_by_method(run, signals=None):
    """ROC curves (HEP convention, :func:`_roc_axes`) of every scoring method of one model, one panel
    per signal."""
    plt = _plt()
    signals = list(signals or run.signals)
    fig, axes = plt.subplots(1, len(signals), figsize=(5 * len(signals), 4.2), squeeze=False)
    for ax, signal in zip(axes[0], signals):
        for method in run.methods:
            fpr, tpr = roc(run.background[method], run.signals[signal][method],
                           event_weights(run, "background"), event_weights(run, signal))
            ax.plot(*rejection(fpr, tpr), lw=1.2, label=method)
        _roc_axes(ax)
        ax.set_title(f"{run.name}: {signal}" + (" (weighted)" if run_weighs(run) else ""), fontsize=9)
    axes[0][-1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
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
    weighted = ", event-weighted" if run_weighs(run) else ""
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


# --------------------------------------------------------------------------- the first screen

#: the figures of the first-screen heatmap: column of the seed-aggregated table → colour-bar label
GLANCE_METRICS = {"AUC": "AUC", "eff@1e-3": r"$\varepsilon_S$ at $\varepsilon_B = 10^{-3}$"}
#: inches: widest first-screen figure (1366-pixel screen at the report's 100 dpi), model-label column,
#: smallest cell width, row height without and with a "± over seeds" line
GLANCE_WIDTH, GLANCE_LABELS, GLANCE_CELL, GLANCE_ROW = 13.0, 2.3, 0.34, (0.24, 0.34)


def glance_heatmap(summary, metrics=GLANCE_METRICS, scores=None):
    """The report's first screen: for each figure of ``metrics`` (a row of panels) a heatmap of model
    (rows: seed groups, labelled type, prior and flow) × scoring method (columns), one panel per signal
    and one for the mean over signals (``summary``: :func:`tfp_anomaly.report.tables.over_seeds` of a
    table :func:`~tfp_anomaly.report.tables.with_signal_mean`). Cells give the value, and below it the
    standard deviation over seeds where a model has several; a black box marks the best model of each
    column, a red box the best cell of each panel; panels of one figure share the colour scale.
    ``scores`` orders the columns (default: as they first appear in ``summary``)."""
    import matplotlib.gridspec as gridspec

    from .tables import SIGNAL_MEAN

    signals = [s for s in sorted(summary["signal"].unique()) if s != SIGNAL_MEAN] + [SIGNAL_MEAN]
    summary = summary.assign(model=[_seeds_label(m, n) for m, n in zip(summary["model"], summary["n_seeds"])])
    models = list(dict.fromkeys(summary.sort_values("group_index", kind="stable")["model"]))
    scores = [s for s in scores or [] if s in set(summary["score"])] or list(dict.fromkeys(summary["score"]))
    seeded = bool((summary["n_seeds"] > 1).any())
    cell = max(GLANCE_CELL, (GLANCE_WIDTH - GLANCE_LABELS - 0.6) / (len(signals) * len(scores)))
    row = GLANCE_ROW[seeded]
    width = GLANCE_LABELS + cell * len(signals) * len(scores) + 0.6
    ticks = 0.065 * max(len(s) for s in scores) + 0.3
    height = len(metrics) * (row * len(models) + 0.45) + ticks + 0.45
    fig = _plt().figure(figsize=(width, height))
    grid = gridspec.GridSpec(len(metrics), len(signals) + 1, figure=fig, width_ratios=[1] * len(signals) + [0.06],
                             wspace=0.06, hspace=0.25)
    for i, (column, label) in enumerate(metrics.items()):
        finite = summary.loc[summary["score"].isin(scores), column].to_numpy(float)  # the shown cells
        low, high = np.nanmin(finite), np.nanmax(finite)
        pad = 0.0 if high > low else max(abs(high) * 0.05, 1e-3)  # one value: a range around it, one colour
        limits = low - pad, high + pad
        for j, signal in enumerate(signals):
            ax = fig.add_subplot(grid[i, j])
            _heatmap_panel(ax, summary[summary["signal"] == signal], column, models, scores, limits,
                           cbar_ax=fig.add_subplot(grid[i, -1]) if j == len(signals) - 1 else None,
                           label=label, first=j == 0, last=i == len(metrics) - 1)
            ax.set_title(_short(signal, 40), fontsize=8)
    spread = "; ± std over seeds" if seeded else ""
    fig.suptitle(f"Which model and score? AUC and " + r"$\varepsilon_S$ at $\varepsilon_B = 10^{-3}$" +
                 f"{spread}; black box: best model per score, red: best per panel", fontsize=9, y=0.995)
    return fig


def _seeds_label(model: str, n_seeds: int) -> str:
    return f"{model}, {n_seeds} seeds" if n_seeds > 1 else model


def _short(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n - 1] + "…"


def _heatmap_panel(ax, rows, column, models, scores, limits, cbar_ax, label, first, last):
    """One panel of :func:`glance_heatmap`: ``rows`` (one signal) pivoted to model × score."""
    import matplotlib.patches as patches
    import seaborn as sns

    values = rows.pivot_table(index="model", columns="score", values=column, aggfunc="first",
                              dropna=False).reindex(index=models, columns=scores)
    spread = rows.pivot_table(index="model", columns="score", values=f"{column}_std", aggfunc="first",
                              dropna=False).reindex(index=models, columns=scores)
    digits = 3 if ax.get_position().width * ax.figure.get_figwidth() / len(scores) > 0.45 else 2
    text = np.vectorize(lambda v, s: _cell_text(v, s, digits), otypes=[object])(values.to_numpy(float),
                                                                                 spread.to_numpy(float))
    size = 6.5 if len(scores) * len(models) < 200 else 5.5
    sns.heatmap(values, ax=ax, cmap="viridis", vmin=limits[0], vmax=limits[1], annot=text, fmt="",
                annot_kws={"fontsize": size}, linewidths=0.5, linecolor="white", cbar=cbar_ax is not None,
                cbar_ax=cbar_ax, cbar_kws={"label": label} if cbar_ax is not None else None,
                xticklabels=last, yticklabels=first)
    ax.set_facecolor("0.93")  # a score the model lacks
    ax.set_xlabel("")
    ax.set_ylabel(label if first else "", fontsize=8)
    ax.tick_params(labelsize=7, length=0)
    grid = values.to_numpy(float)
    for j in range(grid.shape[1]):
        if np.isfinite(grid[:, j]).any():
            ax.add_patch(patches.Rectangle((j, int(np.nanargmax(grid[:, j]))), 1, 1, fill=False, ec="black", lw=1.0))
    if np.isfinite(grid).any():
        i, j = np.unravel_index(int(np.nanargmax(grid)), grid.shape)
        ax.add_patch(patches.Rectangle((j, i), 1, 1, fill=False, ec="red", lw=2.2))


def _cell_text(value: float, std: float, digits: int = 2) -> str:
    """The value with ``digits`` decimals (one more below 0.1, two more below 0.01: small ε_S keep two
    significant digits), the spread over seeds below it with as many."""
    if not np.isfinite(value):
        return ""
    digits += int(abs(value) < 0.1) + int(abs(value) < 0.01 and value != 0)
    return f"{value:.{digits}f}" + (f"\n±{std:.{digits}f}" if np.isfinite(std) else "")


# --------------------------------------------------------------------------- what did it find?

#: axis labels of the observables a scored run may carry (``ScoredRun.observables``, energies in GeV:
#: scoring stores them so, :func:`tfp_anomaly.data.observables.compute`); others by name
OBSERVABLE_LABELS = {"HT": r"$H_T$ [GeV]", "MET": r"$E_T^{miss}$ [GeV]", "m_eff": r"$m_{eff}$ [GeV]",
                     "m_jj": r"$m_{jj}$ [GeV]", "n_jets": "number of jets", "n_b": "number of b-jets",
                     "n_e": "number of electrons", "n_mu": "number of muons", "n_lep": "number of leptons",
                     "n_g": "number of photons", "n_objects": "number of objects"}
#: an observable whose finite values are whole numbers spanning at most this many is a multiplicity:
#: one bin per integer
MAX_INTEGER_BINS = 40


def observable_bins(values) -> np.ndarray:
    """Bin edges for an observable: integer-centred unit bins for a multiplicity (whole numbers over
    at most :data:`MAX_INTEGER_BINS` values), else 30 bins from its 0.5 % to its 99.5 % quantile."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return np.linspace(0.0, 1.0, 41)
    low, high = finite.min(), finite.max()
    if np.all(finite == np.round(finite)) and high - low <= MAX_INTEGER_BINS:
        return np.arange(low - 0.5, high + 1.5)
    low, high = np.quantile(finite, [0.005, 0.995])
    return np.linspace(low, high if high > low else low + 1.0, 31)


def cut_passes(run, score: str, sample: str, background_efficiency: float) -> tuple[float, np.ndarray]:
    """(threshold, mask of the events of ``sample`` with ``score`` above it): the cut that keeps a
    fraction ``background_efficiency`` of the background (:func:`~tfp_anomaly.report.metrics.threshold_at`
    on the background scores, event-weighted where the run is)."""
    from .metrics import threshold_at

    threshold = threshold_at(run.background[score], background_efficiency, event_weights(run, "background"))
    scores = run.background[score] if sample == "background" else run.signals[sample][score]
    return threshold, np.asarray(scores) > threshold


def observables_at_cut(run, score: str, signal: str, background_efficiency: float = 1e-3):
    """What the cut finds: normalised step histograms of each physics observable of the run
    (``run.observables``), background (grey) against ``signal`` (red), before the cut on ``score`` at
    ε_B = ``background_efficiency`` (dashed) and after it (solid); event-weighted where the run is.
    The legend counts the events above the cut and their (weighted) fraction. Multiplicities get one bin
    per integer; a panel whose distributions span more than two decades has a log y axis."""
    samples = {"background": "0.3", signal: "C3"}
    names = [n for n in run.observables.get("background", {}) if n in run.observables.get(signal, {})]
    passes = {s: cut_passes(run, score, s, background_efficiency)[1] for s in samples}
    fig, axes = panel_grid(len(names), 4, 3.2, 2.5)
    for ax, name in zip(axes, names):
        values = {s: _observable(run, s, name, len(passes[s])) for s in samples}
        bins = observable_bins(np.concatenate(list(values.values())))
        heights = [_step(ax, values[s], event_weights(run, s), bins, colour, passes[s])
                   for s, colour in samples.items()]
        positive = np.concatenate(heights)
        positive = positive[positive > 0]
        if positive.size and positive.max() / positive.min() > 100:
            ax.set_yscale("log")
        ax.set_xlabel(OBSERVABLE_LABELS.get(name, name), fontsize=8)
        ax.set_ylabel("normalised", fontsize=7)
        ax.tick_params(labelsize=7)
    height = fig.get_figheight()
    fig.suptitle(f"{run.name}: {score}, cut at " + r"$\varepsilon_B$" + f" = {background_efficiency:g}", fontsize=9,
                 y=1 - 0.05 / height, va="top")
    fig.legend(handles=_cut_legend(run, samples, passes), loc="upper center", ncol=2, fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.25 / height))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / height))
    return fig


def _observable(run, sample: str, name: str, n: int) -> np.ndarray:
    values = np.asarray(run.observables[sample][name], np.float64).ravel()
    if len(values) != n:
        raise ValueError(f"run {run.name}, sample {sample}: observable {name} has {len(values)} values for "
                         f"{n} scored events")
    return values


def _step(ax, values, weights, bins, colour, passed) -> np.ndarray:
    """The normalised histograms of ``values`` before (dashed) and after the cut (solid, ``passed``);
    returns their bin heights. Values beyond the bins count in the edge bins; non-finite ones not at all."""
    heights = []
    for mask, style in ((np.ones(len(values), bool), "--"), (passed, "-")):
        mask = mask & np.isfinite(values)
        w = None if weights is None else np.asarray(weights, np.float64)[mask]
        if not mask.any() or (w is not None and not w.sum() > 0):
            continue
        h, _, _ = ax.hist(np.clip(values[mask], bins[0], bins[-1]), bins=bins, weights=w, density=True,
                          histtype="step", color=colour, ls=style, lw=1.2)
        heights.append(h)
    return np.concatenate(heights) if heights else np.zeros(0)


def _cut_legend(run, samples, passes) -> list:
    from matplotlib.lines import Line2D

    handles = []
    for sample, colour in samples.items():
        passed = passes[sample]
        w = event_weights(run, sample)
        fraction = passed.mean() if w is None else float(np.asarray(w)[passed].sum() / np.sum(w))
        what = r"$\varepsilon_B$" if sample == "background" else r"$\varepsilon_S$"
        handles += [Line2D([], [], color=colour, ls="--", label=f"{sample}: all {len(passed):,}"),
                    Line2D([], [], color=colour, ls="-", label=f"{sample}: {int(passed.sum()):,} above the cut "
                                                                f"({what} = {fraction:.2%})")]
    return handles
