"""Write the comparison report: ``report.html`` (self-contained: images embedded as data URIs, no
script, no external style sheet: it opens offline), ``report.md`` (with the PNGs beside it),
``comparison.csv`` (every figure of merit, one row per run), ``comparison_over_seeds.csv`` (the same
aggregated over training seeds, with a row per model and score averaged over the signals),
``darkmachines.csv`` (challenge rows) and, when a published results CSV is given,
``versus_published.csv``. Every file is written atomically.

The page reads top down: the first screen is a heatmap of AUC and ε_S at ε_B = 1e-3, model × score,
per signal and averaged (:func:`~tfp_anomaly.report.plots.glance_heatmap`); then the ROC curves of
each model's best score (HEP convention); then "what did it find?", the physics observables of the
events the best score selects (:func:`~tfp_anomaly.report.plots.observables_at_cut`); then the figures
of each model and, collapsed at the end, the tables.
"""
from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path

import pandas as pd

from .. import __version__
from ..atomic import atomic_path
from . import plots, styles, tables
from .metrics import BACKGROUND_EFFICIENCIES, MIN_BACKGROUND_ABOVE, format_efficiency

STYLE = """body{font-family:sans-serif;max-width:1320px;margin:0.4em auto;padding:0 1em;color:#222}
h1{font-size:1.35em;margin:0.2em 0}h2{border-bottom:1px solid #ccc;margin-top:1.5em}
table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#eee}img{max-width:100%;margin:0.5em 0;border:1px solid #eee}
img.glance{display:block;max-height:calc(100vh - 75px);width:auto;height:auto;margin:0.2em 0;border:none}
details{margin:0.5em 0}summary{cursor:pointer;font-weight:bold}.note{color:#555;font-size:13px;margin:0.2em 0}"""

#: the background efficiency of the cut whose selected events "what did it find?" shows
FOUND_EFFICIENCY = 1e-3


def write_report(runs, out_dir, published=None, channel: str = "sample", bootstrap: int = 100, seed: int = 0,
                 title: str = "tfp-anomaly report", style: str = "plain") -> dict:
    """Compute the comparison table of ``runs`` (:class:`~.results.ScoredRun`) and write every output
    into ``out_dir``, the figures in ``style`` (:data:`~tfp_anomaly.report.styles.STYLES`: ``plain``,
    ``atlas``, ``cms``); returns ``{"table": DataFrame, "summary": DataFrame over seeds, "paths": {...}}``."""
    styles.lookup(style, "style")  # an unknown style or a missing mplhep fails before the slow work
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = unique_names(list(runs))
    table = tables.comparison_table(runs, bootstrap=bootstrap, seed=seed)
    if table.empty:
        raise ValueError("nothing to report: the runs have no signal scores")
    summary = tables.over_seeds(tables.with_signal_mean(table), runs)
    paths = {"comparison.csv": _csv(table, out / "comparison.csv"),
             "comparison_over_seeds.csv": _csv(summary, out / "comparison_over_seeds.csv")}
    challenge = tables.darkmachines_rows(table, channel)
    paths["darkmachines.csv"] = _csv(challenge, out / "darkmachines.csv")
    versus = versus_note = None
    if published is not None:
        versus, versus_note = tables.versus_published(challenge, tables.read_published(published))
        paths["versus_published.csv"] = _csv(versus, out / "versus_published.csv")
    with styles.style_context(style):
        parts = _figures(runs, summary)
    for name, data in _all_figures(parts).items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(data)
    sections = _sections(runs, table, summary, versus, versus_note)
    paths["report.html"] = _write_text(out / "report.html", _html(title, summary, parts, sections))
    paths["report.md"] = _write_text(out / "report.md", _markdown(title, summary, parts, sections))
    return {"table": table, "summary": summary, "paths": paths}


def unique_names(runs) -> list:
    """The runs, renamed where two share a name (two searches' ``best``): the name gets its run
    directory's parent folder (``search_a/best``), or a number when there is none."""
    import collections
    import dataclasses

    counts = collections.Counter(r.name for r in runs)
    renamed, seen = [], collections.Counter()
    for run in runs:
        if counts[run.name] > 1:
            seen[run.name] += 1
            parent = Path(run.meta.get("run_dir", "")).parent.name
            run = dataclasses.replace(run, name=f"{parent}/{run.name}" if parent else f"{run.name} #{seen[run.name]}")
        renamed.append(run)
    if len({r.name for r in renamed}) < len(renamed):  # parents alike too: number them
        renamed = [dataclasses.replace(r, name=f"{r.name} #{k}") for k, r in enumerate(renamed, 1)]
    return renamed


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


class Part:
    """One part of the page: a heading, a note, figures ``{file name: PNG bytes}``, and whether the
    figures sit in collapsed ``<details>`` blocks (``groups``: summary → file names)."""

    def __init__(self, heading: str, note: str = "", figures: dict | None = None, groups: dict | None = None):
        self.heading, self.note, self.figures, self.groups = heading, note, figures or {}, groups


def _figures(runs, summary) -> list[Part]:
    """The figure parts of the page, in order: the first screen, ROC curves, what the best score
    finds, the figures of each model, the training curves."""
    methods = list(dict.fromkeys(m for run in runs for m in run.methods))
    shown = tables.glance_scores(summary)
    heatmap = plots.glance_heatmap(summary, scores=[m for m in methods if m in shown])
    parts = [Part("", _glance_note(summary, len(shown), len(methods)), {"heatmap.png": plots.png(heatmap, dpi=100)}),
             Part("ROC curves", _roc_note(summary), {"roc_best.png": plots.png(plots.roc_best(runs, summary))}),
             _found(runs, summary), _per_model(runs)]
    curves = plots.training_curves(runs)
    if curves is not None:
        parts.append(Part("Training", "Training and validation loss per epoch.",
                          {"training_curves.png": plots.png(curves)}))
    return parts


def _all_figures(parts) -> dict[str, bytes]:
    return {name: data for part in parts for name, data in part.figures.items()}


def _over_seeds(value: float, std: float, n_seeds: int, digits: int = 3) -> str:
    """``0.912 ± 0.004 over 3 seeds``, or ``0.912`` for one seed."""
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f} over {n_seeds} seeds" if n_seeds > 1 else "")


def _glance_note(summary, shown: int, scores: int) -> str:
    best = tables.best_overall(summary).iloc[0]
    seeds = int(summary["n_seeds"].max())
    note = (f"Best over all signals: {best['model']} with the {best['score']} score, mean AUC "
            f"{_over_seeds(best['AUC'], best['AUC_std'], int(best['n_seeds']))}, ε_S = "
            f"{_over_seeds(best['eff@1e-3'], best['eff@1e-3_std'], int(best['n_seeds']))} at ε_B = 1e-3. ")
    note += ("Cells: mean over seeds, ± the standard deviation over seeds (runs that differ only by "
             "training.seed); " if seeds > 1 else "Cells: one run per model; ")
    if shown < scores:
        note += (f"Columns: {shown} of the {scores} scores, each model's best by mean AUC and the next best (every "
                 "score is in the tables at the end); ")
    return note + "black box: best model for each score; red box: best cell of the panel; grey: score not computed."


def _roc_note(summary) -> str:
    return ("Signal efficiency ε_S against background rejection 1/ε_B (log scale) for each model's best score "
            "on each signal; dotted lines at ε_B = 1e-2, 1e-3, 1e-4, dashed the random classifier 1/ε_S. "
            "Models with several seeds: one curve per seed, the thin ones the other seeds.")


def _found(runs, summary) -> Part:
    """"What did it find?": the observables of the best score's run (the first seed of the best model by
    mean AUC over the signals that has observables) before and after the cut at :data:`FOUND_EFFICIENCY`."""
    heading = "What did it find?"
    groups = tables.seed_groups(runs)
    ranked = tables.best_overall(summary)
    for rank, row in ranked.iterrows():
        run = groups[row["group"]]["runs"][0]
        if _shared_observables(run):
            break
    else:
        return Part(heading, "No run carries physics observables (runs on feature tables, or scores written "
                             "before observables were kept), so there are no distributions to show.")
    threshold, passed = plots.cut_passes(run, row["score"], "background", FOUND_EFFICIENCY)
    weighted = ", event-weighted" if tables.run_weighs(run) else ""  # equal weights are no weighting
    note = (f"The best score by mean AUC over the signals{'' if rank == 0 else ' among the runs with observables'}: "
            f"{row['model']}, {row['score']} (run {run.name}). Cut at ε_B = {FOUND_EFFICIENCY:g} on the background "
            f"scores{weighted}: score > {threshold:.4g}, {int(passed.sum()):,} of {len(passed):,} background events "
            "above it. Normalised distributions before (dashed) and after (solid) the cut.")
    figures = {f"observables_{k}_{_slug(signal)}.png": plots.png(plots.observables_at_cut(run, row["score"], signal,
                                                                                            FOUND_EFFICIENCY))
               for k, signal in enumerate(run.signals) if signal in _shared_observables(run)}
    return Part(heading, note, figures)


def _shared_observables(run) -> list[str]:
    """The signals of ``run`` whose observables can be drawn against the background's: both samples carry
    at least one observable of one name (a background given as model input carries none)."""
    background = set(run.observables.get("background", {}))
    return [s for s in run.signals if background & set(run.observables.get(s, {}))]


def _per_model(runs) -> Part:
    """Each model's ROC curves of every score, score distributions and latent pair plot, collapsed."""
    figures, groups = {}, {}
    for k, run in enumerate(runs):
        names = [f"roc_methods_{k}_{_slug(run.name)}.png", f"scores_{k}_{_slug(run.name)}.png"]
        figures[names[0]] = plots.png(plots.roc_by_method(run))
        figures[names[1]] = plots.png(plots.score_histograms(run))
        if run.latent:
            names.append(f"latent_{k}_{_slug(run.name)}.png")
            figures[names[-1]] = plots.png(plots.latent_pairs(run))
        groups[f"{run.name}: {tables.model_label(run.meta)}"] = names
    return Part("Figures per model", "Every score's ROC curve, the score distributions and the latent pair plot "
                "of each run (click to open).", figures, groups)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(text)).strip("_")[:40]


def _sections(runs, table, summary, versus, versus_note) -> list[tuple[str, str, pd.DataFrame]]:
    """The tables, (heading, note, table) in report order."""
    eff = [format_efficiency(e) for e in BACKGROUND_EFFICIENCIES]
    seeded = bool((summary["n_seeds"] > 1).any())
    sections = [("Best score per model and signal", _table_note(table, eff, seeded),
                 _display_summary(tables.best_per_model(summary), eff))]
    if seeded:
        sections.append(("Every model × score × signal, over seeds", "Mean ± standard deviation over the "
                         "seeds of each model (comparison_over_seeds.csv).", _display_summary(summary, eff)))
    sections += [("Models", "", _models(runs)),
                 *_diagnostics_section(runs),
                 ("Every model × score × signal", "One row per run; ± over bootstrap resamples.", _display(table, eff)),
                 ("Dark Machines challenge format", "Rows Signal,Model,Chan,AUC,1e-2,1e-3,1e-4 (darkmachines.csv).",
                  tables.darkmachines_rows(table))]
    if versus is not None:
        sections.append(("Against the published results", versus_note, versus))
    return sections


def _table_note(table, eff, seeded: bool) -> str:
    low = [e for e in eff if table[f"low_stats@{e}"].any()]
    n_background = int(table["n_background"].min())
    note = (f"Background test events: {n_background:,}. ε_S at ε_B from the interpolated ROC; ± are standard "
            "deviations over bootstrap resamples" + (", or over seeds where a model has several" if seeded else "")
            + f". SIC = ε_S/√ε_B. Rows '{tables.SIGNAL_MEAN}' average each run's figures over its signals.")
    # weights that weigh: equal weights (a weighted format's 1s) leave N_eff = N and every figure as it was
    weighing = table["weighted"] & (table["n_eff_background"] < table["n_background"]) if "weighted" in table else None
    if weighing is not None and weighing.any():
        which = "every row" if weighing.all() else "the rows marked weighted in comparison.csv"
        note += (f" Event-weighted figures for {which}: ε_B and ε_S are fractions of the summed event weights; "
                 "low statistics count the effective (Kish) background events (Σw)²/Σw².")
    if low:
        note += (f" Low statistics: at ε_B = {', '.join(low)} fewer than {MIN_BACKGROUND_ABOVE} background events "
                 "lie above the cut; those figures are rough.")
    return note


def _display_summary(summary, eff) -> pd.DataFrame:
    """The seed-aggregated table for reading: mean ± std over seeds where a model has several, else
    ± the bootstrap error."""
    out = summary[["model", "score", "signal"]].copy()
    out["AUC"] = [_with_error(r, "AUC", "AUC_err", "{:.3f}") for _, r in summary.iterrows()]
    for e in eff:
        flag = summary[f"low_stats@{e}"].map({True: " †", False: ""})
        out[f"ε_S@{e}"] = [_with_error(r, f"eff@{e}", f"eff_err@{e}", "{:.3g}") for _, r in summary.iterrows()] + flag
    out[f"SIC@{eff[0]}"] = summary[f"SIC@{eff[0]}"].map(lambda v: f"{v:.2f}")
    return out


def _with_error(row, column: str, bootstrap: str, fmt: str) -> str:
    if row["n_seeds"] > 1:
        return f"{fmt.format(row[column])} ± {fmt.format(row[column + '_std'])} over {int(row['n_seeds'])} seeds"
    return f"{fmt.format(row[column])} ± {row[bootstrap]:.2g}"


def _display(table, eff) -> pd.DataFrame:
    out = table[["model", "score", "signal"]].copy()
    out["AUC"] = [f"{a:.3f} ± {e:.3f}" for a, e in zip(table["AUC"], table["AUC_err"])]
    for e in eff:
        flag = table[f"low_stats@{e}"].map({True: " †", False: ""})
        out[f"ε_S@{e}"] = [f"{v:.3g} ± {s:.2g}" for v, s in zip(table[f"eff@{e}"], table[f"eff_err@{e}"])] + flag
    out[f"SIC@{eff[0]}"] = table[f"SIC@{eff[0]}"].map(lambda v: f"{v:.2f}")
    return out


def _models(runs) -> pd.DataFrame:
    keys = ("type", "prior", "flow", "seed", "ensemble", "parameters", "epochs", "train_events")
    return pd.DataFrame([{"model": r.name, "label": tables.model_label(r.meta), **{k: r.meta.get(k, "") for k in keys}}
                         for r in runs])


def _pm(diagnostics: dict, key: str, digits: int) -> str:
    value, std = diagnostics.get(key), diagnostics.get(f"{key}_std")
    if value is None:
        return ""
    return f"{value:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def _diagnostics_section(runs) -> list:
    """The VAEs' latent diagnostics (:mod:`tfp_anomaly.diagnostics`), when any run has them."""
    rows = []
    for run in runs:
        d = run.meta.get("diagnostics")
        if not d:
            continue
        active = d["active_units"]
        rows.append({"model": run.name, "active units": f"{_pm(d, 'active_units', 1)} / {d['latent_dim']}",
                     "collapsed": "yes" if active < d["latent_dim"] / 2 else "no", "KL (nats)": _pm(d, "kl", 2),
                     "ELBO (nats)": _pm(d, "elbo", 2), f"IWAE K={d['iwae_samples']} (nats)": _pm(d, "iwae", 2),
                     "KL per dimension": " ".join(f"{v:.2f}" for v in d["kl_per_dim"]),
                     "likelihood": "yes" if d.get("likelihood") else "no (mse: not in nats)"})
    if not rows:
        return []
    note = ("On the validation background, per event. Active units: latent dimensions with Cov_x E_q[z_i] > 0.01 "
            "(Burda et al. 2016); collapsed: fewer than half active, so the latent scores carry little "
            "information. ELBO and IWAE are comparable between models with the same likelihood "
            "reconstruction; a flow posterior earns its place when it raises the IWAE. ± over ensemble members.")
    return [("Latent diagnostics", note, pd.DataFrame(rows))]


def _html(title, summary, parts, sections) -> str:
    """The page: title, the first-screen heatmap, the figure parts, the tables collapsed at the end."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    glance, *rest = parts
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
           f"<p class='note'>tfp-anomaly {__version__}, {stamp}. {html.escape(glance.note)}</p>",
           _img("heatmap.png", glance.figures["heatmap.png"], "id='heatmap' class='glance'")]
    for part in rest:
        out.append(f"<h2>{html.escape(part.heading)}</h2>")
        if part.note:
            out.append(f"<p class='note'>{html.escape(part.note)}</p>")
        for summary_text, names in (part.groups or {"": list(part.figures)}).items():
            images = "".join(_img(name, part.figures[name]) for name in names)
            out.append(f"<details><summary>{html.escape(summary_text)}</summary>{images}</details>"
                       if part.groups else images)
    out.append("<h2>Tables</h2><p class='note'>† marks a low-statistics operating point. Click a title to open.</p>")
    for heading, note, frame in sections:
        body = (f"<p class='note'>{html.escape(note)}</p>" if note else "") + \
            frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
        out.append(f"<details><summary>{html.escape(heading)}</summary>{body}</details>")
    out.append("</body></html>")
    return "\n".join(out)


def _img(name: str, data: bytes, attributes: str = "") -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f"<img alt='{html.escape(name[:-4])}' src='{uri}' {attributes}>"


def _markdown(title, summary, parts, sections) -> str:
    glance, *rest = parts
    lines = [f"# {title}", "", glance.note, "", "![heatmap](heatmap.png)", ""]
    for part in rest:
        lines += [f"## {part.heading}", ""] + ([part.note, ""] if part.note else [])
        for summary_text, names in (part.groups or {"": list(part.figures)}).items():
            lines += ([f"### {summary_text}", ""] if summary_text else []) + [f"![{n[:-4]}]({n})" for n in names] + [""]
    lines += ["## Tables", ""]
    for heading, note, frame in sections:
        lines += [f"### {heading}", ""] + ([note, ""] if note else []) + [markdown_table(frame), ""]
    return "\n".join(lines) + "\n"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (numbers to 4 significant digits)."""
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule] + body)
