"""The comparison report: figures of merit (:mod:`.metrics`), tables (:mod:`.tables`), plots
(:mod:`.plots`), the scores file of a run (:mod:`.results`) and the HTML/Markdown/CSV writer
(:mod:`.document`)."""
from .document import write_report
from .metrics import BACKGROUND_EFFICIENCIES, auc, efficiency_at, figures_of_merit, roc, threshold_at
from .results import ScoredRun
from .tables import comparison_table, darkmachines_rows, read_published, versus_published

__all__ = ["write_report", "BACKGROUND_EFFICIENCIES", "auc", "efficiency_at", "figures_of_merit", "roc",
           "threshold_at", "ScoredRun", "comparison_table", "darkmachines_rows", "read_published",
           "versus_published"]
