"""Regression tests of issue 18 (data): each test names the defect it guards.

1 convert over its own input; 2 skip counts of chunks that lose every line; 5 files that do not fit
the run's grid or representation; 6 signal names; 7 ``data.max_events`` on a file stored by process;
8 an object in two blocks of the grid; plus leftover temporary files of killed conversions, the number
grammar both CSV parsers share, and thresholds after smearing in the generator.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfp_anomaly import cli, inputs
from tfp_anomaly import config as config_lib
from tfp_anomaly.data import DataFormatError, Events, ObjectGrid, SkipLog, objects, read_cache, read_darkmachines
from tfp_anomaly.data.cache import leftover_temporaries, temporary_suffix, write_cache
from tfp_anomaly.data.sample import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
SAVED_RUN = ROOT / "tests" / "data" / "run_v0_vae"


def sample_lines(n: int, part: str = "qstar") -> list[str]:
    with gzip.open(SAMPLE_DIR / f"{part}.csv.gz", "rt") as handle:
        return [next(handle) for _ in range(n)]


def run_cli(argv, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tfp-anomaly: error: "), err
    return lines[0]


def configuration(**data) -> dict:
    return config_lib.merge(config_lib.DEFAULTS, {"data": data, "grid": {"preset": "darkflow"}})


# --------------------------------------------------------------------------- defect 1
@pytest.mark.parametrize("how", ["same name", "symlink", "hard link"])
def test_defect1_convert_refuses_an_output_that_is_its_input(tmp_path, capsys, how):
    source = tmp_path / "events.csv"
    source.write_text("".join(sample_lines(20)))
    cache = tmp_path / "events.h5"
    assert run_cli(["data", "convert", source, cache, "--no-progress"], capsys)[0] == 0
    before = cache.read_bytes()
    output = {"same name": cache, "symlink": tmp_path / "link.h5", "hard link": tmp_path / "hard.h5"}[how]
    if how == "symlink":
        output.symlink_to(cache)
    elif how == "hard link":
        os.link(cache, output)
    status, _, err = run_cli(["data", "convert", cache, output, "--on-error", "skip", "--no-progress"], capsys)
    assert status == 2 and "is the input file" in one_error_line(err) and output.name in err
    assert cache.read_bytes() == before and len(read_cache(cache)) == 20


def test_defect1_the_reported_command_leaves_the_csv_intact(tmp_path, capsys):
    source = tmp_path / "x.csv"
    source.write_text("".join(sample_lines(5)))
    before = source.read_bytes()
    status, _, err = run_cli(["data", "convert", source, source, "--on-error", "skip", "--no-progress"], capsys)
    assert status == 2 and "x.csv" in one_error_line(err)
    assert source.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


# --------------------------------------------------------------------------- defect 2
def _file_with_bad_lines(tmp_path, bad: set[int], n: int = 12) -> Path:
    lines = sample_lines(n)
    path = tmp_path / "some_bad.csv"
    path.write_text("".join("garbage;line\n" if k + 1 in bad else line for k, line in enumerate(lines)))
    return path


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 100])
def test_defect2_convert_counts_lines_of_chunks_that_lost_every_line(tmp_path, capsys, chunk_size):
    bad = {3, 4, 5, 6, 11}  # with chunk sizes 1, 2 and 3 whole chunks are bad
    path = _file_with_bad_lines(tmp_path, bad)
    out = tmp_path / "c.h5"
    status, printed, _ = run_cli(["data", "convert", path, out, "--on-error", "skip", "--no-progress",
                                  "--chunk-size", chunk_size], capsys)
    assert status == 0 and f"{len(bad)} malformed line(s) skipped" in printed
    import h5py

    with h5py.File(out, "r") as handle:
        assert int(handle["events"].attrs["n_skipped"]) == len(bad)
    assert len(read_cache(out)) == 12 - len(bad)
    status, printed, _ = run_cli(["data", "inspect", path, "--on-error", "skip", "--chunk-size", chunk_size], capsys)
    assert status == 0 and f"{len(bad)} malformed record(s) skipped" in printed


def test_defect2_a_run_reports_every_skipped_line_of_every_chunk(tmp_path):
    path = _file_with_bad_lines(tmp_path, {2, 9})
    config = configuration(background=[str(path)], on_error="skip")
    table, report = inputs.load_background(config)
    assert len(table) == 10 and report["skipped_lines"] == 2


def test_defect2_the_garbage_file_is_refused_with_its_count(tmp_path, capsys):
    path = tmp_path / "garbage.csv"
    path.write_bytes(b"\x00\x01garbage\n" * 7)
    status, _, err = run_cli(["data", "convert", path, tmp_path / "g.h5", "--on-error", "skip", "--no-progress",
                              "--chunk-size", "1"], capsys)
    assert status == 2 and "all 7 non-blank line(s) are malformed" in one_error_line(err)
    assert not (tmp_path / "g.h5").exists()


# --------------------------------------------------------------------------- defect 5
def _hadron_cache(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    pt = rng.exponential(5.0, (40, 30))
    events = Events.from_padded(objects.type_id("h"), pt * 1.2, pt, rng.normal(size=pt.shape),
                                rng.uniform(-3, 3, pt.shape), met=rng.exponential(10, 40), met_phi=np.zeros(40))
    path = tmp_path / "hadrons.h5"
    write_cache([events], path)
    return path


def test_defect5_a_file_whose_objects_miss_the_grid_is_an_error_naming_it(tmp_path):
    path = _hadron_cache(tmp_path)
    config = configuration(background="sample", signals=[str(path)])
    with pytest.raises(DataFormatError) as info:
        inputs.load_signals(config)
    message = str(info.value)
    assert "hadrons.h5" in message and "of type 'h'" in message and "100%" in message and "no block" in message


def test_defect5_a_type_without_block_below_the_threshold_is_a_warning_with_counts(caplog):
    events = Events.from_padded(np.array([[0, 0, 0, 8]]), np.full((3, 4), 50.0), np.full((3, 4), 40.0),
                                np.zeros((3, 4)), np.zeros((3, 4)), met=np.ones(3), met_phi=np.zeros(3))
    grid = ObjectGrid(blocks=[("j", 4)])
    with caplog.at_level("WARNING"):
        counts = grid.check(events, "three.csv")
    assert counts["no_block"] == {"m": 3} and counts["placed"] == 9
    assert "three.csv" in caplog.text and "3 of type 'm'" in caplog.text
    with pytest.raises(DataFormatError, match="9 of 12 objects"):
        ObjectGrid(blocks=[("j", 1)]).check(events, "three.csv")  # 6 beyond the cap, 3 without block


def _scalar_file(tmp_path) -> Path:
    import h5py

    path = tmp_path / "scalars_sig01.h5"
    with h5py.File(path, "w") as handle:
        group = handle.create_group("sig")
        group.attrs["nblocks"] = 1
        names = np.array([b"mjj", b"mj1"])
        for key in ("axis0", "block0_items"):
            group.create_dataset(key, data=names)
        group.create_dataset("axis1", data=np.arange(5))
        group.create_dataset("block0_values", data=np.random.default_rng(0).normal(size=(5, 2)))
    return path


def test_defect5_a_feature_table_signal_for_a_grid_run_is_refused_before_reading(tmp_path):
    config = configuration(background="sample", signals=[str(_scalar_file(tmp_path))])
    with pytest.raises(DataFormatError) as info:
        inputs.load_signals(config)
    message = str(info.value)
    assert "scalars_sig01.h5" in message and "lhco-scalars" in message and "object grid" in message


def test_defect5_score_with_a_scalar_signal_is_one_line_exit_2(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(SAVED_RUN, run)
    status, _, err = run_cli(["score", run, "--signal", _scalar_file(tmp_path), "--no-progress"], capsys)
    line = one_error_line(err)
    assert status == 2 and "scalars_sig01.h5" in line and "object grid of shape (32, 4)" in line


def test_defect5_score_with_the_hadron_level_lhco_file_is_one_line_exit_2(tmp_path, capsys, lhco_raw_file):
    pytest.importorskip("tables")
    run = tmp_path / "run"
    shutil.copytree(SAVED_RUN, run)
    status, _, err = run_cli(["score", run, "--signal", lhco_raw_file, "--no-progress"], capsys)
    line = one_error_line(err)
    assert status == 2 and "events_anomalydetection_tiny.h5" in line
    assert "169,742 of 169,742 objects (100%)" in line and "of type 'h'" in line


def test_defect5_a_signal_without_events_is_refused_naming_it(tmp_path):
    empty = tmp_path / "nothing.csv"
    empty.write_text("\n")
    with pytest.raises(DataFormatError, match="nothing.csv: no events"):
        inputs.load_signals(configuration(background="sample", signals=[str(empty)]))


@pytest.mark.parametrize("format", ["auto", "darkmachines", "cache"])
def test_a_directory_given_as_background_is_one_error_naming_it(tmp_path, format):
    folder = tmp_path / "background.csv"
    folder.mkdir()
    with pytest.raises(DataFormatError, match="background.csv: is a directory"):
        inputs.load_background(configuration(background=[str(folder)], format=format))


# --------------------------------------------------------------------------- defect 6
def test_defect6_signal_names_keep_their_dots_and_lose_only_known_suffixes():
    assert inputs.signal_name("/d/monojet_Zp2000.0_DM_1.0_chan3.csv") == "monojet_Zp2000.0_DM_1.0_chan3"
    assert inputs.signal_name("monojet_Zp2000.0_DM_50.0_chan3.csv") == "monojet_Zp2000.0_DM_50.0_chan3"
    assert [inputs.signal_name(n) for n in ("qstar.csv.gz", "a.b.h5", "c.hdf5", "x.CSV", "odd.dat")] == \
        ["qstar", "a.b", "c", "x", "odd.dat"]


def test_defect6_two_signals_of_one_name_are_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "qstar.csv").write_text("".join(sample_lines(3)))
    config = configuration(background="sample", signals=[str(tmp_path / "a" / "qstar.csv"),
                                                         str(tmp_path / "b" / "qstar.csv")])
    with pytest.raises(config_lib.ConfigError, match="both named 'qstar'"):
        inputs.load_signals(config)


def test_defect6_the_two_monojet_signals_are_both_scored(tmp_path):
    lines = sample_lines(4)
    names = ["monojet_Zp2000.0_DM_1.0_chan3.csv", "monojet_Zp2000.0_DM_50.0_chan3.csv"]
    for k, name in enumerate(names):
        (tmp_path / name).write_text("".join(lines[k:k + 2]))
    signals = inputs.load_signals(configuration(background="sample", signals=[str(tmp_path / n) for n in names]))
    assert sorted(signals) == sorted(n[:-4] for n in names) and all(len(s) == 2 for s in signals.values())


# --------------------------------------------------------------------------- defect 7
def test_defect7_max_events_takes_a_seeded_random_subset_of_every_process():
    config = configuration(background="sample", max_events=3000, subset="random")
    table, report = inputs.load_background(config)
    counts = dict(zip(table.processes, np.bincount(table.process, minlength=len(table.processes))))
    assert len(table) == 3000 and set(counts) == {"qcd", "wjets", "zjets", "ttbar"}
    assert counts["ttbar"] >= 5 and counts["qcd"] < 3000  # 341/50,000 of 3000 is 20 expected
    assert report["subset"] == {"max_events": 3000, "how": "random", "seed": 0}
    again, _ = inputs.load_background(config)
    np.testing.assert_array_equal(again.event_id, table.event_id)
    assert np.all(np.diff(table.event_id) > 0)  # file order kept
    other, _ = inputs.load_background(config_lib.merge(config, {"split": {"seed": 1}}))
    assert not np.array_equal(other.event_id, table.event_id)


def test_defect7_a_run_written_before_data_subset_keeps_reading_its_first_events():
    config = configuration(background="sample", max_events=600)
    config["data"].pop("subset", None)  # a configuration of a run of an earlier release
    table, report = inputs.load_background(config)
    np.testing.assert_array_equal(table.event_id, np.arange(600))
    assert report["subset"]["how"] == inputs.LEGACY_SUBSET == "first"
    with pytest.raises(config_lib.ConfigError, match="data.subset"):
        inputs.load_background(configuration(background="sample", max_events=10, subset="stratified"))


def test_defect7_the_embedded_sample_documents_its_order_and_thresholds():
    manifest = (SAMPLE_DIR / "manifest.json").read_text()
    readme = (SAMPLE_DIR / "README.md").read_text()
    for text in (manifest, readme):
        assert "process order" in text and "before smearing" in text
    jets = read_darkmachines(SAMPLE_DIR / "background.csv.gz", unit="GeV")
    pt = jets.obj_pt[jets.obj_type == objects.type_id("j")]
    assert 0.005 < np.mean(pt < 20) < 0.02 and pt.min() > 12.9  # what the documentation says: 1.3 %, 13 GeV
    # the documented way to drop them keeps every event and exactly the other objects, in order
    is_jet = jets.obj_type == objects.type_id("j")
    kept = jets.select_objects(~is_jet | (jets.obj_pt >= 20))
    assert len(kept) == len(jets) and len(kept.obj_pt) == len(jets.obj_pt) - int(np.sum(pt < 20))
    np.testing.assert_array_equal(kept.obj_pt, jets.obj_pt[~is_jet | (jets.obj_pt >= 20)])
    np.testing.assert_array_equal(np.diff(kept.offsets), np.bincount(
        jets.event_index[~is_jet | (jets.obj_pt >= 20)], minlength=len(jets)))


# --------------------------------------------------------------------------- defect 8
def test_defect8_an_object_fills_one_block_only():
    # one event: six jets (pT 100 … 50) and one b-jet (pT 72)
    pts = np.array([[100.0, 90, 80, 70, 60, 50, 72]])
    codes = np.array([[0, 0, 0, 0, 0, 0, 1]])
    events = Events.from_padded(codes, pts * 1.1, pts, np.zeros_like(pts), np.zeros_like(pts), met=np.ones(1),
                                met_phi=np.zeros(1))
    grid = ObjectGrid(blocks=[("j", 4), (["b", "j"], 2)], met_row=False, features=["pt"])
    x, mask, overflow = grid.transform(events, return_overflow=True)
    np.testing.assert_array_equal(x[0, :, 0], [100, 90, 80, 70, 72, 60])  # the b-jet and the 5th jet
    assert mask.sum() == 6 and overflow == {"j": 0, "b/j": 1}  # the 50 GeV jet, counted once
    assert grid.dropped(events) == {"objects": 7, "placed": 6, "beyond_caps": {"j": 0, "b/j": 1}, "no_block": {}}


def test_defect8_overlapping_blocks_never_place_more_objects_than_exist():
    events = read_darkmachines(SAMPLE_DIR / "zprime_tt.csv.gz", unit="GeV")[:500]
    grid = ObjectGrid(blocks=[("j", 3), (["b", "j"], 4), (["j", "b", "e-", "e+", "m-", "m+", "g"], 6)],
                      met_row=False, features=["pt"])
    x, mask = grid.transform(events)
    assert np.all(mask.sum(axis=1) <= events.n_objects)
    for i in range(0, 500, 50):  # every placed pT is one of the event's objects, each used once
        lo, hi = events.offsets[i], events.offsets[i + 1]
        placed = np.sort(x[i][mask[i]][:, 0])
        assert len(set(placed.tolist())) == len(placed)
        assert set(placed.tolist()) <= set(events.obj_pt[lo:hi].tolist())


# --------------------------------------------------------------------------- leftovers of killed runs
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_convert_removes_temporary_files_of_killed_runs_and_keeps_live_ones(tmp_path, capsys):
    source = tmp_path / "events.csv"
    source.write_text("".join(sample_lines(10)))
    tag = temporary_suffix()  # .HOST-PID.tmp of this (living) process
    host = tag.split(".")[1].rsplit("-", 1)[0]
    legacy = tmp_path / ".out.h5.abcd1234.tmp"
    dead = tmp_path / f".out.h5.efgh5678.{host}-{_dead_pid()}.tmp"
    live = tmp_path / f".out.h5.ijkl9012{tag}"
    other = tmp_path / ".other.h5.mnop3456.tmp"  # another output's: not ours to touch
    for path in (legacy, dead, live, other):
        path.write_bytes(b"partial")
    assert leftover_temporaries(tmp_path / "out.h5") == ([legacy, dead], [live])
    status, printed, _ = run_cli(["data", "convert", source, tmp_path / "out.h5", "--no-progress"], capsys)
    assert status == 0 and "removed 2 temporary file(s)" in printed and live.name in printed
    assert not legacy.exists() and not dead.exists() and live.exists() and other.exists()
    assert len(read_cache(tmp_path / "out.h5")) == 10


def test_the_temporary_cache_carries_the_writer_tag_while_written(tmp_path):
    seen = []
    events = read_darkmachines(SAMPLE_DIR / "qstar.csv.gz")[:10]
    write_cache([events], tmp_path / "c.h5", progress=lambda chunk: seen.extend(p.name for p in tmp_path.iterdir()))
    assert len(seen) == 1 and seen[0].startswith(".c.h5.") and seen[0].endswith(temporary_suffix())
    assert [p.name for p in tmp_path.iterdir()] == ["c.h5"]


# --------------------------------------------------------------------------- one number grammar
@pytest.mark.parametrize("token", ["947_383", "١٢٣", "１２３", " 5", "5 ", "\"5\"", "0x10", "1e", "+"])
def test_the_fast_path_and_the_line_checker_reject_the_same_numbers(tmp_path, token):
    lines = sample_lines(3)
    fields = lines[1].rstrip(";\n").split(";")
    fields[3] = token
    path = tmp_path / "n.csv"
    path.write_text(lines[0] + ";".join(fields) + ";\n" + lines[2])
    with pytest.raises(DataFormatError) as info:
        read_darkmachines(path)
    assert info.value.line == 2 and info.value.field == "field 4 (MET)"
    skipped = read_darkmachines(path, on_error="skip")
    assert len(skipped) == 2 and skipped.meta["n_skipped"] == 1


def test_a_line_that_both_parsers_accept_reads_the_same_either_way(tmp_path):
    lines = sample_lines(30)
    path = tmp_path / "ok.csv"
    path.write_text("".join(lines))
    fast = read_darkmachines(path)
    path.write_text("".join(lines) + "bad\n")  # one bad line: the whole chunk goes line by line
    slow = read_darkmachines(path, on_error="skip")
    assert slow.meta["n_skipped"] == 1
    for name in ("event_id", "met", "obj_pt", "obj_eta", "offsets", "obj_type"):
        np.testing.assert_array_equal(getattr(slow, name), getattr(fast, name))


# --------------------------------------------------------------------------- generator thresholds
def _spray(pt, n=10, seed=0):
    from tfp_anomaly.data.generate.detector import Particles

    rng = np.random.default_rng(seed)
    eta, phi = 0.3 + 0.03 * rng.normal(size=n), 1.0 + 0.03 * rng.normal(size=n)
    pts = np.full(n, pt / n)
    p = np.stack([pts * np.cos(phi), pts * np.sin(phi), pts * np.sinh(eta), pts * np.cosh(eta)], 1)
    return Particles(np.full(n, 211), p, np.zeros((0, 4)), np.zeros((0, 4)))


def test_generator_thresholds_apply_after_smearing():
    pytest.importorskip("fastjet", reason="the detector simulation clusters jets with fastjet")
    from tfp_anomaly.data.generate.detector import DetectorConfig, reconstruct

    config, rng = DetectorConfig(), np.random.default_rng(3)
    found = {true: [o for _ in range(300) for o in reconstruct(_spray(true), config, rng)[0]]
             for true in (17.0, 21.0)}
    for jets in found.values():
        assert all(o[2] > config.jet_pt_min for o in jets)  # nothing below 20 GeV leaves the detector
    # jets of 17 GeV fluctuate above the threshold, jets of 21 GeV below it (σ ≈ 12 % here)
    assert 0.03 < len(found[17.0]) / 300 < 0.3 and 0.5 < len(found[21.0]) / 300 < 0.8
    exact = [o for _ in range(10) for o in reconstruct(_spray(17.0), DetectorConfig(smear=False), rng)[0]]
    assert exact == []  # without smearing the cut is on the true pT, as before
