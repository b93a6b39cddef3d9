"""``tfp-anomaly score --background``: an independent background file is scored instead of the run's test
split (the scores still fitted on the training part); given exactly the test split's events it gives the
same scores and AUC as the default; a missing or wrong-kind file is a one-line error (exit 2) before any
slow work."""
import h5py
import numpy as np
import pytest

from tfp_anomaly import inputs
from tfp_anomaly.cli import main
from tfp_anomaly.data.cache import write_cache
from tfp_anomaly.data.sample import sample_files
from tfp_anomaly.evaluate import TEST_SPLIT, score_run
from tfp_anomaly.rundir import RunDirectory
from tfp_anomaly.report import ScoredRun
from tfp_anomaly.report.metrics import auc

TINY = """
data: {background: sample, max_events: 2000}
grid: {blocks: [[j, 6], [b, 2], [m+, 1], [m-, 1], [e+, 1], [e-, 1], [g, 1]], met_row: true, features: [E, pt, eta, phi]}
scaler: {name: standard, log_columns: [0, 1]}
model: {type: swae, latent_dim: 3, prior: ring, network: {type: dense, hidden_units: [16]}}
training: {epochs: 1, batch_size: 256, verbose: 0, jit_compile: false}
"""
METHODS = ["--methods", "mse", "mahalanobis", "--max-signal-events", "300", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny SWAE trained for one epoch on 2,000 events of the embedded sample."""
    root = tmp_path_factory.mktemp("score_background")
    (root / "tiny.yaml").write_text(TINY)
    assert main(["train", str(root / "tiny.yaml"), "--run-dir", str(root / "run")]) == 0
    return root / "run"


def _write_test_split(run_dir, path):
    """Write the run's own held-out test events to an event cache (the format `data convert` writes)."""
    table, _ = inputs.load_background(RunDirectory(run_dir).read_config())
    write_cache([table[RunDirectory(run_dir).read_split().test]], path)
    return path


def test_the_test_split_given_as_a_file_scores_as_the_default(run_dir, tmp_path, capsys):
    signal = ["--signal", str(sample_files()["qstar"])]
    assert main(["score", str(run_dir), *signal, *METHODS]) == 0
    default = ScoredRun.load(run_dir / "scores.h5")
    file = _write_test_split(run_dir, tmp_path / "test_split.h5")
    assert main(["score", str(run_dir), "--background", str(file), *signal, *METHODS]) == 0
    assert "400 independent background events" in capsys.readouterr().out
    independent = ScoredRun.load(run_dir / "scores.h5")
    assert default.meta["background"] == TEST_SPLIT and independent.meta["background"] == [str(file.resolve())]
    assert independent.meta["background_signal_events_removed"] == 0
    for method in ("mse", "mahalanobis"):
        np.testing.assert_allclose(independent.background[method], default.background[method], rtol=1e-6)
        np.testing.assert_allclose(independent.signals["qstar"][method], default.signals["qstar"][method])
        assert auc(independent.background[method], independent.signals["qstar"][method]) == pytest.approx(
            auc(default.background[method], default.signals["qstar"][method]), abs=1e-9)


@pytest.mark.parametrize("x, message", [
    (np.zeros((10, 43), np.float32), r"gives a feature table of shape \(43,\), but the run's model takes events on "
                                     r"an object grid of shape \(14, 4\)"),
    ({"x": np.zeros((0, 14, 4), np.float32), "mask": np.zeros((0, 14), bool)}, "no background event to score"),
])
def test_background_given_as_model_input_is_checked_against_the_run(run_dir, x, message):
    with pytest.raises(ValueError, match=message):
        score_run(run_dir, background=x)


def test_a_missing_background_file_is_one_line_naming_it(run_dir, tmp_path, capsys):
    missing = tmp_path / "no_such_background.csv"
    assert main(["score", str(run_dir), "--background", str(missing), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_background.csv" in err and err.startswith("tfp-anomaly: error:")


def test_a_feature_table_for_an_object_grid_run_is_one_line_naming_it(run_dir, tmp_path, capsys):
    table = tmp_path / "scalars_bkg.h5"
    with h5py.File(table, "w") as handle:  # recognised as LHCO high-level features by its frame name
        handle.create_group("bkg")
    assert main(["score", str(run_dir), "--background", str(table), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scalars_bkg.h5" in err
    assert "feature table" in err and "object grid" in err and "(14, 4)" in err
