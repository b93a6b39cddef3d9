"""The automatic cache (:mod:`tfp_anomaly.data.store`) and random access to a cache
(:class:`tfp_anomaly.data.cache.CacheReader`): a source converted once and reused, reconverted when its
key changes, rebuilt when damaged, converted once by two processes at a time; every event range read
back exactly as written."""
from __future__ import annotations

import gzip
import logging
import multiprocessing
import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tfp_anomaly.data import DataFormatError, Events, read_events, write_cache
from tfp_anomaly.data import formats
from tfp_anomaly.data.cache import CacheReader
from tfp_anomaly.data.convert import convert
from tfp_anomaly.data.events import EVENT_FIELDS, OBJECT_FIELDS
from tfp_anomaly.data.sample import SAMPLE_DIR, sample_files
from tfp_anomaly.data.store import CACHE_ENV, KEY_ATTR, cache_path, default_cache_dir, ensure_cache

STORE_LOG = "tfp_anomaly.data.store"


def sample_lines(n: int, part: str = "qstar") -> list[str]:
    with gzip.open(SAMPLE_DIR / f"{part}.csv.gz", "rt") as handle:
        return [next(handle) for _ in range(n)]


def write_lines(path: Path, lines) -> Path:
    path.write_text("".join(lines))
    return path


def assert_same_events(got: Events, want: Events, codes: bool = True) -> None:
    """Field by field, exactly (values and dtypes); ``codes=False`` compares process names, not codes
    (a cache numbers processes in the order it meets them)."""
    assert len(got) == len(want) and got.unit == want.unit
    for name in EVENT_FIELDS + OBJECT_FIELDS + ("offsets",):
        if name == "process" and not codes:
            np.testing.assert_array_equal(got.process_name, want.process_name)
            continue
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    if codes:
        assert got.processes == want.processes
    if want.labels is None:
        assert got.labels is None
    else:
        assert got.labels.dtype == want.labels.dtype
        np.testing.assert_array_equal(got.labels, want.labels)


def random_events(n: int, seed: int = 0, labelled: bool = True) -> Events:
    """Events with jagged object counts (zeros included), three processes, float64 weights, large ids."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 7, n)
    counts[rng.random(n) < 0.2] = 0
    offsets = np.concatenate([[0], np.cumsum(counts)])
    m = int(offsets[-1])
    return Events(event_id=rng.integers(-2**53, 2**53, n), process=rng.integers(0, 3, n),
                  weight=rng.random(n) * 1e-3 + 1e-9, met=rng.random(n).astype(np.float32) * 1e5,
                  met_phi=rng.uniform(-np.pi, np.pi, n), offsets=offsets, obj_type=rng.integers(0, 7, m),
                  obj_e=rng.random(m) * 1e6, obj_pt=rng.random(m) * 1e5, obj_eta=rng.normal(size=m),
                  obj_phi=rng.uniform(-np.pi, np.pi, m), processes=("ttbar", "wjets", "qcd"),
                  labels=rng.integers(0, 2, n) if labelled else None, unit="GeV")


def written(events: Events, path: Path, chunk: int = 37) -> Path:
    write_cache((events[i:i + chunk] for i in range(0, len(events), chunk)), path)
    return path


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def source(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    return write_lines(tmp_path / "data" / "signal.csv", sample_lines(30))


def stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_ino


def cached_events(info) -> Events:
    with CacheReader(info.path) as reader:
        return reader.read()


# --------------------------------------------------------------------------- conversion and reuse

def test_converted_once_then_reused_untouched(source, cache_dir, caplog):
    caplog.set_level(logging.INFO, STORE_LOG)
    first = ensure_cache(source, cache_dir=cache_dir)
    assert (first.reused, first.n_events, first.n_skipped) == (False, 30, 0)
    assert first.path == cache_path(source, cache_dir) and first.source == source.resolve()
    assert first.path.parent == cache_dir.absolute() and first.path.name.startswith("signal.csv.")
    assert "no cache yet" in caplog.text
    before = stamp(first.path)
    second = ensure_cache(source, cache_dir=cache_dir, format="darkmachines")  # the format auto detects
    assert (second.reused, second.path, second.n_events) == (True, first.path, 30)
    assert stamp(first.path) == before
    assert sorted(p.name for p in source.parent.iterdir()) == ["signal.csv"]  # nothing beside the source
    assert sorted(p.name for p in cache_dir.iterdir()) == [first.path.name, first.path.name + ".lock"]
    assert_same_events(cached_events(first), read_events(source))  # native unit: MeV
    with h5py.File(first.path) as handle:
        assert KEY_ATTR in handle["events"].attrs


def test_modified_or_touched_source_is_reconverted(source, cache_dir, caplog):
    caplog.set_level(logging.INFO, STORE_LOG)
    ensure_cache(source, cache_dir=cache_dir)
    write_lines(source, sample_lines(45))
    info = ensure_cache(source, cache_dir=cache_dir)
    assert (info.reused, info.n_events) == (False, 45) and "size" in caplog.text
    assert_same_events(cached_events(info), read_events(source))
    caplog.clear()
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touched, same content
    assert not ensure_cache(source, cache_dir=cache_dir).reused and "modification time" in caplog.text
    assert ensure_cache(source, cache_dir=cache_dir).reused


def test_changed_on_error_or_format_is_reconverted(source, cache_dir, caplog, monkeypatch):
    caplog.set_level(logging.INFO, STORE_LOG)
    ensure_cache(source, cache_dir=cache_dir)
    assert not ensure_cache(source, cache_dir=cache_dir, on_error="skip").reused
    assert "on_error='raise', now on_error='skip'" in caplog.text
    assert ensure_cache(source, cache_dir=cache_dir, on_error="skip").reused
    assert not ensure_cache(source, cache_dir=cache_dir).reused
    # another reader of the same file (registered for this test only)
    copy = formats.Format("dm-copy", "the Dark Machines reader under another name", lambda p: False,
                          formats.darkmachines.iter_darkmachines)
    monkeypatch.setitem(formats.FORMATS._entries, "dm-copy", copy)
    caplog.clear()
    info = ensure_cache(source, cache_dir=cache_dir, format="dm-copy")
    assert not info.reused and "format='darkmachines', now format='dm-copy'" in caplog.text
    assert_same_events(cached_events(info), read_events(source))


def test_damaged_cache_is_rebuilt(source, cache_dir, caplog):
    caplog.set_level(logging.INFO, STORE_LOG)
    target = ensure_cache(source, cache_dir=cache_dir).path
    size = target.stat().st_size
    with open(target, "r+b") as handle:  # truncated, as by a full disk or a killed copy
        handle.truncate(size // 2)
    info = ensure_cache(source, cache_dir=cache_dir)
    assert not info.reused and info.n_events == 30 and target.stat().st_size == size
    assert any(r.levelno == logging.WARNING and "damaged" in r.getMessage() for r in caplog.records)
    with h5py.File(target, "r+") as handle:  # object counts that no longer add up to the objects stored
        handle["events/n_objects"][0] += 1
    caplog.clear()
    info = ensure_cache(source, cache_dir=cache_dir)
    assert not info.reused and "add up to" in caplog.text
    assert_same_events(cached_events(info), read_events(source))


def test_a_cache_is_used_in_place(tmp_path, cache_dir):
    events = random_events(50)
    path = written(events, tmp_path / "events.h5")
    before = stamp(path)
    info = ensure_cache(path, cache_dir=cache_dir)
    assert (info.path, info.reused, info.n_events, info.source) == (path.resolve(), True, 50, path.resolve())
    assert stamp(path) == before and not cache_dir.exists()


def test_skip_counts_reported_and_a_failed_conversion_keeps_the_cache(tmp_path, source, cache_dir, caplog):
    lines = sample_lines(20)
    lines[3], lines[11] = "1;qstar;1.0;oops;0.1\n", "2;qstar\n"
    write_lines(source, lines)
    info = ensure_cache(source, cache_dir=cache_dir, on_error="skip")
    assert (info.reused, info.n_events, info.n_skipped) == (False, 18, 2)
    caplog.clear()
    again = ensure_cache(source, cache_dir=cache_dir, on_error="skip")
    assert (again.reused, again.n_skipped) == (True, 2)
    assert "2 malformed record(s)" in caplog.text and "line 4" in caplog.text
    before = stamp(info.path)
    with pytest.raises(DataFormatError) as error:
        ensure_cache(source, cache_dir=cache_dir, on_error="raise")
    assert error.value.line == 4
    assert stamp(info.path) == before and ensure_cache(source, cache_dir=cache_dir, on_error="skip").reused
    assert [p.suffix for p in cache_dir.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("content, on_error", [("", "raise"), ("\n\n", "raise"), ("1;a\n2;b\n", "skip")],
                         ids=["empty", "blank", "all-malformed"])
def test_a_source_without_events_is_refused_as_by_convert(tmp_path, cache_dir, content, on_error):
    source = write_lines(tmp_path / "none.csv", [content])
    with pytest.raises(DataFormatError) as by_convert:
        convert(source, tmp_path / "none.h5", on_error=on_error)
    with pytest.raises(DataFormatError) as error:
        ensure_cache(source, cache_dir=cache_dir, on_error=on_error)
    assert error.value.reason == by_convert.value.reason and error.value.path == str(source)
    assert [p.name for p in cache_dir.iterdir()] == [cache_path(source, cache_dir).name + ".lock"]


def test_source_changing_during_the_conversion_is_refused(source, cache_dir):
    def append(chunk, position, total):  # once: a reader that caught up would read each new line forever
        if not appended:
            appended.append(position)
            with open(source, "a") as handle:
                handle.write(sample_lines(1)[0])

    appended = []

    with pytest.raises(DataFormatError, match="changed while it was being converted"):
        ensure_cache(source, cache_dir=cache_dir, chunk_size=10, progress=append)
    assert not cache_path(source, cache_dir).exists()


def test_where_the_cache_lives(source, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert ensure_cache(source).path.parent == tmp_path / "env"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "tfp-anomaly"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path("~/.cache/tfp-anomaly").expanduser()
    # the name: readable, and one cache per resolved path (a link shares the file's cache)
    other = write_lines(tmp_path / "signal.csv", sample_lines(30))
    assert cache_path(other, tmp_path).name != cache_path(source, tmp_path).name
    (tmp_path / "link.csv").symlink_to(source)
    assert cache_path(tmp_path / "link.csv", tmp_path) == cache_path(source, tmp_path)
    with pytest.raises(DataFormatError, match="never written beside its source"):
        ensure_cache(source, cache_dir=source.parent)
    assert sorted(p.name for p in source.parent.iterdir()) == ["signal.csv"]


def _slow_progress(chunk, position, total):
    time.sleep(0.1)


def _convert_when_both_ready(source, cache_dir, barrier, results):
    barrier.wait()
    info = ensure_cache(source, cache_dir=cache_dir, chunk_size=5, progress=_slow_progress)
    results.put((info.reused, info.n_events))


def test_two_processes_convert_once(source, cache_dir):
    """Both start together; the conversion takes ~0.6 s (6 chunks), so the second arrives while the first
    converts: it must wait for the lock, then reuse. Two conversions would report reused=False twice."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_convert_when_both_ready, args=(source, cache_dir, barrier, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sorted(results.get(timeout=5) for _ in workers) == [(False, 30), (True, 30)]
    assert_same_events(cached_events(ensure_cache(source, cache_dir=cache_dir)), read_events(source))


def test_embedded_sample_through_the_cache_equals_the_reader(tmp_path):
    path = sample_files()["background"]
    want = read_events(path)
    info = ensure_cache(path, cache_dir=tmp_path)
    with CacheReader(info.path) as reader:
        assert (reader.n_events, reader.unit, reader.processes, reader.has_labels) == (len(want), "MeV",
                                                                                        want.processes, False)
        assert_same_events(reader.read(), want)
        assert_same_events(reader.read(12_345, 40_000), want[12_345:40_000])


# --------------------------------------------------------------------------- random access

class CountingReads:
    """Wraps an h5py dataset and records how many entries each read returns."""

    def __init__(self, dataset):
        self.dataset, self.sizes = dataset, []

    def __getitem__(self, index):
        values = self.dataset[index]
        self.sizes.append(len(values))
        return values


def test_every_range_reads_back_exactly(tmp_path):
    events = random_events(200, seed=1)
    block = 7
    with CacheReader(written(events, tmp_path / "e.h5"), block=block) as reader:
        assert (reader.n_events, reader.n_objects_total, reader.unit, reader.has_labels) == (
            200, int(events.offsets[-1]), "GeV", True)
        np.testing.assert_array_equal(reader._boundaries, events.offsets[list(range(0, 200, block)) + [200]])
        reader._counts = counts = CountingReads(reader._counts)
        rng = np.random.default_rng(2)
        ranges = [(0, 0), (200, 200), (199, 200), (0, 200), (6, 8), (7, 7), (7, 14), (13, 15), (0, 1), (195, 200)]
        ranges += [tuple(sorted(rng.integers(0, 201, 2))) for _ in range(300)]
        for start, stop in ranges:
            counts.sizes.clear()
            assert_same_events(reader.read(start, stop), events[start:stop], codes=False)
            assert counts.sizes == [stop - (start // block) * block]  # one read, never the whole column
            np.testing.assert_array_equal(reader.labels(start, stop), events.labels[start:stop])
            np.testing.assert_array_equal(reader.weights(start, stop), events.weight[start:stop])
            np.testing.assert_array_equal(reader.event_ids(start, stop), events.event_id[start:stop])
        assert reader.weights().dtype == np.float64 and reader.event_ids().dtype == np.int64
        assert reader.labels().dtype == np.int8 and len(reader) == 200
        for start, stop in ((-1, 3), (5, 4), (0, 201)):
            with pytest.raises(IndexError, match="outside 0:200"):
                reader.read(start, stop)


def test_reader_of_unlabelled_and_empty_caches(tmp_path):
    events = random_events(40, seed=3, labelled=False)
    with CacheReader(written(events, tmp_path / "u.h5")) as reader:
        assert not reader.has_labels and reader.labels(3, 9) is None and reader.read(3, 9).labels is None
        assert_same_events(reader.read(3, 9), events[3:9], codes=False)
    write_cache([], tmp_path / "empty.h5")
    with CacheReader(tmp_path / "empty.h5") as reader:
        assert reader.n_events == 0 and len(reader.read()) == 0 and reader.read().offsets.tolist() == [0]


def test_reader_refuses_inconsistent_counts_and_closes(tmp_path):
    path = written(random_events(30, seed=4), tmp_path / "e.h5")
    reader = CacheReader(path)
    reader.close()
    reader.close()
    with pytest.raises(Exception):
        reader.read(0, 1)  # the file is closed
    with h5py.File(path, "r+") as handle:  # the file can be written: the reader holds it no more
        handle["events/n_objects"][5] = -1
    with pytest.raises(DataFormatError, match="negative object count among events 0-29"):
        CacheReader(path)
    with h5py.File(path, "r+") as handle:
        handle["events/n_objects"][5] = 10_000
    with pytest.raises(DataFormatError, match=r"add up to \d+ objects but \d+ are stored"):
        CacheReader(path)
    with pytest.raises(DataFormatError, match="not a tfp-anomaly-events cache"):
        with h5py.File(tmp_path / "other.h5", "w") as handle:
            handle["x"] = [1]
        CacheReader(tmp_path / "other.h5")
