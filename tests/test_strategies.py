"""Flow-training strategies: in the staged strategy's second stage only the flow's weights change (batch
norm statistics included), in its first the flow is bypassed and fixed; a flow warm-up trains
everything afterwards; a staged run resumed at the stage boundary ends where an uninterrupted one does;
the tuner trains a trial by its strategy."""
import keras
import keras_tuner as kt
import numpy as np
import pytest

from tfp_anomaly.data import ObjectGrid, get_scaler, load_sample
from tfp_anomaly.models import SWAE, VAE
from tfp_anomaly.models.strategies import phases
from tfp_anomaly.models.training import train

GRID = ObjectGrid.preset("darkflow")


@pytest.fixture(scope="module")
def data():
    x, mask = GRID.transform(load_sample("background")[np.arange(600)])
    scaler = get_scaler("standard", log_columns=[0, 1]).fit(x, mask).get_config()
    return {"x": x[:400], "mask": mask[:400]}, {"x": x[400:], "mask": mask[400:]}, scaler


def _model(scaler, network=None):
    keras.utils.set_random_seed(0)  # default: the conv network, with batch norm, whose statistics must freeze too
    model = VAE(GRID.shape, network=network or {"type": "conv", "hidden": 8}, latent_dim=3, flow="planar*2",
                flow_kwargs={"amortized": True}, scaler=scaler)
    model.build()
    return model


def _values(variables):
    return {v.path: v.numpy().copy() for v in variables}


def _flow_and_rest(model):
    flow = {v.path for v in model.flow.weights}
    counters = {model.draws.path}  # the model's random-stream counter advances in every stage
    values = _values(model.weights)
    return ({k: v for k, v in values.items() if k in flow},
            {k: v for k, v in values.items() if k not in flow and k not in counters})


class Snapshots(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.after = []

    def on_epoch_end(self, epoch, logs=None):
        self.after.append(_flow_and_rest(self.model))


def _changed(before, after):
    return {k for k in before if not np.array_equal(before[k], after[k])}


def test_staged_training_changes_only_the_flow_in_its_second_stage(data):
    train_x, val_x, scaler = data
    model = _model(scaler)
    flow0, rest0 = _flow_and_rest(model)
    snaps = Snapshots()
    _, history = train(model, train_x, val_x, epochs=2, batch_size=100, verbose=0, flow_training="staged",
                       first_stage_epochs=1, callbacks=[snaps], jit_compile=False)
    (flow1, rest1), (flow2, rest2) = snaps.after
    assert not _changed(flow0, flow1), "stage 1 trains the VAE alone: the flow stays fixed"
    assert _changed(rest0, rest1) == set(rest0), "stage 1 trains every encoder/decoder weight"
    assert not _changed(rest1, rest2), f"stage 2 changed non-flow weights: {_changed(rest1, rest2)}"
    assert _changed(flow1, flow2) == set(flow1), "stage 2 trains every flow weight"
    assert any("moving_mean" in k for k in rest1), "batch-norm statistics are among the checked weights"
    assert model.stage == "flow" and len(history.epoch) == 2 and np.isfinite(history.history["val_loss"]).all()
    # stage 1 is the plain VAE: no flow term in its KL, the flow's in stage 2
    out = model(val_x, training=False)
    assert np.abs(out["log_det"].numpy()).max() > 0
    model.set_stage("vae")
    assert np.abs(model(val_x, training=False)["log_det"].numpy()).max() == 0


def test_flow_warmup_trains_everything_after_the_first_stage(data):
    train_x, val_x, scaler = data
    model = _model(scaler, {"type": "dense", "hidden_units": [16]})
    snaps = Snapshots()
    train(model, train_x, val_x, epochs=2, batch_size=100, verbose=0, flow_training="flow_warmup",
          first_stage_epochs=1, callbacks=[snaps], jit_compile=False)
    (flow1, rest1), (flow2, rest2) = snaps.after
    assert model.stage == "joint"
    assert _changed(flow1, flow2) == set(flow1)
    assert {k for k in _changed(rest1, rest2) if "kernel" in k} == {k for k in rest1 if "kernel" in k}


def test_a_staged_run_resumed_at_the_stage_boundary_ends_where_an_uninterrupted_one_does(data, tmp_path):
    train_x, val_x, scaler = data
    options = dict(batch_size=100, verbose=0, flow_training="staged", first_stage_epochs=1, jit_compile=False)
    dense = {"type": "dense", "hidden_units": [16]}
    straight, _ = train(_model(scaler, dense), train_x, val_x, run_dir=tmp_path / "a", epochs=2, **options)
    train(_model(scaler, dense), train_x, val_x, run_dir=tmp_path / "b", epochs=1, **options)
    resumed, history = train(_model(scaler, dense), train_x, val_x, run_dir=tmp_path / "b", epochs=2, **options)
    assert history.epoch == [1] and resumed.stage == "flow"
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    # a checkpoint in the flow stage reloads frozen, with its optimizer state
    last = keras.models.load_model(tmp_path / "b" / "last.keras")
    assert last.stage == "flow" and not last.encoder.trainable and last.flow.trainable
    assert {v.path for v in last.trainable_weights} == {v.path for v in last.flow.trainable_weights}


def test_strategies_are_checked():
    assert [(p.stage, p.start, p.end) for p in phases("staged", 10)] == [("vae", 0, 5), ("flow", 5, 10)]
    assert [p.stage for p in phases("flow_warmup", 4, 0)] == ["joint"]
    with pytest.raises(KeyError, match="unknown strategy 'stagged'; available: flow_warmup, joint, staged"):
        phases("stagged", 4)
    with pytest.raises(ValueError, match="first_stage_epochs = 6 must lie in"):
        phases("staged", 4, 6)
    swae = SWAE((5,), latent_dim=2)
    swae.build()
    with pytest.raises(ValueError, match="needs a VAE with a posterior flow"):
        train(swae, np.zeros((10, 5), "float32"), epochs=1, flow_training="staged", verbose=0)


def test_the_tuner_trains_a_trial_by_its_strategy(tmp_path):
    from tfp_anomaly import config as config_lib
    from tfp_anomaly.inputs import prepare_data
    from tuning.hypermodel import AutoencoderHyperModel
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "configs" / "search_flow_training.yaml"
    config = config_lib.load_config(path, ["data.max_events=600", "training.batch_size=120", "training.verbose=0",
                                           "model.network={type: dense, hidden_units: [16]}", "model.latent_dim=3",
                                           "training.jit_compile=false"])
    hypermodel = AutoencoderHyperModel(config, prepare_data(config))
    hp = kt.HyperParameters()
    hp.values.update({"training.flow_training": "staged", "training.first_stage_epochs": 1})
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, epochs=2)
    assert model.stage == "flow" and history.epoch == [0, 1] and len(history.history["val_loss"]) == 2
