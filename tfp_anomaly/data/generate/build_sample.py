"""Build the embedded sample (``tfp_anomaly/data/embedded/``): the command that made the shipped one.

    python -m tfp_anomaly.data.generate.build_sample [--background 50000] [--signal 5000] [--seed 0]

Background: QCD multijet, W+jets, Z+jets and t t̄ mixed by accepted cross section (a pilot run per
process measures σ·ε); signals: W′ → WZ, Z′ → t t̄, excited quarks; all with the ``ht400`` selection.
Writes gzip-compressed Dark Machines CSV files, ``manifest.json`` and ``README.md``, each atomically.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

from ... import __version__
from ...atomic import atomic_path
from ..darkmachines import write_darkmachines
from ..sample import SAMPLE_DIR
from . import processes, selections
from .detector import DetectorConfig
from .mixture import generate_many, mixture_counts

BACKGROUND = ["qcd", "wjets", "zjets", "ttbar"]
SIGNALS = ["wprime_wz", "zprime_tt", "qstar"]

#: what a user of the files must know, written into the manifest and the README of every build
NOTES = ["`background.csv.gz` is stored in process order (all QCD events first, then W + jets, Z + jets, "
         "t t̄): its first N events are QCD only. Take a part of it with `data.max_events` and "
         "`data.subset: random` (a seeded random subset), and stream it (`stream_dataset`) only with `shuffle` "
         "and chunks of the whole file."]


def versions() -> dict:
    from importlib.metadata import version

    return {"tfp-anomaly": __version__, "pythia8mc": version("pythia8mc"), "fastjet": version("fastjet"),
            "numpy": version("numpy"), "python": platform.python_version()}


def build(out: Path, background: int, signal: int, seed: int, selection: str, jobs: int | None) -> dict:
    start = time.perf_counter()
    counts = mixture_counts(BACKGROUND, background, seed, selection, jobs=jobs)
    files, stats_all = {}, []
    bkg, stats = generate_many(counts, seed, selection, jobs)
    stats_all += stats
    files["background"] = {"file": "background.csv.gz", "kind": "background", "events": len(bkg),
                           "processes": {s.process: s.accepted for s in stats}}
    write_darkmachines(bkg, out / files["background"]["file"])
    sig, stats = generate_many({name: signal for name in SIGNALS}, seed, selection, jobs)
    stats_all += stats
    for k, name in enumerate(sig.processes):
        part = sig[np.flatnonzero(sig.process == k)]
        files[name] = {"file": f"{name}.csv.gz", "kind": "signal", "events": len(part), "processes": {name: len(part)}}
        write_darkmachines(part, out / files[name]["file"])
    return {"files": files, "selection": selection,
            "selection_description": selections.SELECTIONS[selection].description,
            "seed": seed, "command": f"python -m tfp_anomaly.data.generate.build_sample --background {background} "
                                     f"--signal {signal} --seed {seed} --selection {selection} --jobs {jobs}",
            "processes": {s.process: {"description": processes.get(s.process).description,
                                      "settings": list(processes.COMMON + processes.get(s.process).settings),
                                      "pythia_seed": s.pythia_seed, "generated": s.generated,
                                      "accepted": s.accepted, "sigma_pb": s.sigma_mb * 1e9,
                                      "sigma_error_pb": s.sigma_error_mb * 1e9, "efficiency": s.efficiency}
                          for s in stats_all},
            "detector": dataclasses.asdict(DetectorConfig()), "versions": versions(),
            "seconds": round(time.perf_counter() - start, 1), "notes": list(NOTES)}


def readme(manifest: dict) -> str:
    """The sample's README, written from its manifest so the two always agree."""
    v = manifest["versions"]
    lines = ["# The embedded sample", "",
             "Proton–proton collisions at √s = 13 TeV generated with Pythia 8 and the fast detector simulation of "
             "`tfp_anomaly.data.generate` (see `docs/generate.md` for every process card and detector parameter), "
             "in the Dark Machines CSV format (MeV, gzip). Load it with `tfp_anomaly.data.load_sample()`.", "",
             f"Made with: `{manifest['command']}`  ",
             f"Versions: tfp-anomaly {v['tfp-anomaly']}, pythia8mc {v['pythia8mc']}, fastjet {v['fastjet']}, "
             f"numpy {v['numpy']}, Python {v['python']}  ",
             f"Selection: `{manifest['selection']}` ({manifest['selection_description']}); seed {manifest['seed']}; "
             f"{manifest['seconds']:,.0f} s of generation.", "",
             "| file | kind | events | by process |", "|---|---|---:|---|"]
    for name, entry in manifest["files"].items():
        parts = ", ".join(f"{p} {n:,}" for p, n in entry["processes"].items())
        lines.append(f"| `{entry['file']}` | {entry['kind']} | {entry['events']:,} | {parts} |")
    lines += ["", "| process | Pythia seed (stream 0) | σ (pb) | generated | accepted | efficiency |", "|---|---:|---:|---:|---:|---:|"]
    for name, p in manifest["processes"].items():
        lines.append(f"| {name} | {p['pythia_seed']} | {p['sigma_pb']:,.4g} ± {p['sigma_error_pb']:,.2g} | "
                     f"{p['generated']:,} | {p['accepted']:,} | {p['efficiency']:.3f} |")
    lines += ["", "The background is mixed by accepted cross section σ·ε, measured by a pilot run of each process "
              "(a separate seed stream), so its composition is the Standard Model's after the selection. "
              "`manifest.json` holds the same numbers and every Pythia setting.", ""]
    if manifest.get("notes"):
        lines += ["Notes:", ""] + [f"* {note}" for note in manifest["notes"]] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--background", type=int, default=50_000)
    parser.add_argument("--signal", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--selection", default="ht400")
    parser.add_argument("--jobs", type=int, default=2, help="parallel workers; the sample depends on it "
                        "(a process is split into this many random streams), so it is recorded")
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR)
    args = parser.parse_args(argv)
    manifest = build(args.out, args.background, args.signal, args.seed, args.selection, args.jobs)
    with atomic_path(args.out / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    with atomic_path(args.out / "README.md") as tmp:
        tmp.write_text(readme(manifest))
    print(f"wrote {args.out} in {manifest['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
