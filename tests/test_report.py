"""Scores file, comparison tables, the published-results comparison, and the report end to end
(train a tiny run on the embedded sample → tfp-anomaly score → tfp-anomaly report)."""
import re

import numpy as np
import pandas as pd
import pytest

from tfp_anomaly.cli import main
from tfp_anomaly.report import ScoredRun, darkmachines_rows, read_published, versus_published
from tfp_anomaly.report.tables import DARKMACHINES_COLUMNS, comparison_table

from conftest import SHARED, _need

ANCHOR = SHARED / "anchors" / "darkmachines_challenge_ConvVAE_and_Flows.csv"


def _toy_run(name="toy", seed=0):
    rng = np.random.default_rng(seed)
    methods = ["mse", "mse+mahalanobis", "rank:2*mse+kl"]
    background = {m: rng.normal(size=3000) for m in methods}
    signals = {"sig A": {m: rng.normal(1.0, size=400) for m in methods},
               "sig/B": {m: rng.normal(0.3, size=300) for m in methods}}
    return ScoredRun(name, {"type": "vae", "prior": "", "flow": "planar*2"}, background, signals,
                     {"background": rng.normal(size=(50, 3))}, {"loss": [2.0, 1.5], "val_loss": [2.1, 1.7]})


def test_scores_file_round_trips_names_and_values(tmp_path):
    run = _toy_run()
    loaded = ScoredRun.load(run.save(tmp_path / "scores.h5"))
    assert loaded.name == "toy" and loaded.methods == run.methods and list(loaded.signals) == ["sig A", "sig/B"]
    np.testing.assert_array_equal(loaded.signals["sig/B"]["rank:2*mse+kl"], run.signals["sig/B"]["rank:2*mse+kl"])
    assert loaded.history == run.history and loaded.meta["flow"] == "planar*2"
    with pytest.raises(FileNotFoundError, match="run `tfp-anomaly score` first"):
        ScoredRun.load(tmp_path / "missing.h5")


def test_a_damaged_scores_file_is_named_not_a_traceback(tmp_path):
    path = _toy_run().save(tmp_path / "scores.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"scores\.h5: not a readable scores file, truncated or corrupt HDF5"):
        ScoredRun.load(path)
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=[1, 2])
    with pytest.raises(ValueError, match=r"other\.h5: not a scores file of tfp-anomaly score"):
        ScoredRun.load(tmp_path / "other.h5")


def test_runs_with_the_same_name_are_told_apart():
    from tfp_anomaly.report.document import unique_names

    a, b, c = _toy_run("best"), _toy_run("best", seed=1), _toy_run("other")
    a.meta["run_dir"], b.meta["run_dir"] = "runs/search_a/best", "runs/search_b/best"
    assert [r.name for r in unique_names([a, b, c])] == ["search_a/best", "search_b/best", "other"]
    assert [r.name for r in unique_names([_toy_run("x"), _toy_run("x")])] == ["x #1", "x #2"]


def test_comparison_table_and_darkmachines_rows():
    table = comparison_table([_toy_run("a"), _toy_run("b", seed=1)], bootstrap=5)
    assert len(table) == 2 * 3 * 2
    rows = darkmachines_rows(table, channel="3")
    assert list(rows.columns) == DARKMACHINES_COLUMNS and set(rows["Chan"]) == {"3"}
    assert rows["Model"].iloc[0].startswith(("a_", "b_"))
    np.testing.assert_allclose(rows["1e-2"], table["eff@1e-2"])


def test_published_table_is_read_and_compared(tmp_path):
    path = _need(ANCHOR)
    published = read_published(path)
    assert len(published) == 7 * 34 and list(published.columns) == DARKMACHINES_COLUMNS
    first = published.iloc[0]
    assert (first["Signal"], first["Model"], first["Chan"]) == ("sqsq1_sq1400_neut800", "VAE_NoF", "1")
    assert first["AUC"] == pytest.approx(0.5696313957412045)
    ours = pd.DataFrame([{"Signal": "monojet_Zp2000.0_DM_50.0", "Model": "mine", "Chan": "3", "AUC": 0.9,
                          "1e-2": 0.5, "1e-3": 0.2, "1e-4": 0.1}])
    merged, note = versus_published(ours, published)
    assert len(merged) == 7 and "1 signal/channel pair" in note and {"AUC_ours", "AUC_published"} <= set(merged.columns)
    _, note = versus_published(ours.assign(Chan="sample"), published)
    assert "No signal/channel in common" in note


def test_malformed_published_table_names_row_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Signal,Model,Chan,AUC,1e-2,1e-3,1e-4\ns,m,1,0.5,0.1,0.01,0.001\ns,m,2,0.5,oops,0.01,0.001\n")
    with pytest.raises(ValueError, match=r"bad.csv: row 3, column 1e-2: not a number: 'oops'"):
        read_published(bad)
    (tmp_path / "short.csv").write_text("Signal,Model,AUC\n")
    with pytest.raises(ValueError, match="missing column"):
        read_published(tmp_path / "short.csv")


def test_score_and_report_commands_on_a_tiny_run(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text("""
data: {background: sample, signals: sample, max_events: 2000}
grid: {blocks: [[j, 6], [b, 2], [m+, 1], [m-, 1], [e+, 1], [e-, 1], [g, 1]], met_row: true, features: [E, pt, eta, phi]}
scaler: {name: standard, log_columns: [0, 1]}
model: {type: swae, latent_dim: 3, prior: ring, network: {type: dense, hidden_units: [32]}}
training: {epochs: 2, batch_size: 128, verbose: 0, jit_compile: false}
""")
    run_dir = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run_dir)]) == 0
    from tfp_anomaly.data.sample import sample_files

    assert main(["score", str(run_dir), "--signal", str(sample_files()["qstar"]), "--methods", "mse",
                 "--max-signal-events", "200", "--no-progress"]) == 0  # a user's file, named by its stem
    assert "qstar (200)" in capsys.readouterr().out
    assert set(ScoredRun.load(run_dir / "scores.h5").signals) == {"qstar"}
    assert main(["score", str(run_dir), "--max-signal-events", "400", "--no-progress"]) == 0  # replaces it
    assert "wprime_wz (400)" in capsys.readouterr().out
    scored = ScoredRun.load(run_dir / "scores.h5")
    assert {"mse", "chamfer", "mahalanobis", "radial", "latent_logp", "mse+mahalanobis"} <= set(scored.methods)
    assert len(scored.background["mse"]) == 400 and set(scored.signals) == {"wprime_wz", "zprime_tt", "qstar"}
    out = tmp_path / "report"
    args = ["report", str(run_dir), "--out", str(out), "--bootstrap", "5"]
    assert main(args + (["--published", str(ANCHOR)] if ANCHOR.exists() else [])) == 0
    printed = capsys.readouterr().out
    assert "report.html" in printed and "qstar" in printed
    html = (out / "report.html").read_text()
    figures = sorted(p.name for p in out.glob("*.png"))
    assert {"training_curves.png"} < set(figures) and any(f.startswith("latent_") for f in figures)
    assert html.count("data:image/png;base64,") == len(figures)  # every plot embedded
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html) and "<script" not in html  # offline
    for heading in ("Best score per model and signal", "Every model × score × signal", "Dark Machines challenge format"):
        assert heading in html
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == len(scored.methods) * 3
    for _, row in table.iterrows():  # the HTML table shows every row's AUC
        assert f"{row['AUC']:.3f} ± " in html
    assert list(pd.read_csv(out / "darkmachines.csv").columns) == DARKMACHINES_COLUMNS
    assert (out / "report.md").read_text().count("![") == len(figures)


def test_report_of_an_unscored_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "run `tfp-anomaly score` first" in capsys.readouterr().err
