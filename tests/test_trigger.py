"""Trigger-ready export: the folded Mahalanobis score equals the toolkit's, operations are counted, scores
hls4ml cannot express are refused with the reason; with the ``fpga`` extra, the C simulation of a small
trained model agrees with Keras (AUC within 0.005, trigger decisions within 1 %)."""
import json

import keras
import numpy as np
import pytest

from tfp_anomaly import config as config_lib
from tfp_anomaly import experiment, inputs, trigger
from tfp_anomaly.cli import main
from tfp_anomaly.rundir import RunDirectory
from tfp_anomaly.models import SWAE, VAE
from tfp_anomaly.scoring import Scorer

from test_sets import CONFIGS

DENSE = "model.network={type: dense, hidden_units: [32, 16]}"


def _trained(tmp_path_factory, config_file, events):
    run = tmp_path_factory.mktemp("trigger") / "run"
    config = config_lib.load_config(CONFIGS / config_file, [
        f"data.max_events={events}", "training.epochs=3", "training.verbose=0", DENSE, "model.latent_dim=4",
        "training.jit_compile=false"])  # XLA compiling costs more than three short epochs; the export is the test
    experiment.run(config, run)
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _trained(tmp_path_factory, "swae_uniform.yaml", 2000)


@pytest.fixture(scope="module")
def vae_run_dir(tmp_path_factory):
    return _trained(tmp_path_factory, "convvae.yaml", 3000)


def test_folded_mahalanobis_equals_the_toolkit_score(run_dir):
    model, fitted, samples = trigger.run_inputs(run_dir, "mahalanobis", max_events=500)
    exported = trigger.trigger_model(model, "mahalanobis", fitted)
    scorer = Scorer(["mahalanobis"]).fit(model, inputs.prepare_data(RunDirectory(run_dir).read_config()).parts["train"])
    scaled = trigger.scaled_inputs(model, samples)
    assert len(samples) == 4  # test background and the three embedded signals
    for name, x in samples.items():
        reference = scorer.score(model, x)["mahalanobis"] ** 2
        np.testing.assert_allclose(exported.predict(scaled[name], verbose=0)[:, 0], reference, rtol=2e-4,
                                   atol=1e-4, err_msg=name)


def test_operations_are_counted_layer_by_layer():
    keras.utils.set_random_seed(0)
    model = SWAE((6, 3), latent_dim=2, network={"type": "dense", "hidden_units": [5]})
    model.build()
    fitted = {"location": [0.0, 0.0], "precision": [[2.0, 0.5], [0.5, 1.0]]}
    ops = trigger.operations(trigger.trigger_model(model, "mahalanobis", fitted))
    # encoder 18·5, head 5·2, fold 2·2, square 2, sum 2·1
    assert ops["multiplications"] == 18 * 5 + 5 * 2 + 2 * 2 + 2 + 2
    assert ops["parameters"] == (18 * 5 + 5) + (5 * 2 + 2) + (2 * 2 + 2) + 2


@pytest.mark.parametrize("score", ["kl", "rz"])
def test_kl_and_rz_through_the_elu_table_equal_the_toolkit_scores(score):
    """In float arithmetic e^c (elu(y − c) + 1) = e^y exactly for y ≤ c: the Keras trigger model of a VAE
    gives the toolkit's closed-form scores on the background it was fitted on."""
    keras.utils.set_random_seed(3)
    model = VAE((6, 3), latent_dim=3, network={"type": "dense", "hidden_units": [8]})
    model.build()
    x = np.random.default_rng(0).normal(size=(300, 6, 3)).astype("float32")
    fitted = trigger.get_trigger_score(score, model).fit(model, x, batch_size=128)
    exported = trigger.trigger_model(model, score, fitted)
    reference = Scorer([score]).fit(model, x).score(model, x)[score]
    np.testing.assert_allclose(exported.predict(x, verbose=0)[:, 0], reference, rtol=1e-4, atol=1e-4)
    assert fitted["shift"] >= (1 if score == "kl" else -1) * float(np.max(model.encode(x)[2]))


def test_scores_and_networks_that_cannot_be_exported_are_refused():
    model = VAE((6, 3), latent_dim=2, network={"type": "dense", "hidden_units": [5]}, flow="planar*2")
    model.build()
    with pytest.raises(ValueError, match="'kl' of a flow posterior is a sampled estimate"):
        trigger.trigger_model(model, "kl", {})
    with pytest.raises(KeyError, match="unknown trigger score 'mse'; exportable: kl, mahalanobis, rz"):
        trigger.trigger_model(model, "mse", {})
    swae = SWAE((6, 3), latent_dim=2, network={"type": "dense", "hidden_units": [5]})
    swae.build()
    with pytest.raises(ValueError, match="score 'rz' needs a VAE"):
        trigger.trigger_model(swae, "rz", {"shift": 0.0})
    sets = VAE((6, 3), latent_dim=2, network={"type": "deepsets", "blocks": [5, 1]})
    sets.build()
    with pytest.raises(ValueError, match="'deepsets' encoder uses custom layers"):
        trigger.trigger_model(sets, "mahalanobis", {"location": [0, 0], "precision": np.eye(2)})


def test_c_simulation_agrees_with_keras(run_dir, tmp_path, capsys):
    pytest.importorskip("hls4ml", reason="the fpga extra (hls4ml) is not installed")
    out = tmp_path / "hls"
    code = main(["export-hls", str(run_dir), "--out", str(out), "--scan"])  # the default precision only
    assert code == 0
    result = json.loads((out / "export.json").read_text())
    chosen, = result["rows"]
    assert chosen["precision"] == "ap_fixed<18,8,AP_RND,AP_SAT>"
    assert chosen["auc_difference"] < 0.005 and chosen["decisions_differing"] < 0.01, chosen
    assert chosen["median_relative_deviation"] < 0.01, chosen
    assert (out / "hls" / "firmware" / "myproject.cpp").exists() and (out / "agreement.csv").exists()
    assert "multiplications per event" in capsys.readouterr().out


def test_c_simulation_of_the_exponential_table_agrees_with_keras(vae_run_dir, tmp_path):
    """kl through the ELU table (rz, the same mechanism, is compared in benchmarks/trigger_export.py)."""
    pytest.importorskip("hls4ml", reason="the fpga extra (hls4ml) is not installed")
    result = trigger.export_run(vae_run_dir, "kl", "ap_fixed<24,10,AP_RND,AP_SAT>", scan=(), out=tmp_path / "kl")
    row, = result["rows"]
    assert row["auc_difference"] < 0.005 and row["decisions_differing"] < 0.01, row
    assert result["fitted"]["shift"] == np.ceil(result["fitted"]["shift"])
