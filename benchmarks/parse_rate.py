"""Parse-rate benchmark: Dark Machines CSV reader vs the columnar HDF5 cache, on one core.

Builds a Dark Machines-format file of ``--events`` events by resampling (seeded) the lines of the
real challenge file in ../shared/data, then times, best of ``--repeat``:

* streaming the CSV with ``iter_darkmachines`` (target: >= 100,000 events/s on one core);
* ``tfp-anomaly data convert``'s work (parse + write the cache);
* reading the cache back whole and streaming it (target: >= 10x the CSV rate);
* streaming the same events from a ROOT file of the Delphes layout (``iter_delphes``, uproot), written
  from them first (jets with their mass and b-tag bit, leptons by charge, photons, MET);
* peak resident memory of a separate process that streams the CSV (bounded by the chunk size,
  not the file size).

    python benchmarks/parse_rate.py --events 500000 [--markdown docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import best_of, machine, write_section  # noqa: E402
from tfp_anomaly.data import (iter_cache, iter_darkmachines, iter_delphes, objects, read_cache,  # noqa: E402
                              write_cache)
from tfp_anomaly.data.representation import object_mass  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "darkmachines" / "monojet_Zp2000.0_DM_50.0_chan3.csv"
MARK = "<!-- parse_rate -->"


def make_file(source: Path, n: int, seed: int, out: Path) -> Path:
    lines = source.read_text().splitlines(keepends=True)
    rng = random.Random(seed)
    with out.open("w") as handle:
        for start in range(0, n, 100_000):
            handle.writelines(rng.choices(lines, k=min(100_000, n - start)))
    return out


#: Delphes class -> the object codes it holds
DELPHES_CLASSES = {"Jet": ("j", "b"), "Electron": ("e-", "e+"), "Muon": ("m-", "m+"), "Photon": ("g",)}


def _delphes_branches(events) -> dict:
    """The branches of a Delphes tree holding ``events`` (GeV): per class PT, Eta, Phi and Jet.Mass,
    Jet.BTag (bit 0: b), Electron/Muon.Charge, Photon.E; MissingET.MET/Phi and Event.Number, one per event."""
    import awkward as ak

    index, out = events.event_index, {}
    for name, codes in DELPHES_CLASSES.items():
        hit = np.isin(events.obj_type, [objects.type_id(c) for c in codes])
        counts = np.bincount(index[hit], minlength=len(events))
        columns = {"PT": events.obj_pt[hit], "Eta": events.obj_eta[hit], "Phi": events.obj_phi[hit]}
        if name == "Jet":
            columns["Mass"] = object_mass(events.obj_e[hit], columns["PT"], columns["Eta"], columns["Phi"]).astype(np.float32)
            columns["BTag"] = (events.obj_type[hit] == objects.type_id("b")).astype(np.uint32)
        elif name == "Photon":
            columns["E"] = events.obj_e[hit]
        else:
            columns["Charge"] = np.where(np.isin(events.obj_type[hit], [objects.type_id(c) for c in ("e-", "m-")]),
                                         -1, 1).astype(np.int32)
        out.update({f"{name}.{member}": ak.unflatten(values, counts) for member, values in columns.items()})
    one = np.ones(len(events), np.int64)
    out.update({"MissingET.MET": ak.unflatten(events.met, one), "MissingET.Phi": ak.unflatten(events.met_phi, one),
                "Event.Number": ak.unflatten(events.event_id, one)})
    return out


def make_delphes(csv: Path, out: Path, chunk_size: int) -> Path:
    """A ROOT file of the Delphes layout (tree ``Delphes``, split branches counted by ``Class_size``)
    holding the events of ``csv``, written chunk by chunk with uproot."""
    import awkward as ak
    import uproot

    with uproot.recreate(out) as handle:
        tree = None
        for chunk in iter_darkmachines(csv, chunk_size=chunk_size, unit="GeV"):
            branches = _delphes_branches(chunk)
            if tree is None:
                types = {k: f"var * {ak.type(v).content.content}" for k, v in branches.items()}
                tree = handle.mktree("Delphes", types, counter_name=lambda b: b.split(".")[0] + "_size")
            tree.extend(branches)
    return out


def peak_rss_streaming(path: Path, chunk_size: int) -> tuple[float, float]:
    """(baseline MiB after imports, peak MiB after streaming) of a child process."""
    # VmHWM (peak RSS) of the child's own address space; ru_maxrss would include the forked parent's
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r});"
            "from tfp_anomaly.data import iter_darkmachines;"
            "hwm = lambda: int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]);"
            "base = hwm();"
            f"n = sum(len(c) for c in iter_darkmachines({str(path)!r}, chunk_size={chunk_size}));"
            "print(base / 1024, hwm() / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    base, peak = (float(v) for v in out.split())
    return base, peak


def run(args) -> pd.DataFrame:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as tmp:
        csv = make_file(args.source, args.events, args.seed, Path(tmp) / "events.csv")
        cache = Path(tmp) / "events.h5"
        size_mb = csv.stat().st_size / 2**20
        rows = []
        t = best_of(args.repeat, lambda: sum(len(c) for c in iter_darkmachines(csv, chunk_size=args.chunk_size)))
        rows.append(("CSV stream (iter_darkmachines)", t))
        rows.append(("CSV -> cache (data convert)",
                     best_of(1, lambda: write_cache(iter_darkmachines(csv, chunk_size=args.chunk_size), cache))))
        rows.append(("cache read whole (read_cache)", best_of(args.repeat, lambda: read_cache(cache))))
        rows.append(("cache stream (iter_cache, 1M chunks)",
                     best_of(args.repeat, lambda: sum(len(c) for c in iter_cache(cache)))))
        root = make_delphes(csv, Path(tmp) / "events.root", args.chunk_size)
        rows.append(("Delphes ROOT stream (iter_delphes, uproot)",
                     best_of(args.repeat, lambda: sum(len(c) for c in iter_delphes(root, chunk_size=args.chunk_size)))))
        base, peak = peak_rss_streaming(csv, args.chunk_size)
    table = pd.DataFrame(rows, columns=["stage", "seconds"])
    table["events/s"] = args.events / table["seconds"]
    table["vs CSV"] = table["events/s"] / table["events/s"].iloc[0]
    table.attrs.update(events=args.events, size_mb=size_mb, rss_base=base, rss_peak=peak)
    return table


def to_markdown(table: pd.DataFrame, args) -> str:
    a = table.attrs
    lines = [MARK, "## Data parse rate (`benchmarks/parse_rate.py`)", "",
             f"Command: `python benchmarks/parse_rate.py --events {args.events} --markdown docs/benchmarks.md` "
             f"(also `make bench`)  ", f"Machine: {machine(pinned=1)}  ",
             f"Input: {a['events']:,} events resampled (seed {args.seed}) from the real Dark Machines file, "
             f"{a['size_mb']:.0f} MiB; chunk size {args.chunk_size:,}; best of {args.repeat}.", "",
             "| stage | seconds | events/s | vs CSV |", "|---|---:|---:|---:|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['stage']} | {r['seconds']:.3f} | {r['events/s']:,.0f} | {r['vs CSV']:.1f}x |")
    lines += ["", f"Peak resident memory of a process streaming the whole CSV: {a['rss_peak']:.0f} MiB "
                  f"({a['rss_base']:.0f} MiB of it is the interpreter with NumPy/pandas before reading).",
              "The Delphes row streams the same events from a ROOT file of the Delphes layout written from them "
              "(split branches `Jet.PT`, ..., `MissingET.MET`; uproot); its conversion to Events is vectorised.",
              "Targets: CSV >= 100,000 events/s on one core; cache read >= 10x the CSV.", MARK]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    args = parser.parse_args(argv)
    if not args.source.exists():
        print(f"source file not found: {args.source}", file=sys.stderr)
        return 2
    table = run(args)
    with pd.option_context("display.float_format", "{:,.3f}".format, "display.width", 120):
        print(table.to_string(index=False))
    print(f"peak RSS streaming: {table.attrs['rss_peak']:.0f} MiB (baseline {table.attrs['rss_base']:.0f} MiB)")
    if args.markdown:
        write_section(args.markdown, to_markdown(table, args), MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
