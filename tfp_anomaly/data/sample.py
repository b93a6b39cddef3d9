"""The embedded default sample: Pythia 8 events shipped inside the package (no extra install).

``tfp_anomaly/data/embedded/`` holds a Standard Model background mixture (``background.csv.gz``) and one
file per BSM signal, all in the Dark Machines CSV format (read with the same reader as challenge
files), plus ``manifest.json`` (processes, counts, cross sections, seeds, versions) and a README
stating how it was generated (:mod:`tfp_anomaly.data.generate.build_sample`).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..registry import Registry
from .darkmachines import read_darkmachines
from .events import Events, concatenate  # noqa: F401 (Events: the return type)

SAMPLE_DIR = Path(__file__).resolve().parent / "embedded"


def manifest() -> dict:
    """The sample's ``manifest.json``: files, processes, counts, cross sections, seeds, versions."""
    path = SAMPLE_DIR / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"the embedded sample is missing ({path}); reinstall tfp-anomaly")
    return json.loads(path.read_text())


def sample_files() -> dict[str, Path]:
    """``{"background": path, signal name: path, ...}``."""
    return {name: SAMPLE_DIR / entry["file"] for name, entry in manifest()["files"].items()}


def signal_parts() -> Registry:
    """The sample's signals: signal name -> its manifest entry (``file``, ``events``, ...). An unknown
    name names the other parts, ``background`` and ``signals``, before the signals."""
    found = Registry("sample part", listing="available: background, signals, or one signal")
    for name, entry in manifest()["files"].items():
        if entry["kind"] == "signal":
            found.register(name, entry)
    return found


def load_sample(part: str = "background", unit: str = "GeV") -> Events:
    """Events of one part of the sample (``"background"``, a signal name, or ``"signals"`` for all
    signals), labelled 0 (background) or 1 (signal)."""
    if part == "signals":
        return concatenate([load_sample(name, unit) for name in signal_parts()])
    entry = manifest()["files"]["background"] if part == "background" else signal_parts().lookup(part)
    return read_darkmachines(SAMPLE_DIR / entry["file"], unit=unit, label=int(entry["kind"] == "signal"))
