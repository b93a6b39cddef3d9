"""The embedded Pythia sample ships with the package, loads without the 'generate' extra, has the
documented counts per process, and parses with the same reader users use on challenge files."""
import gzip
import subprocess
import sys

import numpy as np
import pytest

from tfp_anomaly.data import load_sample, read_darkmachines
from tfp_anomaly.data.sample import SAMPLE_DIR, manifest, sample_files


def test_sample_has_the_documented_counts_per_process_and_labels():
    files = manifest()["files"]
    assert files["background"]["events"] >= 50_000
    signals = [name for name, e in files.items() if e["kind"] == "signal"]
    assert len(signals) >= 3 and all(files[s]["events"] >= 5_000 for s in signals)
    for name, entry in files.items():
        events = load_sample(name)
        assert len(events) == entry["events"] == sum(entry["processes"].values())
        counts = {events.processes[k]: int(n) for k, n in enumerate(np.bincount(events.process)) if n}
        assert counts == entry["processes"]
        assert (events.labels == (entry["kind"] == "signal")).all()
    assert set(files["background"]["processes"]) == {"qcd", "wjets", "zjets", "ttbar"}


def test_sample_is_small_enough_for_git():
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir()) <= 10 * 2 ** 20


def test_sample_parses_with_the_dark_machines_reader_exactly():
    path = sample_files()["wprime_wz"]
    raw = read_darkmachines(path)  # the challenge reader, MeV as in the file
    first = gzip.open(path, "rt").readline().rstrip(";\n").split(";")
    assert raw.processes[raw.process[0]] == first[1] and float(first[3]) == pytest.approx(raw.met[0])
    obj = first[5].split(",")
    assert float(obj[2]) == pytest.approx(raw.obj_pt[0]) and float(obj[3]) == pytest.approx(raw.obj_eta[0])
    np.testing.assert_allclose(load_sample("wprime_wz").met * 1000, raw.met, rtol=1e-6)  # float32 MET


def test_signals_part_and_unknown_parts():
    signals = load_sample("signals")
    assert (signals.labels == 1).all() and len(set(signals.processes)) >= 3
    with pytest.raises(KeyError, match="unknown sample part 'wprime'; available: background, signals"):
        load_sample("wprime")


def test_sample_loads_without_pythia_or_fastjet():
    code = ("import sys; sys.modules['pythia8mc'] = None; sys.modules['fastjet'] = None\n"
            "from tfp_anomaly.data import load_sample; print(len(load_sample()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) == manifest()["files"]["background"]["events"]


def test_plot_sample_example_writes_the_distribution_plot(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "plot_sample.py"
    spec = importlib.util.spec_from_file_location("plot_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path / "d.png")])
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "background" in printed and "wprime_wz" in printed
