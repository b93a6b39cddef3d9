"""Write the comparison report: ``report.html`` (self-contained: images embedded as data URIs, no
script, no external style sheet: it opens offline), ``report.md`` (with the PNGs beside it),
``comparison.csv`` (every figure of merit), ``darkmachines.csv`` (challenge rows) and, when a published
results CSV is given, ``versus_published.csv``. Every file is written atomically.
"""
from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path

import pandas as pd

from .. import __version__
from ..atomic import atomic_path
from . import plots, tables
from .metrics import BACKGROUND_EFFICIENCIES, MIN_BACKGROUND_ABOVE, format_efficiency

STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#eee}img{max-width:100%;margin:0.5em 0;border:1px solid #eee}h2{border-bottom:1px solid #ccc}
.note{color:#555;font-size:13px}"""


def write_report(runs, out_dir, published=None, channel: str = "sample", bootstrap: int = 100, seed: int = 0,
                 title: str = "tfp-anomaly report") -> dict:
    """Compute the comparison table of ``runs`` (:class:`~.results.ScoredRun`) and write every output
    into ``out_dir``; returns ``{"table": DataFrame, "paths": {...}}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = unique_names(list(runs))
    table = tables.comparison_table(runs, bootstrap=bootstrap, seed=seed)
    if table.empty:
        raise ValueError("nothing to report: the runs have no signal scores")
    paths = {"comparison.csv": _csv(table, out / "comparison.csv")}
    challenge = tables.darkmachines_rows(table, channel)
    paths["darkmachines.csv"] = _csv(challenge, out / "darkmachines.csv")
    versus = None
    if published is not None:
        versus, versus_note = tables.versus_published(challenge, tables.read_published(published))
        paths["versus_published.csv"] = _csv(versus, out / "versus_published.csv")
    figures = _figures(runs, table)
    for name, data in figures.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(data)
    sections = _sections(runs, table, versus, versus_note if versus is not None else None)
    paths["report.html"] = _write_text(out / "report.html", _html(title, sections, figures))
    paths["report.md"] = _write_text(out / "report.md", _markdown(title, sections, figures))
    return {"table": table, "paths": paths}


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


def _figures(runs, table) -> dict[str, bytes]:
    """{file name: PNG bytes}, in report order."""
    figures = {}
    for k, signal in enumerate(sorted(table["signal"].unique())):
        figures[f"roc_{k}_{_slug(signal)}.png"] = plots.png(plots.roc_by_signal(runs, table, signal))
    for k, run in enumerate(runs):
        figures[f"roc_methods_{k}_{_slug(run.name)}.png"] = plots.png(plots.roc_by_method(run))
        figures[f"scores_{k}_{_slug(run.name)}.png"] = plots.png(plots.score_histograms(run))
        if run.latent:
            figures[f"latent_{k}_{_slug(run.name)}.png"] = plots.png(plots.latent_pairs(run))
    curves = plots.training_curves(runs)
    if curves is not None:
        figures["training_curves.png"] = plots.png(curves)
    return figures


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(text)).strip("_")[:40]


def _sections(runs, table, versus, versus_note) -> list[tuple[str, str, pd.DataFrame | None]]:
    """(heading, note, table) in report order."""
    eff = [format_efficiency(e) for e in BACKGROUND_EFFICIENCIES]
    low = [e for e in eff if table[f"low_stats@{e}"].any()]
    n_background = int(table["n_background"].min())
    note = (f"Background test events: {n_background:,}. ε_S at ε_B from the interpolated ROC; ± are standard "
            "deviations over bootstrap resamples. SIC = ε_S/√ε_B.")
    if "weighted" in table and table["weighted"].any():
        which = "every row" if table["weighted"].all() else "the rows marked weighted in comparison.csv"
        note += (f" Event-weighted figures for {which}: ε_B and ε_S are fractions of the summed event weights; "
                 "low statistics count the effective (Kish) background events (Σw)²/Σw².")
    if low:
        note += (f" Low statistics: at ε_B = {', '.join(low)} fewer than {MIN_BACKGROUND_ABOVE} background events "
                 "lie above the cut; those figures are rough.")
    best = tables.best_per_model(table)
    sections = [("Best score per model and signal", note, _display(best, eff)),
                ("Models", "", _models(runs)),
                *_diagnostics_section(runs),
                ("Every model × score × signal", "", _display(table, eff)),
                ("Dark Machines challenge format", "Rows Signal,Model,Chan,AUC,1e-2,1e-3,1e-4 (darkmachines.csv).",
                 tables.darkmachines_rows(table))]
    if versus is not None:
        sections.append(("Against the published results", versus_note, versus))
    return sections


def _display(table, eff) -> pd.DataFrame:
    out = table[["model", "score", "signal"]].copy()
    out["AUC"] = [f"{a:.3f} ± {e:.3f}" for a, e in zip(table["AUC"], table["AUC_err"])]
    for e in eff:
        flag = table[f"low_stats@{e}"].map({True: " †", False: ""})
        out[f"ε_S@{e}"] = [f"{v:.3g} ± {s:.2g}" for v, s in zip(table[f"eff@{e}"], table[f"eff_err@{e}"])] + flag
    out[f"SIC@{eff[0]}"] = table[f"SIC@{eff[0]}"].map(lambda v: f"{v:.2f}")
    return out


def _models(runs) -> pd.DataFrame:
    keys = ("type", "prior", "flow", "ensemble", "parameters", "epochs", "train_events")
    return pd.DataFrame([{"model": r.name, **{k: r.meta.get(k, "") for k in keys}} for r in runs])


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


def _html(title, sections, figures) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
             f"<p class='note'>tfp-anomaly {__version__}, {stamp}. † marks a low-statistics operating point.</p>"]
    for heading, note, frame in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if note:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
        parts.append(frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
    parts.append("<h2>Figures</h2>")
    for name, data in figures.items():
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        parts.append(f"<h3>{html.escape(name[:-4])}</h3><img alt='{html.escape(name)}' src='{uri}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _markdown(title, sections, figures) -> str:
    lines = [f"# {title}", ""]
    for heading, note, frame in sections:
        lines += [f"## {heading}", ""] + ([note, ""] if note else []) + [markdown_table(frame), ""]
    lines += ["## Figures", ""] + [f"![{name[:-4]}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (numbers to 4 significant digits)."""
    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule] + body)
