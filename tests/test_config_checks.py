"""The configuration is checked up front (one table of key → accepted values), model options against
what the flows and priors take, a refused run claims no directory, a user's prior saves and loads with
its model, ``keras.models.load_model`` works after a plain ``import tfp_anomaly``, a damaged model file
is named as such, and the command line turns an interruption, a non-finite loss and the package's
warnings into one line each. (The bad inputs through the command line: tests/bad_inputs/config_cases.py.)"""
from __future__ import annotations

import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tfp_anomaly import cli
from tfp_anomaly import config as config_lib

ROOT = Path(__file__).resolve().parents[1]
SAVED_RUN = ROOT / "tests" / "data" / "run_v0_swae"


def complete(**sections) -> dict:
    return config_lib.merge(config_lib.DEFAULTS, {"data": {"background": "sample"},
                                                  "model": {"type": "swae", "latent_dim": 2}, **sections})


# --------------------------------------------------------------------------- the table
def test_every_key_of_the_fixed_sections_has_a_rule_and_the_defaults_pass_it():
    fixed = {s: keys for s, keys in config_lib.SECTIONS.items() if keys is not None}
    assert {f"{s}.{k}" for s, keys in fixed.items() for k in keys} == set(config_lib.SCHEMA)
    for section, values in config_lib.DEFAULTS.items():
        for key, value in values.items():
            assert config_lib.SCHEMA[f"{section}.{key}"].accepts(value), (section, key, value)
    config_lib.check(complete(), "defaults")


@pytest.mark.parametrize("rule, good, bad", [
    (config_lib.Integer(min=1), [1, 7], [0, -1, 1.5, 2.0, True, "3", None]),
    (config_lib.Number(above=0), [1e-3, 2], [0, -1, float("nan"), float("inf"), False, "1e-3"]),
    (config_lib.Boolean(), [True, False], [0, 1, "true", None]),
    (config_lib.OneOf(("auto",), "tfp_anomaly.data.formats:FORMATS"), ["auto", "darkmachines"], ["foo", ["auto"], 1]),
    (config_lib.ListOf(config_lib.Integer(min=0), length=2), [[0, 3], (1, 1)], [[0], [0, -1], "01"]),
])
def test_the_rules_accept_exactly_their_values(rule, good, bad):
    assert all(rule.accepts(v) for v in good) and not any(rule.accepts(v) for v in bad)


def test_registry_choices_are_the_registry_names():
    from tfp_anomaly.data import PRESETS

    rule = config_lib.SCHEMA["grid.preset"]
    assert rule.choices() == list(PRESETS) and rule.describe() == "one of " + ", ".join(PRESETS)


def test_errors_name_the_nested_key_and_what_it_accepts():
    rule = config_lib.SCHEMA["training.early_stopping"]
    assert rule.error({"patience": 3, "mode": "max"}, "training.early_stopping") is None
    assert rule.error({"patience": -2}, "training.early_stopping") == \
        "training.early_stopping.patience = -2: expected a whole number >= 0"
    assert config_lib.SCHEMA["grid.blocks"].error([["j", 13], ["b", 0]], "grid.blocks") == \
        "grid.blocks[1][1] = 0: expected a whole number >= 1"


def test_an_override_is_checked_alone_and_a_file_names_itself(tmp_path):
    # the override's own key: a bad value elsewhere is the file's error, named with the file
    path = tmp_path / "run.yaml"
    path.write_text("data: {background: sample}\nmodel: {type: swae}\ntraining: {epochs: 3}\n")
    assert config_lib.load_config(path, ["training.epochs=5"])["training"]["epochs"] == 5
    with pytest.raises(config_lib.ConfigError, match=r"^override 'training\.batch_size=0': training\.batch_size = 0"):
        config_lib.load_config(path, ["training.batch_size=0"])
    path.write_text("data: {background: sample}\nmodel: {type: swae}\ntraining: {epochs: 3.5}\n")
    with pytest.raises(config_lib.ConfigError, match=rf"^{path}: training\.epochs = 3\.5: expected a whole number"):
        config_lib.load_config(path, ["training.epochs=5"])


def test_an_empty_section_is_an_empty_mapping_and_a_run_configuration_round_trips(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {background: sample}\nmodel: {type: swae}\ntraining:\n")
    config = config_lib.load_config(path)
    assert config["training"] == config_lib.DEFAULTS["training"]
    (tmp_path / "config.yaml").write_text(config_lib.dump(config))
    assert config_lib.load_resolved(tmp_path / "config.yaml") == config


# --------------------------------------------------------------------------- model options
@pytest.mark.parametrize("options, key, accepted", [
    ({"type": "vae", "flow": "planar*3", "flow_kwargs": {"amortised": True}}, "model.flow_kwargs", "amortized"),
    ({"type": "vae", "flow": ["realnvp", {"name": "maf", "hidden_unit": [8]}]}, "model.flow", "hidden_units"),
    ({"type": "swae", "prior": "student_t", "prior_kwargs": {"dof": 3}}, "model.prior_kwargs", "df"),
])
def test_unknown_flow_and_prior_options_are_refused_before_any_layer_is_made(options, key, accepted, monkeypatch):
    from tfp_anomaly import experiment
    from tfp_anomaly.flows import FlowChain

    def no_layer(*args, **kwargs):
        raise AssertionError("a layer was made")

    monkeypatch.setattr(FlowChain, "__init__", no_layer)
    with pytest.raises(config_lib.UnknownOptionError, match=rf"^{key}: .*; .*{accepted}") as error:
        experiment.check_model({"model": options})
    assert isinstance(error.value, TypeError) and isinstance(error.value, config_lib.ConfigError)


@pytest.mark.parametrize("spec", ["planar*0", "planar*-2", "planar*2.5", [{"name": "planar", "repeat": 0}]])
def test_a_flow_repeated_less_than_once_is_refused(spec):
    from tfp_anomaly.flows.chain import parse_spec

    with pytest.raises(ValueError, match="repeat count must be a whole number >= 1"):
        parse_spec(spec)
    assert len(parse_spec("planar*2, radial")) == 3


# --------------------------------------------------------------------------- the run directory
@pytest.mark.parametrize("sections", [
    {"training": {"epochs": "abc"}}, {"training": {"steps_per_execution": 0}}, {"data": {"background": "sample",
                                                                                          "on_error": "ignore"}},
    {"split": {"fractions": [1.0, 0.0, 0.0]}}, {"model": {"type": "swae", "latent_dim": 0}},
    {"model": {"type": "vae", "flow": "planar*0"}}, {"training": {"first_stage_epochs": 30, "epochs": 3}},
])
def test_a_configuration_error_claims_no_run_directory(tmp_path, sections):
    from tfp_anomaly.experiment import run

    with pytest.raises(config_lib.ConfigError):
        run(complete(**sections), tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_fails_reading_its_data_leaves_no_trace(tmp_path):
    """The checks pass, the data reader fails after the directory was claimed: the claim is undone,
    so the corrected command is not refused as a run of a different configuration."""
    from tfp_anomaly.data import DataFormatError
    from tfp_anomaly.experiment import run

    (tmp_path / "bkg.csv").write_text("1;ttbar;1;20000;0.5;j,1000,900,0.1,0.2;\nthis is not an event\n")
    config = complete(data={"background": str(tmp_path / "bkg.csv")})
    with pytest.raises(DataFormatError):
        run(config, tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bkg.csv"]
    (tmp_path / "empty").mkdir()  # a directory the user made is kept, empty
    with pytest.raises(DataFormatError):
        run(config, tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


# --------------------------------------------------------------------------- a user's prior
def _logistic(dim):
    import tensorflow as tf
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    return tfd.Independent(tfd.Logistic(loc=tf.zeros(dim), scale=tf.fill([dim], 0.5)), 1, name="logistic")


def test_a_user_distribution_prior_saves_loads_and_keeps_its_density(tmp_path):
    import tensorflow as tf

    from tfp_anomaly import priors
    from tfp_anomaly.models import SWAE, load_model, make_model

    options = {"latent_dim": 3, "network": {"type": "dense", "hidden_units": [8]}}
    model = SWAE((5, 2), prior=_logistic(3), **options)
    model.build()
    assert model.prior_name == "custom:logistic"
    x = np.random.default_rng(0).normal(size=(6, 5, 2)).astype("float32")
    terms = model.score_terms(x)
    assert "log_prior" in terms  # latent_logp stays available for a prior with a log_prob
    model.save(tmp_path / "swae.keras")
    back = load_model(tmp_path / "swae.keras")
    z = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    np.testing.assert_allclose(back.prior.log_prob(z), model.prior.log_prob(z), rtol=1e-6)
    np.testing.assert_allclose(back.score_terms(x)["log_prior"], terms["log_prior"], rtol=1e-5)
    assert back.prior_name == "custom:logistic" and back.get_config()["prior"] == model.get_config()["prior"]

    ensemble = make_model(SWAE, (5, 2), ensemble=2, prior=_logistic(3), **options)  # an ensemble too
    ensemble.build()
    ensemble.save(tmp_path / "ensemble.keras")
    assert load_model(tmp_path / "ensemble.keras").members[1].prior_name == "custom:logistic"

    # a distribution of the package (and a user's class, once registered) round-trips; a variable does not
    ring = priors.get_prior("ring", 3, radius=2.0)
    again = priors.deserialize_distribution(priors.serialize_distribution(ring))
    np.testing.assert_allclose(again.log_prob(z), ring.log_prob(z), rtol=1e-6)
    import tensorflow_probability as tfp

    learned = tfp.distributions.MultivariateNormalDiag(loc=tf.Variable(tf.zeros(3)))
    with pytest.raises(TypeError, match=r"MultivariateNormalDiag\.loc is a tf\.Variable"):
        priors.serialize_distribution(learned)


def test_a_prior_without_density_gives_no_log_prior():
    from tfp_anomaly import priors
    from tfp_anomaly.models import SWAE

    exact_sphere = priors.get_prior("sphere", 3)
    assert not priors.has_log_prob(exact_sphere) and priors.has_log_prob(_logistic(3))
    model = SWAE((4,), latent_dim=3, prior=exact_sphere, network={"type": "dense", "hidden_units": [4]})
    model.build()
    assert "log_prior" not in model.score_terms(np.zeros((2, 4), "float32"))


# --------------------------------------------------------------------------- loading models
def test_the_stand_ins_are_every_class_the_package_registers():
    import keras

    import tfp_anomaly.models  # noqa: F401
    from tfp_anomaly import _keras_registration as registration

    ours = {name for name in keras.saving.get_custom_objects() if name.startswith("tfp_anomaly")}
    assert ours == set(registration.registered_names())
    table = {}
    registration.add_stand_ins(table)
    vae = table["tfp_anomaly.models>VAE"]
    assert isinstance(vae, registration.StandIn) and vae.real_class() is tfp_anomaly.models.VAE


def test_keras_load_model_after_a_plain_import_of_the_package():
    """In a fresh interpreter: ``import tfp_anomaly`` (light), then Keras, then ``keras.models.load_model``."""
    script = ("import tfp_anomaly, sys; assert 'tensorflow' not in sys.modules; import keras; "
              f"m = keras.models.load_model({str(SAVED_RUN / 'model.keras')!r}); "
              "print(type(m).__name__, m.ensemble_size)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["Ensemble", "2"]


def test_a_damaged_model_file_is_named_as_damaged(tmp_path):
    from tfp_anomaly.models import load_model

    good = (SAVED_RUN / "model.keras").read_bytes()
    (tmp_path / "truncated.keras").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.keras").write_text("model")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("notes.txt", "a zip, not a model")
    for name in ("truncated", "text"):
        with pytest.raises(ValueError, match=rf"{name}\.keras: corrupt or not a Keras model archive"):
            load_model(tmp_path / f"{name}.keras")
    with pytest.raises(ValueError, match=r"other\.keras: not a Keras model archive \(a zip archive without config"):
        load_model(tmp_path / "other.keras")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "missing.keras")


# --------------------------------------------------------------------------- the command line
def _raising(error):
    def command(args):
        raise error
    return command


def test_ctrl_c_is_one_line_saying_what_resumes_and_exit_130(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "cmd_train", _raising(KeyboardInterrupt()))
    assert cli.main(["train", "cfg.yaml", "--run-dir", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert err.splitlines() == [f"tfp-anomaly: interrupted; the same command continues {tmp_path / 'run'} "
                                "from its last finished epoch"]
    monkeypatch.setattr(cli, "cmd_report", _raising(KeyboardInterrupt()))
    assert cli.main(["report", "run", "--out", str(tmp_path / "r")]) == 130
    assert len(capsys.readouterr().err.splitlines()) == 1
    with pytest.raises(KeyboardInterrupt):
        cli.main(["--debug", "train", "cfg.yaml"])


def test_a_non_finite_loss_and_an_os_error_are_one_line_exit_2(monkeypatch, capsys):
    from tfp_anomaly.models.training import NonFiniteLossError

    message = "training loss became nan at epoch 3, step 7; lower the learning rate, enable clipnorm"
    monkeypatch.setattr(cli, "cmd_train", _raising(NonFiniteLossError(message)))
    assert cli.main(["train", "cfg.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"tfp-anomaly: error: {message}"]
    with pytest.raises(NonFiniteLossError):
        cli.main(["--debug", "train", "cfg.yaml"])
    monkeypatch.setattr(cli, "cmd_train", _raising(PermissionError(13, "Permission denied", "/runs/x/config.yaml")))
    assert cli.main(["train", "cfg.yaml"]) == 2
    assert capsys.readouterr().err.splitlines() == ["tfp-anomaly: error: /runs/x/config.yaml: Permission denied"]


def test_the_package_warnings_are_one_line(monkeypatch, capsys):
    from tfp_anomaly.report.metrics import LowStatisticsWarning

    def command(args):
        warnings.warn(LowStatisticsWarning("few events\nabove the cut"), stacklevel=1)
        return 0

    monkeypatch.setattr(cli, "cmd_report", command)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli.main(["report", "run", "--out", "r"]) == 0
    assert capsys.readouterr().err.splitlines() == ["tfp-anomaly: warning: few events; above the cut"]
