"""The search's report section: the best trials and the objective against each hyper-parameter."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from tfp_anomaly.atomic import atomic_path
from tfp_anomaly.report import plots
from tfp_anomaly.report.document import STYLE

#: trials shown in the table
BEST_ROWS = 10


def objective_plots(table, objective: str):
    """One panel per hyper-parameter: the objective of every completed trial against its value."""
    done = table[table["objective"].notna()]
    names = [c for c in table.columns if c not in ("trial_id", "status", "objective")]
    if done.empty or not names:
        return None
    fig, axes = plots.panel_grid(len(names), 3, 4.2, 3.2)
    for ax, name in zip(axes, names):
        values = done[name].astype(str) if done[name].dtype == object else done[name]
        ax.scatter(values, done["objective"], s=18)
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel(objective, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_search_report(table, objective: str, path: Path) -> Path:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>search</title><style>{STYLE}</style></head>"
             f"<body><h1>Hyper-parameter search</h1><p class='note'>{len(table)} trials; objective "
             f"{html.escape(objective)}.</p><h2>Best trials</h2>",
             table.head(BEST_ROWS).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)]
    figure = objective_plots(table, objective)
    if figure is not None:
        uri = "data:image/png;base64," + base64.b64encode(plots.png(figure)).decode("ascii")
        parts.append(f"<h2>Objective against each hyper-parameter</h2><img alt='objective' src='{uri}'>")
    parts.append("</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path
