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


def run_weighs(run) -> bool:
    """Whether a scored run's event weights change its figures (:func:`~.metrics.weighs` of any sample)."""
    from .metrics import weighs

    return any(weighs(w) for w in (getattr(run, "weights", None) or {}).values())


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


# --------------------------------------------------------------------------- seeds and models

#: the ``signal`` of the rows that average each run's figures over its signals (:func:`with_signal_mean`)
SIGNAL_MEAN = "mean over signals"

#: a flow spec longer than this is shown by its step counts (``iaf*4+reverse*3``)
FLOW_LABEL_CHARS = 24


def flow_label(spec) -> str:
    """A flow spec for a label: short ones as written (``planar*6``), long ones as the count of each
    step in order of appearance (``iaf, reverse, iaf, reverse, iaf`` → ``iaf*3+reverse*2``)."""
    import collections

    text = str(spec or "")
    if len(text) <= FLOW_LABEL_CHARS:
        return text
    counts = collections.Counter()
    for step in text.split(","):
        name, _, times = step.strip().partition("*")
        counts[name.strip()] += int(times) if times.strip().isdigit() else 1
    return "+".join(f"{name}*{n}" if n > 1 else name for name, n in counts.items())


def model_label(meta: dict) -> str:
    """The model type with its prior and flow: ``swae (prior ring)``, ``vae (flow planar*6)``, ``vae``."""
    parts = [f"prior {meta['prior']}" if meta.get("prior") else "",
             f"flow {flow_label(meta['flow'])}" if meta.get("flow") else ""]
    parts = [p for p in parts if p]
    kind = str(meta.get("type") or "model")
    return f"{kind} ({', '.join(parts)})" if parts else kind


def seed_key(run) -> str:
    """What the runs that differ only by their training seed share: ``meta["config_digest"]`` (the digest
    of the run configuration without ``training.seed``) and the samples they were scored on
    (``meta["background"]``, ``meta["files"]``: a run scored on other files is another comparison); a run
    without a digest is a group of its own."""
    import hashlib
    import json

    digest = run.meta.get("config_digest")
    if not digest:
        return f"run {run.name}"
    samples = json.dumps([run.meta.get("background"), run.meta.get("files")], sort_keys=True, default=str)
    return f"config {digest} samples {hashlib.sha256(samples.encode()).hexdigest()[:12]}"


def seed_groups(runs) -> dict[str, dict]:
    """``{key: {"label", "runs", "seeds"}}`` of the runs grouped by :func:`seed_key`, in order of first
    appearance; each group's runs sorted by ``meta["seed"]`` (None last). Only distinct seeds make a group:
    where a seed repeats (one run scored twice, a copy) or is unknown, each run of the key stays a group of
    its own, not a ± over seeds. The label is :func:`model_label` of the first run, with that run's name
    added where two groups would share it."""
    keyed: dict[str, list] = {}
    for run in runs:
        keyed.setdefault(seed_key(run), []).append(run)
    groups: dict[str, dict] = {}
    for key, members in keyed.items():
        seeds = [r.meta.get("seed") for r in members]
        if len(members) > 1 and (None in seeds or len(set(seeds)) < len(seeds)):
            groups.update({f"{key} run {r.name}": {"runs": [r]} for r in members})
        else:
            groups[key] = {"runs": sorted(members, key=lambda r: r.meta.get("seed") or 0)}
    for group in groups.values():
        group["seeds"] = [r.meta.get("seed") for r in group["runs"]]
        group["label"] = model_label(group["runs"][0].meta)
    labels = [g["label"] for g in groups.values()]
    for group in groups.values():
        if labels.count(group["label"]) > 1:
            group["label"] = f"{group['label']} · {group['runs'][0].name}"
    return groups


def figure_columns(table: pd.DataFrame) -> list[str]:
    """The figures of merit of a comparison table (``AUC``, ``eff@…``, ``SIC@…``), in table order."""
    return [c for c in table.columns if c == "AUC" or c.startswith(("eff@", "SIC@"))]


def _error_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c == "AUC_err" or c.startswith("eff_err@")]


def with_signal_mean(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (:func:`comparison_table`) with, for each model and score, one more row of signal
    :data:`SIGNAL_MEAN`: its figures and bootstrap errors averaged over the model's signals, a
    low-statistics flag where any signal has one, the fewest background events."""
    keys = ["model", "prior", "flow", "score"]
    spec = {c: "mean" for c in figure_columns(table) + _error_columns(table)}
    spec.update({c: "any" for c in table.columns if c.startswith("low_stats@") or c == "weighted"})
    spec.update({c: "min" for c in ("n_background", "n_eff_background") if c in table})
    mean = table.groupby(keys, sort=False, dropna=False).agg(spec).reset_index().assign(signal=SIGNAL_MEAN)
    return pd.concat([table, mean[[c for c in table.columns if c in mean]]], ignore_index=True)


def over_seeds(table: pd.DataFrame, runs) -> pd.DataFrame:
    """The comparison table aggregated over training seeds: one row per seed group (:func:`seed_groups`),
    score and signal, with ``model`` the group's label, ``group`` its key, ``runs`` its run names (in
    seed order), ``n_seeds`` how many runs have the row, ``group_index`` the group's place in ``runs``,
    and for each figure ``F`` the mean over seeds in ``F`` and the sample standard deviation over seeds
    (ddof = 1) in ``F_std`` (NaN for one seed). Bootstrap errors (``AUC_err``, ``eff_err@…``) are
    averaged; low-statistics flags are set where any seed has one. A group of one run gives that run's
    figures unchanged (``n_seeds`` 1). Rows are sorted by signal, then AUC (best first)."""
    groups = seed_groups(runs)
    owner = {run.name: key for key, group in groups.items() for run in group["runs"]}
    figures, errors = figure_columns(table), _error_columns(table)
    spec = {**{c: "mean" for c in figures + errors},
            **{c + "_std": (c, lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else np.nan) for c in figures},
            **{c: (c, "any") for c in table.columns if c.startswith("low_stats@") or c == "weighted"},
            **{c: (c, "min") for c in ("n_background", "n_eff_background") if c in table},
            "n_seeds": ("model", "size")}
    spec = {name: (how if isinstance(how, tuple) else (name, how)) for name, how in spec.items()}
    keyed = table.assign(group=table["model"].map(owner))
    out = keyed.groupby(["group", "score", "signal"], sort=False).agg(**spec).reset_index()
    first = {key: group["runs"][0] for key, group in groups.items()}
    out.insert(0, "model", out["group"].map({key: g["label"] for key, g in groups.items()}))
    out.insert(1, "prior", out["group"].map(lambda k: first[k].meta.get("prior") or ""))
    out.insert(2, "flow", out["group"].map(lambda k: first[k].meta.get("flow") or ""))
    out["runs"] = out["group"].map({key: ", ".join(r.name for r in g["runs"]) for key, g in groups.items()})
    out["group_index"] = out["group"].map({key: k for k, key in enumerate(groups)})
    return out.sort_values(["signal", "AUC", "group_index"], ascending=[True, False, True],
                           kind="stable").reset_index(drop=True)


#: scoring methods shown on the report's first screen (more when the models' best scores need more)
GLANCE_SCORES = 6


def glance_scores(summary: pd.DataFrame, limit: int = GLANCE_SCORES) -> list[str]:
    """The scoring methods of the first screen, best first: each model's best score by mean AUC over the
    signals, then the others by their best mean AUC over the models, ``limit`` in all (or as many as the
    models' best scores take). ``summary``: :func:`over_seeds` of a table :func:`with_signal_mean`."""
    mean = summary[summary["signal"] == SIGNAL_MEAN]
    by_model = mean.loc[mean.groupby("group", sort=False)["AUC"].idxmax(), "score"]
    ranked = mean.groupby("score")["AUC"].max().sort_values(ascending=False, kind="stable").index
    chosen = list(dict.fromkeys(s for s in ranked if s in set(by_model)))
    return chosen + [s for s in ranked if s not in chosen][:max(0, limit - len(chosen))]


def best_overall(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of :data:`SIGNAL_MEAN` of :func:`over_seeds` (of a table :func:`with_signal_mean`),
    sorted by mean AUC, best first: which model and score work best over all signals."""
    rows = summary[summary["signal"] == SIGNAL_MEAN]
    return rows.sort_values("AUC", ascending=False, kind="stable").reset_index(drop=True)
