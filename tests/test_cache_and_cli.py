"""The columnar cache and the `tfp-anomaly data` commands, run as a user would."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfp_anomaly.cli import main
from tfp_anomaly.data import iter_cache, read_cache, read_events, write_cache
from tfp_anomaly.data.events import EVENT_FIELDS, OBJECT_FIELDS

FIELDS = EVENT_FIELDS + OBJECT_FIELDS + ("offsets",)


def test_cache_round_trip_equals_csv(tmp_path, dm_file, dm_events):
    assert main(["data", "convert", str(dm_file), str(tmp_path / "c.h5"), "--no-progress", "--label", "1"]) == 0
    back = read_cache(tmp_path / "c.h5")
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(back, field), getattr(dm_events, field), err_msg=field)
    assert back.processes == dm_events.processes and back.labels.tolist() == [1] * len(dm_events)
    chunks = list(iter_cache(tmp_path / "c.h5", chunk_size=1000))
    assert len(chunks) == 7 and np.array_equal(np.concatenate([c.obj_pt for c in chunks]), dm_events.obj_pt)
    assert read_events(tmp_path / "c.h5").meta["format"] == "cache"


def test_cache_merges_process_tables_across_chunks(tmp_path, dm_events):
    a, b = dm_events[:10], dm_events[10:20]
    b = type(b)(**{f: getattr(b, f) for f in FIELDS}, processes=("other",), unit=b.unit)
    write_cache([a, b], tmp_path / "m.h5")
    back = read_cache(tmp_path / "m.h5")
    assert back.processes == ("monojet_Zp2000.0_DM_50.0", "other")
    assert back.process.tolist() == [0] * 10 + [1] * 10


def test_failed_convert_leaves_no_partial_output(tmp_path, dm_lines, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(dm_lines[:3000]) + "1;p;1;2;3;j,1,2,3;\n" + "".join(dm_lines[3000:]))
    out = tmp_path / "out.h5"
    assert main(["data", "convert", str(bad), str(out), "--no-progress", "--chunk-size", "1000"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv, line 3001, field 6 (object 1)" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]
    # an existing cache is left untouched by a failing convert
    out.write_bytes(b"previous")
    assert main(["data", "convert", str(bad), str(out), "--no-progress"]) == 2
    assert out.read_bytes() == b"previous"


def test_convert_skip_mode_reports_the_count(tmp_path, dm_lines, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(dm_lines[:10]) + "garbage\n" + "".join(dm_lines[10:20]))
    assert main(["data", "convert", str(bad), str(tmp_path / "o.h5"), "--no-progress", "--on-error", "skip"]) == 0
    assert "20 events" in capsys.readouterr().out and len(read_cache(tmp_path / "o.h5")) == 20


def test_inspect_reports_counts_multiplicities_and_problems(dm_file, capsys):
    assert main(["data", "inspect", str(dm_file), "--unit", "GeV"]) == 0
    out = capsys.readouterr().out
    assert "events    6,399" in out and "monojet_Zp2000.0_DM_50.0    6399" in out
    assert "j       22661" in out and "b         718" in out and "g          92" in out
    assert "E < pT (unphysical): 0" in out and "GeV" in out


def test_inspect_lhco_tables(lhco_scalar_dir, capsys):
    assert main(["data", "inspect", str(lhco_scalar_dir / "scalars_bkg01.h5"),
                 str(lhco_scalar_dir / "scalars_sig01.h5")]) == 0
    out = capsys.readouterr().out
    assert "label 0: 9,126, label 1: 872" in out and "constant columns dropped: ['nj']" in out


@pytest.mark.parametrize("argv,message", [
    (["data", "inspect", "/no/such/file.csv"], "file not found: /no/such/file.csv"),
    (["data", "inspect", "--format", "root", "x.csv"], "unknown format 'root'"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_console_script_is_installed_and_lists_formats():
    script = Path(sys.executable).parent / "tfp-anomaly"
    result = subprocess.run([str(script), "data", "formats"], capture_output=True, text=True, check=True)
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "darkmachines", "cache", "adc2021", "delphes", "root-ntuple", "lhco-raw", "lhco-scalars"]


def test_version_matches_installed_metadata():
    from importlib.metadata import version

    import tfp_anomaly

    assert version("tfp-anomaly") == tfp_anomaly.__version__
