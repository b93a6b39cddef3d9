"""Configurations (inheritance, overrides, loud errors), every example configuration builds the model
it names, and ``tfp-anomaly train`` trains, checkpoints, resumes and refuses to mix runs."""
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from tfp_anomaly import config as config_lib
from tfp_anomaly import experiment, inputs, priors
from tfp_anomaly.cli import main
from tfp_anomaly.flows import FlowChain
from tfp_anomaly.rundir import RunDirectory

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"
TRAINING_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if "model" in config_lib.read_yaml(p))


def test_base_chain_merges_mapping_by_mapping_and_overrides_are_typed():
    config = config_lib.load_config(CONFIGS / "convvae_planar.yaml",
                                    ["training.epochs=3", "model.flow=radial*2", "grid.features=[E, pt]",
                                     "training.clipnorm="])
    assert config["grid"]["blocks"][0] == ["j", 13]          # from grid_darkflow.yaml, two bases up
    assert config["model"]["network"] == {"type": "conv", "hidden": 20}  # from convvae.yaml
    assert config["model"]["flow_kwargs"] == {"amortized": True}         # from convvae_planar.yaml
    assert config["training"]["epochs"] == 3 and config["model"]["flow"] == "radial*2"
    assert config["grid"]["features"] == ["E", "pt"] and config["training"]["clipnorm"] is None
    assert config["training"]["batch_size"] == 256 and config["split"]["seed"] == 0


@pytest.mark.parametrize("text, message", [
    ("trainig:\n  epochs: 2\nmodel: {type: vae}\n", r"bad\.yaml: unknown section 'trainig'"),
    ("training:\n  epoch: 2\nmodel: {type: vae}\n", r"bad\.yaml: unknown key training\.epoch; training keys: "),
    ("model: [vae]\ntraining: 3\n", r"section 'training' must be a mapping"),
    ("- a\n- b\n", r"must be a mapping, got list"),
    ("training: {epochs: [\n", r"bad\.yaml: not valid YAML"),
    ("base: bad.yaml\nmodel: {type: vae}\n", r"'base' chain loops back"),
    ("training: {epochs: 2}\n", r"no 'model' section"),
])
def test_configuration_errors_name_the_file_and_the_key(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.load_config(tmp_path / "bad.yaml")


def test_override_errors_name_the_override():
    with pytest.raises(config_lib.ConfigError, match=r"override 'training\.epoch=3': unknown key training\.epoch"):
        config_lib.load_config(CONFIGS / "convvae.yaml", ["training.epoch=3"])
    with pytest.raises(config_lib.ConfigError, match=r"override 'epochs': expected key\.sub=value"):
        config_lib.load_config(CONFIGS / "convvae.yaml", ["epochs"])
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        config_lib.load_config(CONFIGS / "nope.yaml")


def test_unknown_model_options_and_types_are_named():
    config = config_lib.load_config(CONFIGS / "swae.yaml", ["model.beta=2"])
    with pytest.raises(config_lib.ConfigError, match=r"unknown option 'beta' for model type 'swae'; options: .*lam"):
        experiment.build_model(config, (32, 4), None)
    config = config_lib.load_config(CONFIGS / "convvae.yaml", ["model.seed=3"])  # training.seed sets it
    with pytest.raises(config_lib.ConfigError, match=r"unknown option 'seed' for model type 'vae'"):
        experiment.build_model(config, (32, 4), None)
    config = config_lib.load_config(CONFIGS / "convvae.yaml", ["model.type=gan"])
    with pytest.raises(KeyError, match=r"unknown model 'gan'; available: swae, vae"):
        experiment.build_model(config, (32, 4), None)
    config = config_lib.load_config(CONFIGS / "convvae_planar.yaml", ["model.flow_kwargs={amortised: true}"])
    with pytest.raises(TypeError, match=r"\['amortised'\] are accepted by no step"):
        experiment.build_model(config, (32, 4), None)


def test_example_configurations_cover_every_flow_family_and_every_prior():
    flows = {config_lib.load_config(p)["model"].get("flow") for p in TRAINING_CONFIGS}
    names = {step["name"] for spec in flows if spec for step in FlowChain(spec).spec}
    families = {"planar", "radial", "householder", "sylvester_orthogonal", "sylvester_householder",
                "sylvester_triangular", "nice", "realnvp", "iaf", "maf", "spline_coupling", "glow", "ffjord",
                "convflow"}
    assert families <= names
    used = {config_lib.load_config(p)["model"].get("prior") for p in TRAINING_CONFIGS}
    assert set(priors.available()) <= used


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.stem)
def test_every_example_configuration_builds_its_model_and_gives_a_finite_loss(path):
    config = config_lib.load_config(path)
    shape = (32, 4) if config.get("grid") else (12,)
    model = experiment.build_model(config, shape, None)
    spec = config["model"]
    if spec.get("flow"):
        assert [s.name.rsplit("_", 1)[0] for s in model.flow.steps] == [s["name"] for s in FlowChain(spec["flow"]).spec]
    if spec["type"] == "swae":
        assert model.prior_name == spec["prior"]
    x = np.random.default_rng(0).normal(size=(16,) + shape).astype("float32")
    inputs = {"x": x, "mask": np.ones(x.shape[:2], bool)} if len(shape) == 2 else x
    loss = model.compute_loss(inputs, None, model(inputs, training=True), training=True)
    assert np.isfinite(float(loss))


def _train(tmp_path, *overrides, config="convvae_planar.yaml", run="run"):
    """Train on the embedded sample (the example configurations' default background)."""
    flow = ["model.flow_kwargs={amortized: true}"] if config == "convvae_planar.yaml" else []
    args = ["train", str(CONFIGS / config), "--run-dir", str(tmp_path / run), "-o",
            # 540 / 180 / 180 events: whole batches only, so XLA compiles one train and one eval step
            "data.max_events=900", "training.batch_size=180", "training.verbose=0", "training.epochs=2",
            *flow, *overrides]
    return main(args)


def _train_quick(tmp_path, *overrides):
    """No flow and no XLA: for properties of the run directory, not of the model."""
    return _train(tmp_path, "training.jit_compile=false", *overrides, config="convvae.yaml")


def test_train_command_writes_a_complete_run_directory(tmp_path, capsys):
    assert _train(tmp_path) == 0
    run = tmp_path / "run"
    for name in ("config.yaml", "data.json", "split.npz", "last.keras", "best.keras", "state.json",
                 "history.csv", "model.keras", "summary.json"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["events"] == {"train": 540, "val": 180, "test": 180} and summary["epochs_done"] == 2
    data = json.loads((run / "data.json").read_text())
    assert data["background_events"] == 900 and data["signal_events_removed"] == 0
    split = RunDirectory(run).read_split()
    assert sorted(np.concatenate([split.train, split.val, split.test])) == list(range(900))
    assert np.load(run / "split.npz")["codes"].dtype == np.uint8  # one byte per event
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["flow"] == "planar*6"
    model = keras.models.load_model(run / "model.keras")
    assert model.flow is not None and model.preprocess is not None
    assert "2 epochs (2 now" in capsys.readouterr().out


def test_train_command_resumes_longer_and_refuses_a_different_configuration(tmp_path, capsys):
    def train_seconds():
        return json.loads((tmp_path / "run" / "summary.json").read_text())["train_seconds"]

    assert _train_quick(tmp_path, "training.epochs=1") == 0
    first = train_seconds()
    assert _train_quick(tmp_path, "training.epochs=3") == 0  # continues: epochs may grow
    assert "3 epochs (2 now" in capsys.readouterr().out
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 4
    total = train_seconds()
    assert total > first  # the time adds up over the calls
    assert _train_quick(tmp_path, "training.epochs=3") == 0  # complete: nothing to do
    assert "already complete" in capsys.readouterr().out
    assert total <= train_seconds() < total + 5  # a reused run keeps its training time
    assert _train_quick(tmp_path, "training.epochs=3", "model.beta=0.5") == 2
    assert "holds a run of a different configuration" in capsys.readouterr().err
    assert _train_quick(tmp_path, "training.epochs=1", "model.beta=0.5", "--overwrite") == 0
    assert json.loads((tmp_path / "run" / "state.json").read_text())["epoch"] == 1


def test_train_command_errors_are_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert _train(tmp_path, "data.background=nothing_here.csv") == 2
    assert "data.background: file not found" in capsys.readouterr().err


def test_labelled_files_give_background_only(tmp_path):
    from conftest import LHCO_SCALARS, _need

    _need(LHCO_SCALARS)
    config = config_lib.load_config(CONFIGS / "lhco_dense_vae.yaml", [
        f"data.dir={LHCO_SCALARS}", "data.background=[scalars_bkg01.h5, scalars_sig01.h5]", "scaler.name=robust"])
    table, report = inputs.load_background(config)
    from tfp_anomaly.data import read_lhco_scalars

    signal = read_lhco_scalars(LHCO_SCALARS / "scalars_sig01.h5")
    background = read_lhco_scalars(LHCO_SCALARS / "scalars_bkg01.h5")
    assert report["signal_events_removed"] == len(signal)
    assert len(table) == report["background_events"] == len(background)
    assert (table.labels == 0).all()
    prepared = inputs.prepare_data(config)
    # the robust scaler was fitted on the training part: its medians are 0 there
    np.testing.assert_allclose(np.median(prepared.scaler.transform(prepared.parts["train"]), 0), 0, atol=1e-5)
