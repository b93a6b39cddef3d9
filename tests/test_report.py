"""Scores file, comparison tables, the published-results comparison, and the report end to end
(train a tiny run on the embedded sample → tfp-anomaly score → tfp-anomaly report)."""
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from tfp_anomaly.cli import main
from tfp_anomaly.report import ScoredRun, darkmachines_rows, read_published, versus_published
from tfp_anomaly.report.tables import DARKMACHINES_COLUMNS, comparison_table

from conftest import SHARED, _need
from report_runs import demo_like_runs

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


# --------------------------------------------------------------------------- seeds, cuts and the page

def _quiet_table(runs, bootstrap=0):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return comparison_table(runs, bootstrap=bootstrap)


def test_runs_differing_only_by_seed_are_averaged_with_their_spread():
    from sklearn.metrics import roc_auc_score

    from tfp_anomaly.report import tables

    runs = demo_like_runs(n_background=3000, n_signal=400)
    summary = tables.over_seeds(tables.with_signal_mean(_quiet_table(runs)), runs).set_index(["model", "score", "signal"])
    assert set(summary.index.get_level_values("model")) == {"swae (prior ring)", "swae (prior gaussian)",
                                                            "vae (flow planar*6)"}

    def sk_auc(run, method, signal):
        b, s = run.background[method], run.signals[signal][method]
        return roc_auc_score(np.r_[np.zeros(len(b)), np.ones(len(s))], np.r_[b, s])

    ring = runs[:2]
    for method in ("mse", "mse+mahalanobis"):
        for signal in ("wprime_wz", "qstar"):
            row = summary.loc[("swae (prior ring)", method, signal)]
            per_seed = [sk_auc(run, method, signal) for run in ring]
            assert row["n_seeds"] == 2 and row["runs"] == "ConvSWAE ring s0, ConvSWAE ring s1"
            assert row["AUC"] == pytest.approx(np.mean(per_seed), abs=1e-12)
            assert row["AUC_std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12) and row["AUC_std"] > 0
        averaged = [np.mean([sk_auc(run, method, s) for s in ("wprime_wz", "qstar")]) for run in ring]
        row = summary.loc[("swae (prior ring)", method, tables.SIGNAL_MEAN)]
        assert row["AUC"] == pytest.approx(np.mean(averaged), abs=1e-12)
        assert row["AUC_std"] == pytest.approx(np.std(averaged, ddof=1), abs=1e-12)
    single = summary.loc[("vae (flow planar*6)", "kl", "qstar")]  # a group of one: its run's figure, no spread
    assert single["n_seeds"] == 1 and np.isnan(single["AUC_std"])
    assert single["AUC"] == pytest.approx(sk_auc(runs[3], "kl", "qstar"), abs=1e-12)
    best = tables.best_overall(summary.reset_index())
    assert (best["signal"] == tables.SIGNAL_MEAN).all() and best["AUC"].is_monotonic_decreasing


def test_runs_without_a_config_digest_stay_apart_and_alike_labels_get_the_run_name():
    from tfp_anomaly.report import tables

    a, b = _toy_run("a"), _toy_run("b", seed=1)  # same meta, no config_digest
    groups = tables.seed_groups([a, b])
    assert [g["label"] for g in groups.values()] == ["vae (flow planar*2) · a", "vae (flow planar*2) · b"]
    summary = tables.over_seeds(_quiet_table([a, b]), [a, b])
    assert (summary["n_seeds"] == 1).all() and len(summary) == len(_quiet_table([a, b]))
    assert tables.model_label({"type": "swae", "prior": "ring"}) == "swae (prior ring)"
    assert tables.flow_label("iaf, reverse, iaf, reverse, iaf, reverse, iaf") == "iaf*4+reverse*3"


def test_only_distinct_seeds_scored_on_the_same_samples_are_grouped():
    import dataclasses

    from tfp_anomaly.report import tables

    meta = {"type": "swae", "prior": "ring", "config_digest": "c0ffee", "background": "test split",
            "files": {"qstar": ["q.csv"]}}
    def run(name, seed, **changes):
        return dataclasses.replace(_toy_run(name), meta={**meta, "seed": seed, **changes})

    grouped = tables.seed_groups([run("s0", 0), run("s1", 1)])
    assert [g["seeds"] for g in grouped.values()] == [[0, 1]]
    for runs in ([run("a", 0), run("b", 0)],  # one seed twice: not a spread over seeds
                 [run("a", 0), run("b", 1, files={"qstar": ["other.csv"]})],  # scored on other signal files
                 [run("a", 0), run("b", 1, background=["independent.h5"])]):  # on another background
        assert [len(g["runs"]) for g in tables.seed_groups(runs).values()] == [1, 1]


@pytest.mark.parametrize("weighted", [False, True])
def test_the_cut_keeps_the_stated_background_fraction(weighted):
    from tfp_anomaly.report import plots

    run = demo_like_runs(weighted=weighted, n_background=20_000, n_signal=500)[0]
    threshold, passed = plots.cut_passes(run, "mse", "background", 1e-3)
    w = run.weights["background"] if weighted else np.ones(len(passed))
    fraction = w[passed].sum() / w.sum()
    assert 1e-3 - 2 * w.max() / w.sum() < fraction <= 1e-3 + 1e-15  # never above ε_B, short by at most an event
    assert np.array_equal(passed, run.background["mse"] > threshold)
    _, signal_passed = plots.cut_passes(run, "mse", "qstar", 1e-3)
    assert np.array_equal(signal_passed, run.signals["qstar"]["mse"] > threshold)


def test_observable_histograms_use_integer_bins_for_multiplicities_and_count_the_cut():
    from tfp_anomaly.report import plots

    np.testing.assert_array_equal(plots.observable_bins([0, 3, 1, 2, np.nan]), [-0.5, 0.5, 1.5, 2.5, 3.5])
    assert len(plots.observable_bins(np.linspace(0, 1, 100))) == 31
    run = demo_like_runs(n_background=5000, n_signal=500)[3]
    figure = plots.observables_at_cut(run, "mse", "qstar", 1e-2)
    assert [ax.get_xlabel() for ax in figure.axes[:5]] == [plots.OBSERVABLE_LABELS[n] for n in run.observables["qstar"]]
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    _, passed = plots.cut_passes(run, "mse", "background", 1e-2)
    assert f"background: {int(passed.sum())} above the cut" in labels[1] and labels[0] == "background: all 5,000"
    solid = [patch.get_linestyle()[1] is None for patch in figure.axes[0].patches]
    assert sorted(solid) == [False, False, True, True]  # each sample before (dashed) and after (solid) the cut
    run.observables["qstar"]["HT"] = run.observables["qstar"]["HT"][:10]
    with pytest.raises(ValueError, match="sample qstar: observable HT has 10 values for 500 scored events"):
        plots.observables_at_cut(run, "mse", "qstar")


def test_roc_curves_show_background_rejection_against_signal_efficiency():
    from tfp_anomaly.report import metrics, plots, tables

    runs = demo_like_runs(n_background=2000, n_signal=300)
    summary = tables.over_seeds(_quiet_table(runs), runs)
    figure = plots.roc_best(runs, summary, ["qstar"])
    ax = figure.axes[0]
    assert ax.get_yscale() == "log" and "rejection" in ax.get_ylabel() and ax.get_xlim() == (0, 1)
    fpr, tpr = metrics.roc(runs[0].background["mse+mahalanobis"], runs[0].signals["qstar"]["mse+mahalanobis"])
    first = ax.lines[0]  # the ring group's best score on qstar, seed 0
    np.testing.assert_array_equal(first.get_xdata(), tpr[fpr > 0])
    np.testing.assert_array_equal(first.get_ydata(), 1 / fpr[fpr > 0])
    assert "2 seeds" in first.get_label()
    assert sorted(round(1 / line.get_ydata()[0], 6) for line in ax.lines if line.get_linestyle() == ":") == [1e-4, 1e-3, 1e-2]


def test_the_report_leads_with_the_heatmap_and_keeps_the_long_tables_collapsed(tmp_path):
    from tfp_anomaly.report import document, write_report

    runs = [demo_like_runs(weighted=True, n_background=3000, n_signal=300)[k] for k in (0, 1, 3)]
    result = write_report(runs, tmp_path, bootstrap=2)
    html = (tmp_path / "report.html").read_text()
    order = [html.index(key) for key in ("id='heatmap'", "<h2>ROC curves", "<h2>What did it find?", "observables_0",
                                         "<summary>Best score per model and signal")]
    assert order == sorted(order) and "<script" not in html
    ring = result["summary"].query("model == 'swae (prior ring)' and score == 'mse' and signal == 'qstar'").iloc[0]
    assert f"{ring['AUC']:.3f} ± {ring['AUC_std']:.3f} over 2 seeds" in html
    assert html.count("<table") == html.count("<details><summary>") - len(runs)  # every table collapsed
    over = pd.read_csv(tmp_path / "comparison_over_seeds.csv")
    assert set(over["n_seeds"]) == {1, 2} and len(pd.read_csv(tmp_path / "comparison.csv")) == len(result["table"])
    markdown = (tmp_path / "report.md").read_text()
    assert "event-weighted" in html and markdown.index("![") == markdown.index("![heatmap](heatmap.png)")
    for run in runs:
        run.observables = {}
    assert "No run carries physics observables" in document._found(runs, result["summary"]).note
    with pytest.raises(ValueError, match="style: unknown report style 'lhcb'; styles: atlas, cms, plain"):
        write_report(runs, tmp_path / "x", style="lhcb")


def test_an_mplhep_style_holds_only_while_the_figures_are_drawn():
    import matplotlib

    from tfp_anomaly.report import plots, styles, tables

    def settings():
        return {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}  # Agg is chosen on first use

    runs = demo_like_runs(n_background=1000, n_signal=200)[:2]
    before = settings()
    with styles.style_context("cms"):
        assert matplotlib.rcParams["font.sans-serif"][0] == "TeX Gyre Heros"
        assert matplotlib.rcParams["font.size"] == pytest.approx(26 * styles.MPLHEP_SCALE)
        plots.png(plots.roc_best(runs, tables.over_seeds(_quiet_table(runs), runs)))
    assert settings() == before
    with styles.style_context("plain"):
        assert settings() == before


def test_report_style_is_a_configuration_key_and_a_command_option():
    from tfp_anomaly import config as config_lib
    from tfp_anomaly.cli import build_parser

    assert config_lib.DEFAULTS["report"] == {"style": "plain"}
    config_lib.check(config_lib.merge(config_lib.DEFAULTS, {"report": {"style": "cms"}}), "test")
    with pytest.raises(config_lib.ConfigError, match=r"report.style = 'root': expected one of plain, atlas, cms"):
        config_lib.check({"report": {"style": "root"}}, "test")
    assert build_parser().parse_args(["report", "r", "--out", "o", "--style", "atlas"]).style == "atlas"


def test_the_report_command_draws_in_the_style_the_runs_name(tmp_path, capsys):
    from tfp_anomaly.cli import _runs_style
    from tfp_anomaly.evaluate import config_digest

    def run_dir(name, style, seed=0):
        path = tmp_path / name
        path.mkdir()
        config = {"data": {"background": "sample"}, "model": {"type": "swae", "latent_dim": 2},
                  "training": {"seed": seed}, "report": {"style": style}}
        (path / "config.yaml").write_text(yaml.safe_dump(config))
        return path, config

    (cms, a), (cms2, b), (atlas, _) = run_dir("a", "cms"), run_dir("b", "cms", seed=1), run_dir("c", "atlas")
    assert _runs_style([cms, cms2]) == "cms"
    assert _runs_style([cms, atlas]) == "plain" and "different report.style" in capsys.readouterr().err
    b["report"]["style"] = "atlas"  # the style is not the model: seeds of one model whatever their styles
    assert config_digest(a) == config_digest(b)


def test_the_first_screen_shows_each_models_best_score_and_the_next_best():
    import pandas as pd

    from tfp_anomaly.report import tables

    auc = {("g0", "a"): 0.60, ("g0", "b"): 0.91, ("g0", "c"): 0.70, ("g0", "d"): 0.65,
           ("g1", "a"): 0.80, ("g1", "b"): 0.50, ("g1", "c"): 0.75, ("g1", "d"): 0.85}
    summary = pd.DataFrame([{"group": g, "score": m, "signal": tables.SIGNAL_MEAN, "AUC": v} for (g, m), v in auc.items()]
                           + [{"group": "g0", "score": "a", "signal": "qstar", "AUC": 0.99}])  # per signal: ignored
    assert tables.glance_scores(summary, limit=3) == ["b", "d", "a"]  # g0's best b, g1's best d, then a (0.80)
    assert tables.glance_scores(summary, limit=1) == ["b", "d"]  # every model's best stays
    assert tables.glance_scores(summary, limit=10) == ["b", "d", "a", "c"]


def test_a_background_without_observables_gives_the_note_not_a_crash(tmp_path):
    import dataclasses
    import warnings

    from tfp_anomaly.report import write_report

    run = demo_like_runs(n_background=1500, n_signal=200)[0]
    run = dataclasses.replace(run, observables={s: v for s, v in run.observables.items() if s != "background"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report([run], tmp_path, bootstrap=0)
    assert "No run carries physics observables" in (tmp_path / "report.html").read_text()
    assert not list(tmp_path.glob("observables_*.png"))


def test_equal_weights_are_exactly_n_effective_events_and_no_weighting_in_the_note():
    from tfp_anomaly.report import metrics

    for n, w in ((600, 0.021), (10_000, 0.021), (37, 3.3)):
        assert metrics.effective_events(np.full(n, w)) == n  # the sums alone give N(1 - 1e-16) here
    assert not metrics.weighs(None) and not metrics.weighs(np.full(5, 0.3)) and metrics.weighs([1.0, 1.5])
    rng = np.random.default_rng(3)
    b, s = rng.normal(size=10_000), rng.normal(1, 1, 500)
    row = metrics.figures_of_merit(b, s, bootstrap=0, warn=False, background_weights=np.full(10_000, 0.021),
                                   signal_weights=np.full(500, 0.021))
    assert row["n_eff_background"] == 10_000 and not row["low_stats@1e-3"]
