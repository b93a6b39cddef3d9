"""The example scripts run (on a small budget) and fail cleanly without their data."""
import importlib.util
import warnings
from pathlib import Path

import pandas as pd

from tfp_anomaly.data.sample import sample_files

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_priors_runs_on_user_files(tmp_path, capsys, monkeypatch):
    from tfp_anomaly import demo

    # --quick on a smaller budget still (the script's path through the comparison is the test)
    monkeypatch.setitem(demo.QUICK, "max_events", 2000)
    monkeypatch.setitem(demo.QUICK, "max_signal_events", 300)
    files = sample_files()  # the embedded CSVs, passed as a user's files would be
    args = ["--priors", "ring", "--quick", "--epochs", "1", "--out", str(tmp_path),
            "--background", str(files["background"]), "--signal", str(files["qstar"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _load("compare_priors").main(args) == 0
    table = pd.read_csv(tmp_path / "report" / "comparison.csv")
    assert set(table["model"]) == {"ConvSWAE ring"} and set(table["signal"]) == {"qstar"}
    assert "radial" in set(table["score"]) and "report.html" in capsys.readouterr().out


def test_compare_flows_covers_the_flow_families_it_names():
    import numpy as np

    from tfp_anomaly.demo import CONV
    from tfp_anomaly.flows import FlowChain
    from tfp_anomaly.models import VAE

    module = _load("compare_flows")
    x = np.random.default_rng(0).normal(size=(8, 32, 4)).astype("float32")
    for name, (chain, options) in module.FLOWS.items():
        assert FlowChain(chain, step_kwargs=options).steps
        model = VAE((32, 4), flow=chain, flow_kwargs=options, **CONV)  # the options the steps accept
        model.build()
        assert name.split("_")[0] in model.flow.steps[0].name
        assert np.isfinite(float(model.compute_loss(x, None, model(x, training=True))))


def test_lhco_example_says_what_is_missing(tmp_path, capsys):
    assert _load("lhco").main(["--data-dir", str(tmp_path)]) == 2
    assert "no LHCO R&D feature files" in capsys.readouterr().err


def test_tune_vae_searches_and_scores_the_best_model(tmp_path, capsys):
    from tfp_anomaly.evaluate import score_run

    # the example's search space, without XLA: compiling a trial's ConvVAE costs more than its one short epoch
    config = tmp_path / "search.yaml"
    config.write_text(f"base: {EXAMPLES / 'configs' / 'search_vae.yaml'}\ntraining: {{jit_compile: false}}\n")
    args = ["--config", str(config), "--trials", "1", "--epochs", "1", "--max-events", "1000",
            "--out", str(tmp_path / "out")]
    module = _load("tune_vae")
    # the script scores 2,000 events per signal: 300 are enough to run it through
    module.score_run = lambda *a, **k: score_run(*a, **{**k, "max_signal_events": 300})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert module.main(args) == 0
    out = tmp_path / "out"
    assert (out / "best" / "scores.h5").exists() and (out / "report" / "report.html").exists()
    assert len(pd.read_csv(out / "trials.csv")) == 1 and "search_report.html" in capsys.readouterr().out
