"""Keras Tuner searches: YAML spaces, end to end (search → best model → scored in a fresh process),
resume, every tuner, and a chief with two workers on loopback."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras_tuner as kt
import pandas as pd
import pytest
import yaml

from tfp_anomaly import config as config_lib
from tuning.search import make_tuner, run_search, search_settings
from tuning.space import SearchSpaceError, check_space, sample_config

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "data": {"background": "sample", "signals": "sample", "max_events": 1000},
    "grid": {"blocks": [["j", 6], ["b", 2], ["m+", 1], ["m-", 1], ["e+", 1], ["e-", 1], ["g", 1]], "met_row": True,
             "features": ["E", "pt", "eta", "phi"]},
    "scaler": {"name": "standard", "log_columns": [0, 1]},
    "model": {"type": "swae", "latent_dim": 3, "network": {"type": "dense", "hidden_units": [16]}},
    "training": {"epochs": 1, "batch_size": 128, "verbose": 0, "jit_compile": False},
    "search": {"tuner": "random", "max_trials": 3, "space": {
        "model.latent_dim": {"int": [2, 4]},
        "model.prior": {"choice": ["gaussian", "uniform", "ring"]},
        "model.network": {"choice": [{"type": "dense", "hidden_units": [16]}, {"type": "dense", "hidden_units": [32, 16]}]},
        "training.learning_rate": {"float": [1e-4, 1e-2], "sampling": "log"}}},
}


def _config(tmp_path, **search):
    config = config_lib.merge(TINY, {"search": search})
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config_lib.load_config(path)


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}


def test_space_errors_name_the_key_and_conditions_follow_their_parent():
    with pytest.raises(SearchSpaceError, match="model.lam: give exactly one of"):
        check_space({"model.lam": {"float": [0.1, 1.0], "int": [1, 2]}})
    with pytest.raises(SearchSpaceError, match="model.lam: unknown option 'smapling'"):
        check_space({"model.lam": {"float": [0.1, 1.0], "smapling": "log"}})
    with pytest.raises(SearchSpaceError, match="'when' must name one parameter declared before it"):
        check_space({"model.lam": {"float": [0.1, 1.0], "when": {"model.type": "swae"}}})
    space = {"model.type": {"choice": ["vae", "swae"]}, "model.lam": {"float": [0.1, 10.0], "when": {"model.type": "swae"}},
             "model.flow": {"choice": [None, "planar*2"]}}
    check_space(space)
    hp = kt.HyperParameters()
    hp.values["model.type"] = "vae"
    config = sample_config(hp, {"model": {}}, space)
    assert config["model"]["type"] == "vae" and "lam" not in config["model"]
    assert config["model"]["flow"] in (None, "planar*2")  # non-scalar choices round-trip through labels
    hp = kt.HyperParameters()
    hp.values["model.type"] = "swae"
    assert 0.1 <= sample_config(hp, {"model": {}}, space)["model"]["lam"] <= 10.0
    with pytest.raises(config_lib.ConfigError, match="unknown key search.max_trails"):
        search_settings({"search": {"max_trails": 3, "space": space}})
    with pytest.raises(config_lib.ConfigError, match="needs labels"):
        search_settings({"search": {"objective": "val_auc", "space": space}})


@pytest.mark.parametrize("name, oracle", [("random", "RandomSearchOracle"), ("bayesian", "BayesianOptimizationOracle"),
                                          ("hyperband", "HyperbandOracle")])
def test_every_tuner_is_built_from_the_configuration(tmp_path, name, oracle):
    _, config = _config(tmp_path, tuner=name, max_epochs=2, strategy="mirrored")
    tuner, _ = make_tuner(config, tmp_path / "out")
    assert type(tuner.oracle).__name__ == oracle and tuner.oracle.objective.name == "val_loss"
    assert type(tuner.distribution_strategy).__name__ == "MirroredStrategy"


def test_random_search_end_to_end_with_a_labelled_objective(tmp_path):
    _, config = _config(tmp_path, objective="val_auc", validation_signal="sample", score="mahalanobis")
    result = run_search(config, tmp_path / "out")
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(trials) == 3 and (trials["status"] == "COMPLETED").all() and trials["trial_id"].is_unique
    assert result["objective"] == trials["objective"].max() and result["objective_name"] == "val_auc"
    assert "data:image/png;base64," in (tmp_path / "out" / "search_report.html").read_text()
    best = tmp_path / "out" / "best"
    saved = yaml.safe_load((best / "config.yaml").read_text())
    assert "search" not in saved and saved["model"]["prior"] == trials.iloc[0]["model.prior"]
    # the reported objective is the validation AUC of the saved best model (the epoch it was kept at)
    from tfp_anomaly.inputs import prepare_data
    from tfp_anomaly.rundir import RunDirectory
    from tuning.hypermodel import run_section
    from tuning.search import _labelled_callback

    validation = _labelled_callback(config, search_settings(config), prepare_data(run_section(config)))
    validation.set_model(RunDirectory(best).load_model())
    logs = {}
    validation.on_epoch_end(0, logs)
    assert logs["val_auc"] == pytest.approx(result["objective"], abs=1e-6)
    # scored by the command line in a fresh process (the saved model must load without our imports)
    done = subprocess.run([sys.executable, "-m", "tfp_anomaly", "score", str(best), "--max-signal-events", "200",
                           "--methods", "mse", "mahalanobis", "--no-progress"],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (best / "scores.h5").exists() and "qstar (200)" in done.stdout


def test_an_interrupted_search_resumes_without_redoing_trials(tmp_path):
    _, config = _config(tmp_path, max_trials=1)
    run_search(config, tmp_path / "out")
    first = next((tmp_path / "out" / "search").glob("trial_*/trial.json"))
    stamp, content = first.stat().st_mtime_ns, first.read_text()
    _, config = _config(tmp_path, max_trials=2)
    run_search(config, tmp_path / "out")
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(trials) == 2 and (trials["status"] == "COMPLETED").all()
    assert first.stat().st_mtime_ns == stamp and first.read_text() == content  # trial 0 was not run again
    assert len(list((tmp_path / "out" / "search").glob("trial_*"))) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_chief_and_two_workers_run_every_trial_once(tmp_path):
    path, _ = _config(tmp_path, max_trials=4)
    oracle = f"127.0.0.1:{_free_port()}"
    command = [sys.executable, "-m", "tfp_anomaly", "tune", str(path), "--out", str(tmp_path / "out"), "--oracle", oracle]
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("chief", "w1", "w2")}
    processes = {"chief": subprocess.Popen(command + ["--role", "chief"], stdout=logs["chief"], stderr=subprocess.STDOUT,
                                           env=_env())}
    time.sleep(3)  # the chief's oracle server first
    for name in ("w1", "w2"):
        processes[name] = subprocess.Popen(command + ["--role", "worker", "--tuner-id", name], stdout=logs[name],
                                           stderr=subprocess.STDOUT, env=_env())
    try:
        deadline = time.time() + 420
        for name, process in processes.items():
            process.wait(timeout=max(1, deadline - time.time()))
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        for handle in logs.values():
            handle.close()
    for name, process in processes.items():
        assert process.returncode == 0, f"{name}: {(tmp_path / f'{name}.log').read_text()[-3000:]}"
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert len(trials) == 4 and trials["trial_id"].is_unique and (trials["status"] == "COMPLETED").all()
    owners = [json.loads(p.read_text()).get("trial_id") for p in (tmp_path / "out" / "search").glob("trial_*/trial.json")]
    assert sorted(owners) == sorted(trials["trial_id"].astype(str).str.zfill(len(owners[0])))
    assert (tmp_path / "out" / "best" / "model.keras").exists()


@pytest.mark.parametrize("name", ["search_vae.yaml", "search_swae.yaml", "search_flow_training.yaml"])
def test_example_search_spaces_build_a_model_for_every_choice(name):
    from tuning.hypermodel import run_section
    from tfp_anomaly.experiment import build_model

    config = config_lib.load_config(ROOT / "examples" / "configs" / name)
    settings = search_settings(config)
    choices = {path: spec["choice"] for path, spec in settings["space"].items() if "choice" in spec}
    widest = max(choices.values(), key=len)
    path = next(p for p, c in choices.items() if c is widest)
    for k in range(len(widest)):  # every value of the widest choice, the others at their first value
        hp = kt.HyperParameters()
        sample_config(hp, run_section(config), settings["space"])  # declares every parameter
        spec = settings["space"][path]
        hp.values[path] = next(h for h in hp.space if h.name == path).values[k]
        sampled = sample_config(hp, run_section(config), settings["space"])
        model = build_model(sampled, (32, 4), None)
        assert model.latent_dim == sampled["model"]["latent_dim"]
        if spec.get("merge"):
            assert sampled["model"].get("flow") == widest[k]["flow"]
