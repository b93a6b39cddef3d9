"""The Dark Machines reader on the real challenge file, against a naive reference parser, and on
malformed input."""
import gzip
import itertools
import random
import tracemalloc

import numpy as np
import pytest

from reference import parse_line
from tfp_anomaly.data import (DataFormatError, SkipLog, iter_darkmachines, read_darkmachines,
                              write_darkmachines)
from tfp_anomaly.data.darkmachines import diagnose_line


# --------------------------------------------------------------------------- the real file
def test_real_file_counts_and_first_event(dm_events):
    ev = dm_events
    assert len(ev) == 6399
    first = ev.event(0)
    assert first["met"] == 832841.0
    assert first["objects"][0][:3] == ("b", 947383.0, 824498.0)
    assert first["process"] == "monojet_Zp2000.0_DM_50.0"
    assert first["event_id"] == 354 and first["weight"] == pytest.approx(2.44336e-05, rel=1e-12)
    counts = ev.count_by_type()
    assert counts["j"] == 22661 and counts["b"] == 718 and counts["g"] == 92
    assert counts["e-"] + counts["e+"] == 2
    assert "m-" not in counts and "m+" not in counts


def test_fast_parser_matches_naive_reference(dm_events, dm_lines):
    ref = [parse_line(line) for line in dm_lines]
    assert len(ref) == len(dm_events)
    np.testing.assert_array_equal(dm_events.met, np.float32([r["met"] for r in ref]))
    np.testing.assert_array_equal(dm_events.met_phi, np.float32([r["met_phi"] for r in ref]))
    np.testing.assert_array_equal(dm_events.weight, [r["weight"] for r in ref])
    objs = np.array([o for r in ref for o in r["objects"]])
    np.testing.assert_array_equal(dm_events.obj_type, objs[:, 0].astype(np.int8))
    for k, name in enumerate(("obj_e", "obj_pt", "obj_eta", "obj_phi"), start=1):
        np.testing.assert_array_equal(getattr(dm_events, name), objs[:, k].astype(np.float32))
    np.testing.assert_array_equal(dm_events.n_objects, [len(r["objects"]) for r in ref])


def test_gev_option(dm_file):
    ev = read_darkmachines(dm_file, unit="GeV")
    assert ev.unit == "GeV"
    assert ev.met[0] == pytest.approx(832.841, rel=1e-6)
    assert ev.obj_pt[0] == pytest.approx(824.498, rel=1e-6)


@pytest.mark.parametrize("chunk_size", [1, 97, 1000, 100_000])
def test_streaming_chunks_reassemble_the_file(dm_file, dm_events, chunk_size):
    chunks = list(itertools.islice(iter_darkmachines(dm_file, chunk_size=chunk_size), 300))
    assert all(len(c) <= chunk_size for c in chunks)
    n = sum(len(c) for c in chunks)
    head = dm_events[:n]
    np.testing.assert_array_equal(np.concatenate([c.obj_pt for c in chunks]), head.obj_pt)
    np.testing.assert_array_equal(np.concatenate([c.met for c in chunks]), head.met)


def test_streaming_memory_is_bounded_by_the_chunk(tmp_path, dm_lines):
    big = tmp_path / "big.csv"
    big.write_text("".join(dm_lines * 8))  # 51,192 events
    tracemalloc.start()
    total = sum(len(c) for c in iter_darkmachines(big, chunk_size=2000))
    _, peak_stream = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    whole = read_darkmachines(big)
    _, peak_whole = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == len(whole) == 51192
    assert peak_stream < peak_whole / 5, (peak_stream, peak_whole)


def test_write_read_round_trip(tmp_path, dm_events):
    for name in ("out.csv", "out.csv.gz"):
        path = write_darkmachines(dm_events, tmp_path / name)
        back = read_darkmachines(path)
        for field in ("event_id", "met", "met_phi", "weight", "obj_type", "obj_e", "obj_pt", "obj_eta", "obj_phi"):
            np.testing.assert_array_equal(getattr(back, field), getattr(dm_events, field), err_msg=field)
    assert gzip.open(tmp_path / "out.csv.gz", "rt").readline() == (tmp_path / "out.csv").open().readline()


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_darkmachines(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- malformed input
GOOD = "7;ttbar;0.5;100000;0.5;j,50000,40000,0.1,0.2;b,30000,20000,-0.3,1.2;\n"
BAD_LINES = {
    "wrong field count": ("7;ttbar;0.5;100000;0.5;j,50000,40000,0.1;\n", "field 6 (object 1)", "found 4"),
    "extra value": ("7;ttbar;0.5;100000;0.5;j,50000,40000,0.1,0.2,9;\n", "field 6 (object 1)", "found 6"),
    "non-numeric": ("7;ttbar;0.5;100000;0.5;j,50000,4x000,0.1,0.2;\n", "field 6 (object 1 'j' pt)", "'4x000'"),
    "unknown code": ("7;ttbar;0.5;100000;0.5;tau,50000,40000,0.1,0.2;\n", "field 6 (object 1)", "unknown object code 'tau'"),
    "nan": ("7;ttbar;0.5;nan;0.5;j,50000,40000,0.1,0.2;\n", "field 4 (MET)", "non-finite"),
    "inf": ("7;ttbar;0.5;100000;0.5;j,50000,40000,inf,0.2;\n", "field 6 (object 1 'j' eta)", "non-finite"),
    "float32 overflow": ("7;ttbar;0.5;100000;0.5;j,5e60,40000,0.1,0.2;\n", "field 6 (object 1 'j' E)", "overflows"),
    "short header": ("7;ttbar;0.5\n", None, "at least 5"),
    "bad event id": ("x7;ttbar;0.5;100000;0.5;\n", "field 1 (event_id)", "'x7'"),
    "empty process": ("7;;0.5;100000;0.5;\n", "field 2 (process_id)", "empty"),
    "comma in header": ("7;ttbar;0,5;100000;0.5;j,50000,40000,0.1;\n", "field 3 (weight)", "'0,5'"),
}


def _file_with(tmp_path, bad: str, position: int = 4, n: int = 9):
    lines = [GOOD] * n
    lines.insert(position, bad)
    path = tmp_path / "events.csv"
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_malformed_line_error_names_file_line_and_field(tmp_path, case):
    bad, field, reason = BAD_LINES[case]
    path = _file_with(tmp_path, bad)
    with pytest.raises(DataFormatError) as info:
        read_darkmachines(path)
    err = info.value
    assert err.path == str(path) and err.line == 5 and err.field == field
    assert reason in err.reason
    assert str(path) in str(err) and "line 5" in str(err)


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_skip_mode_counts_and_keeps_the_good_lines(tmp_path, case):
    path = _file_with(tmp_path, BAD_LINES[case][0])
    ev = read_darkmachines(path, on_error="skip")
    assert len(ev) == 9 and ev.meta["n_skipped"] == 1
    assert "line 5" in ev.meta["skip_log"].messages[0]
    np.testing.assert_array_equal(ev.obj_pt, np.tile(np.float32([40000, 20000]), 9))


def test_skip_mode_counts_across_chunks(tmp_path, dm_lines):
    lines = list(dm_lines[:50])
    for k in (3, 17, 18, 44):
        lines[k] = lines[k].replace(",", ";", 1)
    path = tmp_path / "some_bad.csv"
    path.write_text("".join(lines))
    log = SkipLog()
    chunks = list(iter_darkmachines(path, chunk_size=10, on_error="skip", skipped=log))
    assert log.n_skipped == 4 and sum(len(c) for c in chunks) == 46
    assert [c.meta["n_skipped"] for c in chunks] == [1, 2, 0, 0, 1]
    assert [m.split(", ")[1] for m in log.messages] == ["line 4", "line 18", "line 19", "line 45"]


def test_blank_lines_are_ignored_and_counted(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text(GOOD + "\n" + GOOD + "   \n" + GOOD)
    ev = read_darkmachines(path)
    assert len(ev) == 3 and ev.meta["n_blank"] == 2


def test_crlf_and_missing_trailing_semicolon_are_accepted(tmp_path):
    path = tmp_path / "crlf.csv"
    path.write_bytes((GOOD.replace(";\n", "\r\n") * 3).encode())
    ev = read_darkmachines(path)
    assert len(ev) == 3 and list(ev.n_objects) == [2, 2, 2]


def test_random_corruptions_agree_with_the_line_checker(tmp_path, dm_lines):
    """Fuzz: the vectorised path must accept exactly what the per-line checker accepts, and parse
    accepted lines exactly like the naive reference."""
    rng = random.Random(1234)
    alphabet = "0123456789.,;-+eEjbgmx nanif"
    for trial in range(120):
        line = rng.choice(dm_lines[:200]).rstrip("\n")
        pos = rng.randrange(len(line))
        mutated = line[:pos] + rng.choice(alphabet) + line[pos + rng.choice([0, 1]):] + "\n"
        path = tmp_path / f"fuzz{trial}.csv"
        path.write_text(dm_lines[0] + mutated + dm_lines[1])
        try:
            diagnose_line(mutated, path, 2)
            valid = True
        except DataFormatError:
            valid = False
        if not valid:
            with pytest.raises(DataFormatError) as info:
                read_darkmachines(path)
            assert info.value.line == 2, (mutated, str(info.value))
            continue
        ev = read_darkmachines(path)
        ref = parse_line(mutated)
        got = ev.event(1)
        assert got["met"] == np.float32(ref["met"]) and len(got["objects"]) == len(ref["objects"]), mutated
        assert [o[2] for o in got["objects"]] == [float(np.float32(o[2])) for o in ref["objects"]], mutated
