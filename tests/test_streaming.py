"""Files larger than memory through the command line: the streamed and the in-memory reading of one
configuration give the same selection, split, scaler and scores; a streamed epoch visits every event
once in a seeded order; sharded scoring merges to the unsharded scores."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import yaml

from tfp_anomaly import config as config_lib
from tfp_anomaly import inputs, streaming
from tfp_anomaly.cli import main
from tfp_anomaly.data import read_darkmachines
from tfp_anomaly.data.observables import REPORT_OBSERVABLES
from tfp_anomaly.data.sample import sample_files
from tfp_anomaly.data.splits import split_indices, subset_indices
from tfp_anomaly.evaluate import shard_range
from tfp_anomaly.report import ScoredRun
from tfp_anomaly.rundir import RunDirectory

CONFIG = """
data: {{background: {background}, signals: {{qstar: {signal}}}, weights: true, chunk_events: 300}}
grid: {{blocks: [[j, 6], [b, 2], [m+, 1], [m-, 1], [e+, 1], [e-, 1], [g, 1]], met_row: true, features: [E, pt, eta, phi]}}
scaler: {{name: standard, log_columns: [0, 1]}}
model: {{type: vae, latent_dim: 3, network: {{type: dense, hidden_units: [16]}}, iwae_samples: 2}}
training: {{epochs: 1, batch_size: 128, verbose: 0, jit_compile: false}}
"""


def _lines(path: Path, n: int) -> list[str]:
    with gzip.open(path, "rt") as handle:
        return [line for _, line in zip(range(n), handle)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A background file of 2,400 events mixing the embedded processes (weights varied per event), and a
    signal file; block size 256 rows so the streamed reading crosses many blocks."""
    root = tmp_path_factory.mktemp("streaming")
    rng = np.random.default_rng(0)
    lines = _lines(sample_files()["background"], 50_000)
    picked = [lines[i] for i in np.sort(rng.choice(len(lines), 2400, replace=False))]
    with_weights = []
    for k, line in enumerate(picked):
        fields = line.split(";")
        fields[0], fields[2] = str(k), f"{rng.uniform(0.5, 2.0):.4f}"
        with_weights.append(";".join(fields))
    (root / "background.csv").write_text("".join(with_weights))
    (root / "signal.csv").write_text("".join(_lines(sample_files()["qstar"], 500)))
    config = CONFIG.format(background=root / "background.csv", signal=root / "signal.csv")
    (root / "run.yaml").write_text(config)
    return root


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(streaming, "BLOCK_ROWS", 256)


def _config(files, **data) -> dict:
    config = config_lib.load_config(files / "run.yaml", [f"data.{k}={v}" for k, v in data.items()])
    return config


@pytest.mark.parametrize("max_events, subset", [(None, "random"), (1500, "random"), (1500, "first")])
def test_streamed_and_in_memory_reading_select_split_and_scale_alike(files, max_events, subset):
    extra = {} if max_events is None else {"max_events": max_events, "subset": subset}
    memory = inputs.prepare_data(_config(files, stream="false", **extra))
    streamed = inputs.prepare_data(_config(files, stream="true", **extra))
    assert not memory.streamed and streamed.streamed
    np.testing.assert_array_equal(memory.split.codes(), streamed.split.codes())
    assert memory.scaler.get_config() == streamed.scaler.get_config()
    for part in ("train", "val", "test"):  # the same events, in the same order, with their weights
        whole = memory.part(part)
        chunks = list(streamed.parts[part].chunks(100))
        assert sum(len(c.event_id) for c in chunks) == whole.n_events
        np.testing.assert_array_equal(np.concatenate([c.event_id for c in chunks]), whole.event_id)
        np.testing.assert_array_equal(np.concatenate([c.inputs["x"] for c in chunks]), whole.inputs["x"])
        np.testing.assert_array_equal(np.concatenate([c.weights for c in chunks]), whole.weights)
    # and the in-memory selection is the one the files have always given: subset, then permutation split
    n = 2400 if max_events is None else max_events
    kept = np.arange(2400) if max_events is None else subset_indices(2400, max_events, subset, 0)
    split = split_indices(len(kept), (0.6, 0.2, 0.2), 0)
    np.testing.assert_array_equal(memory.ids["test"][0], kept[split.test])
    assert len(kept) == n and memory.report["split"] == {k: len(v) for k, v in split.parts().items()}


def test_a_streamed_epoch_visits_every_event_once_in_a_seeded_order(files):
    part = inputs.prepare_data(_config(files, stream="true")).parts["train"]
    first = np.concatenate([c.event_id for c in part.shuffled(seed=3, epoch=0)])
    assert sorted(first) == sorted(np.concatenate([c.event_id for c in part.chunks()]))
    np.testing.assert_array_equal(first, np.concatenate([c.event_id for c in part.shuffled(seed=3, epoch=0)]))
    second = np.concatenate([c.event_id for c in part.shuffled(seed=3, epoch=1)])
    assert sorted(second) == sorted(first) and not np.array_equal(second, first)
    sizes = [len(x["x"]) for x, _ in streaming.batches(part.shuffled(3, 0), 128)]
    assert sizes[:-1] == [128] * (len(sizes) - 1) and sum(sizes) == part.n_events


def test_shard_ranges_cover_every_event_once_on_batch_boundaries():
    for n in (1, 5, 4096, 10_001):
        for count in (1, 2, 3, 7):
            ranges = [shard_range(n, 256, (i, count)) for i in range(count)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            assert all(lo % 256 == 0 for lo, _ in ranges)


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    run = tmp_path_factory.mktemp("streamed_run") / "run"
    assert main(["train", str(files / "run.yaml"), "--run-dir", str(run), "-o", "data.stream=true"]) == 0
    return run


def _score(run, *extra):
    """Scores with and without posterior samples (iwae draws per batch: the batch numbering matters)."""
    methods = ["--methods", "mse", "mahalanobis", "iwae", "mse+mahalanobis"]
    assert main(["score", str(run), "--batch-size", "256", "--no-progress", *methods, *extra]) == 0


def test_a_streamed_run_scores_alike_streamed_in_memory_and_in_shards(trained, files, monkeypatch):
    run = RunDirectory(trained)
    _score(trained)
    streamed = ScoredRun.load(run.scores_file)
    assert streamed.weights is not None and len(streamed.events["background"]["event_id"]) == 480
    config = yaml.safe_load(run.file(run.CONFIG).read_text())
    config["data"]["stream"] = False  # the same run read into memory
    run.file(run.CONFIG).write_text(yaml.safe_dump(config))
    _score(trained)
    memory = ScoredRun.load(run.scores_file)
    for method in streamed.methods:
        np.testing.assert_array_equal(memory.background[method], streamed.background[method])
        np.testing.assert_array_equal(memory.signals["qstar"][method], streamed.signals["qstar"][method])
    for shard in range(3):
        _score(trained, "--shard", f"{shard}/3")
    merged = run.load_scores()
    for method in streamed.methods:
        np.testing.assert_array_equal(merged.background[method], memory.background[method])
        np.testing.assert_array_equal(merged.signals["qstar"][method], memory.signals["qstar"][method])
    np.testing.assert_array_equal(merged.events["background"]["event_id"], memory.events["background"]["event_id"])
    for sample in ("background", "qstar"):  # every scored event carries its physics observables, in each mode
        for name in REPORT_OBSERVABLES:
            np.testing.assert_array_equal(streamed.observables[sample][name], memory.observables[sample][name])
            np.testing.assert_array_equal(merged.observables[sample][name], memory.observables[sample][name])
    _observables_match_the_events(files, memory)


def _observables_match_the_events(files, scored):
    """The stored observables are those of the events the ids name (an independent read of the CSV, HT and
    the jet count recomputed here from the objects)."""
    events = read_darkmachines(files / "background.csv", unit="GeV")
    by_id = {int(i): k for k, i in enumerate(events.event_id)}
    rows = np.array([by_id[int(i)] for i in scored.events["background"]["event_id"]])
    picked = events[rows]
    jets = np.isin(picked.obj_type, [0, 1])  # j, b
    ht = np.bincount(picked.event_index[jets], weights=picked.obj_pt[jets].astype(np.float64), minlength=len(picked))
    np.testing.assert_allclose(scored.observables["background"]["HT"], ht, rtol=1e-12)
    np.testing.assert_array_equal(scored.observables["background"]["n_jets"], np.bincount(
        picked.event_index[jets], minlength=len(picked)))
    np.testing.assert_allclose(scored.observables["background"]["MET"], picked.met, rtol=1e-6)
    assert len(set(scored.observables["background"]["m_jj"])) > 100
