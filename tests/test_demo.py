"""The main job: what it trains, and the comparison runner end to end on a small budget."""
import json
import warnings

import pytest

from tfp_anomaly import demo
from tfp_anomaly.cli import build_parser
from tfp_anomaly.inputs import signal_name


def test_the_demo_trains_the_baseline_two_flow_posteriors_and_three_swae_priors():
    vaes = [m for m in demo.COMPARED_MODELS.values() if m["type"] == "vae"]
    assert any(not m.get("flow") for m in vaes) and sum(bool(m.get("flow")) for m in vaes) >= 2
    assert {m["prior"] for m in demo.COMPARED_MODELS.values() if m["type"] == "swae"} >= {"gaussian", "uniform", "ring"}
    assert all(m["network"]["type"] == "conv" for m in demo.COMPARED_MODELS.values())
    config = demo.comparison_config(demo.COMPARED_MODELS["ConvSWAE ring"], demo.QUICK)
    assert config["data"]["background"] == "sample" and config["training"]["epochs"] == demo.QUICK["epochs"]
    args = build_parser().parse_args(["demo", "--quick", "--out", "x"])
    assert args.quick and args.out == "x"
    assert demo.slug("ConvVAE + Planar×6") == "convvae_planarx6"


def test_comparison_runner_trains_scores_reports_and_reuses_finished_runs(tmp_path, monkeypatch):
    from tfp_anomaly import evaluate, report
    from tfp_anomaly.report.metrics import auc

    small = {"type": "dense", "hidden_units": [32]}
    models = {"VAE + Planar×2": {"type": "vae", "latent_dim": 3, "network": small, "flow": "planar*2"},
              "SWAE ring": {"type": "swae", "latent_dim": 3, "network": small, "prior": "ring"}}
    settings = {"max_events": 1000, "max_signal_events": 150, "epochs": 1, "bootstrap": 3, "jit_compile": False}
    logged = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = demo.run_comparison(models, tmp_path, settings=settings, log=logged.append)
    table = result["table"]
    assert set(table["model"]) == set(models) and set(table["signal"]) == {"wprime_wz", "zprime_tt", "qstar"}
    assert {"kl", "rz", "total_loss"} <= set(table[table["model"] == "VAE + Planar×2"]["score"])
    assert "radial" in set(table[table["model"] == "SWAE ring"]["score"])
    assert (tmp_path / "report" / "report.html").exists() and len(logged) == 2
    runs = {run.name: run for run in result["runs"]}
    for _, row in table.iterrows():  # the table's AUC is that of the scores the runs hold
        run = runs[row["model"]]
        assert row["AUC"] == pytest.approx(auc(run.background[row["score"]], run.signals[row["signal"]][row["score"]]),
                                           abs=1e-12), tuple(row[["model", "score", "signal"]])
    # a second call finds both runs complete and does not train again (scoring and the report, checked
    # above, are replaced by the first call's results: only the reuse is under test here)
    monkeypatch.setattr(evaluate, "score_run", lambda run_dir, name, **kwargs: runs[name])
    monkeypatch.setattr(report, "write_report", lambda *args, **kwargs: {"table": table})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        demo.run_comparison(models, tmp_path, settings=settings, log=logged.append)
    for slug in ("vae_planarx2", "swae_ring"):
        summary = json.loads((tmp_path / "runs" / slug / "summary.json").read_text())
        assert summary["epochs_done"] == 1 and summary["epochs_this_call"] == 0, slug


def test_example_scripts_refuse_signal_files_without_background():
    import argparse

    parser = argparse.ArgumentParser()
    demo.add_comparison_arguments(parser, "runs/x")
    with pytest.raises(ValueError, match="--signal needs --background"):
        demo.comparison_inputs(parser.parse_args(["--signal", "s.csv"]))
    base, settings = demo.comparison_inputs(parser.parse_args(["--background", "b.csv", "--signal", "s1.csv.gz",
                                                               "--quick", "--epochs", "2"]))
    assert base["data"]["background"][0].endswith("b.csv") and [signal_name(f) for f in base["data"]["signals"]] == ["s1"]
    assert settings["epochs"] == 2 and settings["max_events"] == demo.QUICK["max_events"]
