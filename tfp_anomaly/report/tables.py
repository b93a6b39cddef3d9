"""Comparison tables (pandas): models × priors × scores × signals, the Dark Machines challenge rows, and
a side-by-side with a published results CSV.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import BACKGROUND_EFFICIENCIES, figures_of_merit, format_efficiency

#: the Dark Machines challenge results columns (arXiv:2105.14027, the challenge's submission format)
DARKMACHINES_COLUMNS = ["Signal", "Model", "Chan", "AUC", "1e-2", "1e-3", "1e-4"]

#: columns that describe a row (the rest are figures)
KEYS = ["model", "prior", "flow", "score", "signal"]


def event_weights(run, sample: str):
    """The per-event weights of ``sample`` (``"background"`` or a signal name) in a scored run, or
    None when the run is unweighted (``run.weights`` missing, None or without that sample)."""
    return (getattr(run, "weights", None) or {}).get(sample)


def comparison_table(runs, efficiencies=BACKGROUND_EFFICIENCIES, bootstrap: int = 100, seed: int = 0) -> pd.DataFrame:
    """One row per (run, scoring method, signal) with :func:`figures_of_merit`; sorted by signal, then
    AUC (best first). A run with event weights (``run.weights``: ``{"background": (N_B,), signal:
    (N_S,)}``) gets weighted figures; the column ``weighted`` says which rows are, ``n_eff_background``
    gives Kish's effective number of background events. Bad weights are a ``ValueError`` naming the
    run and the signal."""
    import warnings

    from .metrics import LowStatisticsWarning

    rows, low = [], set()
    for run in runs:
        background_weights = event_weights(run, "background")
        for signal, scores in run.signals.items():
            signal_weights = event_weights(run, signal)
            for method in run.methods:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", LowStatisticsWarning)
                    try:
                        fom = figures_of_merit(run.background[method], scores[method], efficiencies, bootstrap, seed,
                                               background_weights=background_weights, signal_weights=signal_weights)
                    except ValueError as error:
                        raise ValueError(f"run {run.name}, signal {signal}, score {method}: {error}") from None
                low.update(str(w.message).split(":")[0] for w in caught)
                rows.append({"model": run.name, "prior": run.meta.get("prior") or "", "flow": run.meta.get("flow") or "",
                             "score": method, "signal": signal, **fom})
    for message in sorted(low):  # once per operating point, not once per row
        warnings.warn(f"{message}: fewer than 10 background test events above the cut; those ε_S are "
                      "low-statistics estimates (flagged low_stats)", LowStatisticsWarning, stacklevel=2)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["signal", "AUC"], ascending=[True, False], kind="stable").reset_index(drop=True)


def best_per_model(table: pd.DataFrame) -> pd.DataFrame:
    """For each model and signal, the scoring method with the highest AUC."""
    index = table.groupby(["model", "signal"], sort=False)["AUC"].idxmax()
    return table.loc[index].sort_values(["signal", "AUC"], ascending=[True, False]).reset_index(drop=True)


def summary_table(table: pd.DataFrame, efficiencies=BACKGROUND_EFFICIENCIES) -> pd.DataFrame:
    """The compact view printed by the demo: model, score, signal, AUC ± err, ε_S at each ε_B."""
    cols = ["model", "score", "signal", "AUC", "AUC_err"] + [f"eff@{format_efficiency(e)}" for e in efficiencies]
    return table[cols]


def summary_text(table: pd.DataFrame) -> str:
    """:func:`summary_table` of the best score per model and signal, as printed by the commands."""
    return summary_table(best_per_model(table)).to_string(index=False, float_format=lambda v: f"{v:.3g}")


def darkmachines_rows(table: pd.DataFrame, channel: str = "sample") -> pd.DataFrame:
    """Rows ``Signal,Model,Chan,AUC,1e-2,1e-3,1e-4`` (Model = model name and score, ``_``-joined)."""
    model = (table["model"].str.replace(r"[\s,]+", "_", regex=True) + "_" + table["score"])
    out = pd.DataFrame({"Signal": table["signal"], "Model": model, "Chan": str(channel), "AUC": table["AUC"]})
    for e in BACKGROUND_EFFICIENCIES:
        key = format_efficiency(e)
        out[key] = table[f"eff@{key}"] if f"eff@{key}" in table else np.nan
    return out[DARKMACHINES_COLUMNS]


def read_published(path) -> pd.DataFrame:
    """A results CSV in the Dark Machines format, checked column by column."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"published results file not found: {path}")
    table = pd.read_csv(path, dtype={"Chan": str})
    missing = [c for c in DARKMACHINES_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(DARKMACHINES_COLUMNS)}")
    for column in DARKMACHINES_COLUMNS[3:]:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            raise ValueError(f"{path}: row {int(bad[0]) + 2}, column {column}: not a number: {table[column].iloc[bad[0]]!r}")
        table[column] = values
    return table


def versus_published(ours: pd.DataFrame, published: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(table, note). Where signal and channel match, our rows beside the published ones (suffixes
    ``_ours`` / ``_published``); with nothing in common, our best row per signal beside the published
    per-model medians over all their signals and channels, which the note says are not like for like."""
    keys = ["Signal", "Chan"]
    common = ours.merge(published[keys].drop_duplicates(), on=keys)
    if len(common):
        merged = common.merge(published, on=keys, suffixes=("_ours", "_published"))
        return merged, f"{len(common.drop_duplicates(keys))} signal/channel pair(s) in common with the published table."
    medians = published.groupby("Model")[DARKMACHINES_COLUMNS[3:]].median().reset_index()
    medians.insert(0, "Signal", "median over published signals")
    medians.insert(2, "Chan", "all")
    best = ours.loc[ours.groupby("Signal")["AUC"].idxmax()]
    note = ("No signal/channel in common with the published table: shown are our best row per signal and "
            "the published per-model medians over their signals and channels (context, not a like-for-like "
            "comparison: different signals and backgrounds).")
    return pd.concat([best.assign(source="ours"), medians.assign(source="published")], ignore_index=True), note
