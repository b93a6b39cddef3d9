"""``tfp-anomaly data inspect``: what a file holds and what looks wrong, computed chunk by chunk.

For event files: events per process (and label), object counts and multiplicities per type,
feature ranges per type and for MET, malformed lines skipped, and physics sanity checks
(negative pT or E, E < pT, φ outside [-π, π], non-unique event ids). For the LHCO feature tables:
events per file and label, the reader's policy report, and feature ranges.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from . import formats, objects
from .errors import SkipLog
from .events import Events

KINEMATICS = ("obj_e", "obj_pt", "obj_eta", "obj_phi")
# E >= pT holds for any real object; allow the six-digit rounding of the challenge files
_E_PT_TOLERANCE = 1e-4


@dataclasses.dataclass
class EventSummary:
    """What an event file holds, accumulated chunk by chunk (:meth:`add`) and printed by :meth:`to_text`:
    events per process and per truth label, object multiplicities and feature ranges per type, and
    counts of physics problems and skipped lines. ``path`` and ``format`` name the file."""

    path: str
    format: str
    unit: str = "MeV"
    n_events: int = 0
    processes: dict = dataclasses.field(default_factory=dict)
    labels: dict = dataclasses.field(default_factory=dict)
    multiplicity: dict = dataclasses.field(default_factory=dict)   # code -> {n_objects: n_events}
    ranges: pd.DataFrame | None = None                              # per type/MET: min, max, sum, count
    problems: dict = dataclasses.field(default_factory=dict)
    skipped: SkipLog = dataclasses.field(default_factory=SkipLog)
    _event_ids: set = dataclasses.field(default_factory=set, repr=False)

    def add(self, events: Events) -> None:
        self.unit = events.unit
        self.n_events += len(events)
        for name, count in zip(*np.unique(events.process_name.astype(str), return_counts=True)):
            self.processes[name] = self.processes.get(name, 0) + int(count)
        if events.labels is not None:
            for value, count in zip(*np.unique(events.labels, return_counts=True)):
                self.labels[int(value)] = self.labels.get(int(value), 0) + int(count)
        self._add_multiplicity(events)
        self._add_ranges(events)
        self._add_problems(events)
        if len(self._event_ids) < 10_000_000:  # bound memory on huge files
            self._event_ids.update(np.unique(events.event_id).tolist())

    def _add_multiplicity(self, events: Events) -> None:
        for code in ["all"] + sorted(events.count_by_type(), key=objects.type_id):
            counts = events.n_objects if code == "all" else events.multiplicity(code)
            hist = self.multiplicity.setdefault(code, {})
            for k, c in zip(*np.unique(counts, return_counts=True)):
                hist[int(k)] = hist.get(int(k), 0) + int(c)

    def _add_ranges(self, events: Events) -> None:
        frame = pd.DataFrame({name: getattr(events, name).astype(np.float64) for name in KINEMATICS})
        frame["type"] = [objects.code_of(t) for t in events.obj_type] if len(frame) else []
        met = pd.DataFrame({"obj_e": events.met, "obj_pt": events.met, "obj_eta": np.nan,
                            "obj_phi": events.met_phi, "type": "MET"})
        stats = pd.concat([frame, met]).groupby("type").agg(["min", "max", "sum", "count"])
        if self.ranges is None:
            self.ranges = stats
            return
        both = pd.concat([self.ranges, stats])
        combined = both.groupby(level=0).agg({c: ("min" if c[1] == "min" else "max" if c[1] == "max" else "sum")
                                              for c in both.columns})
        self.ranges = combined

    def _add_problems(self, events: Events) -> None:
        checks = {
            "negative pT or E": (events.obj_pt < 0) | (events.obj_e < 0),
            "E < pT (unphysical)": events.obj_e < events.obj_pt * (1 - _E_PT_TOLERANCE),
            "phi outside [-pi, pi]": np.abs(events.obj_phi) > np.pi * (1 + 1e-6),
            "negative MET": events.met < 0,
            "MET phi outside [-pi, pi]": np.abs(events.met_phi) > np.pi * (1 + 1e-6),
        }
        for name, hit in checks.items():
            self.problems[name] = self.problems.get(name, 0) + int(np.count_nonzero(hit))

    # ------------------------------------------------------------------ output
    def type_table(self) -> pd.DataFrame:
        rows = []
        for code, hist in self.multiplicity.items():
            k, c = np.array(list(hist)), np.array(list(hist.values()))
            total = int((k * c).sum())
            rows.append({"type": code, "objects": total, "per event": total / max(self.n_events, 1),
                         "max per event": int(k.max()), "events with >= 1": int(c[k > 0].sum())})
        return pd.DataFrame(rows).set_index("type")

    def range_table(self) -> pd.DataFrame:
        table = {}
        for col, label in zip(KINEMATICS, ("E", "pT", "eta", "phi")):
            r = self.ranges[col]
            table[(label, "min")], table[(label, "mean")], table[(label, "max")] = r["min"], r["sum"] / r["count"], r["max"]
        return pd.DataFrame(table)

    def to_text(self) -> str:
        ids = len(self._event_ids)
        problems = dict(self.problems)
        if ids < self.n_events and ids < 10_000_000:
            problems["event_id not unique"] = self.n_events - ids
        if not self.n_events:  # nothing read: no unit, no process table to show
            problems["no events in the file"] = 1
            lines = [f"file      {self.path}", f"format    {self.format}", "events    0",
                     f"skipped   {self.skipped.summary()}", ""]
        else:
            lines = [f"file      {self.path}", f"format    {self.format}", f"events    {self.n_events:,}",
                     f"unit      {self.unit}", f"skipped   {self.skipped.summary()}", "",
                     "events per process", pd.Series(self.processes, name="events").to_string(), ""]
        if self.labels:
            lines += ["events per label (1 = signal)", pd.Series(self.labels, name="events").to_string(), ""]
        if self.n_events:
            with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160):
                lines += ["objects by type", self.type_table().to_string(), "",
                          f"feature ranges ({self.unit}; MET row: E = pT = MET)", self.range_table().to_string(), ""]
        lines += ["problems found"] + [f"  {name}: {count:,}" for name, count in problems.items()]
        lines += [f"  {m}" for m in self.skipped.messages[:5]]
        return "\n".join(lines)


def summarize_events(path, format: str = "auto", *, chunk_size: int = 100_000, on_error: str = "raise",
                     unit: str | None = None, reader_settings: dict | None = None) -> EventSummary:
    """Stream ``path`` once and accumulate an :class:`EventSummary`; ``reader_settings`` holds the
    readers' options as a configuration's ``data`` section does (:func:`.formats.reader_options`)."""
    fmt = formats.detect(path) if format == "auto" else formats.get(format)
    summary = EventSummary(str(path), fmt.name)
    kwargs = {"chunk_size": chunk_size, **formats.reader_options(fmt, reader_settings)}
    if fmt.name == "darkmachines":
        kwargs.update(on_error=on_error, skipped=summary.skipped)
    for chunk in fmt.iterate(path, **kwargs):
        summary.add(chunk.to_unit(unit) if unit else chunk)
    return summary


def summarize_table(paths) -> str:
    """Inspection text for LHCO high-level feature files."""
    from .lhco import read_lhco_scalars

    table = read_lhco_scalars(paths)
    report = table.report
    files = pd.DataFrame(report["files"]).T
    ranges = pd.DataFrame({"min": table.features.min(0), "mean": table.features.mean(0),
                           "max": table.features.max(0)}, index=table.names)
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160):
        return "\n".join([
            f"files     {len(table.files)}", f"events    {len(table):,} kept "
            f"(label 0: {int((table.labels == 0).sum()):,}, label 1: {int((table.labels == 1).sum()):,})", "",
            "events per file", files.to_string(), "",
            "policy report",
            f"  non-finite values by column: {report['nonfinite'] or 'none'} -> {report['dropped_events']} event(s) dropped",
            f"  constant columns dropped: {report['constant_columns']}",
            f"  duplicate columns dropped (copy -> original): {report['duplicate_columns'] or 'none'}",
            f"  columns dropped by name: {report['dropped_columns']}", "",
            f"features ({len(table.names)})", ranges.to_string()])


def inspect_paths(paths, format: str = "auto", **kwargs) -> str:
    """Inspection text for one or more files (tables are summarised together, event files one by one)."""
    paths = [Path(p) for p in paths]
    fmts = [formats.detect(p) if format == "auto" else formats.get(format) for p in paths]
    tables = [p for p, f in zip(paths, fmts) if f.kind == "table"]
    texts = [summarize_events(p, f.name, **kwargs).to_text() for p, f in zip(paths, fmts) if f.kind == "events"]
    if tables:
        texts.append(summarize_table(tables))
    return ("\n\n" + "=" * 80 + "\n\n").join(texts)
