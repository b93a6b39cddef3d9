"""The model families train on real data, SWAE matches its prior, and training is reproducible,
resumable, saved with its preprocessing, and stopped loudly on NaN."""
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_anomaly import losses, priors
from tfp_anomaly.data import ObjectGrid, get_scaler, read_lhco_scalars
from tfp_anomaly.models import SWAE, VAE
from tfp_anomaly.models.training import NonFiniteLossError, train

DENSE = {"type": "dense", "hidden_units": [32, 16]}


@pytest.fixture(scope="module")
def lhco_background():
    from conftest import LHCO_SCALARS, _need

    table = read_lhco_scalars(_need(LHCO_SCALARS) / "scalars_bkg01.h5")
    x = table.features.astype("float32")[:4000]
    scaler = get_scaler("standard").fit(x[:3000])
    return x[:3000], x[3000:], scaler.get_config()


@pytest.mark.parametrize("family", ["vae", "vae+iaf", "vae+planar", "swae"])
def test_short_training_on_lhco_background_lowers_validation_loss(lhco_background, family, tmp_path):
    train_x, val_x, scaler = lhco_background
    keras.utils.set_random_seed(0)
    common = dict(latent_dim=4, network=DENSE, scaler=scaler)
    model = {"vae": lambda: VAE(train_x.shape[1:], **common),
             "vae+iaf": lambda: VAE(train_x.shape[1:], flow="iaf*2", flow_kwargs={"hidden_units": [16]}, **common),
             "vae+planar": lambda: VAE(train_x.shape[1:], flow="planar*4", flow_kwargs={"amortized": True}, **common),
             "swae": lambda: SWAE(train_x.shape[1:], prior="uniform", **common)}[family]()
    model.build()
    model.compile(optimizer="adam")
    before = model.evaluate(val_x, verbose=0, batch_size=500)[0]
    # graph mode: XLA compiling each family costs more than its 4 short epochs (XLA: test_stop_and_resume...)
    model, history = train(model, train_x, val_x, epochs=4, batch_size=128, learning_rate=3e-3, verbose=0,
                           jit_compile=False)
    assert history.history["val_loss"][-1] < before - 0.05, (before, history.history["val_loss"])


def test_conv_vae_with_flow_trains_on_the_darkmachines_object_matrix(dm_events):
    grid = ObjectGrid.preset("darkflow")
    x, mask = grid.transform(dm_events[:1500])
    scaler = get_scaler("standard", log_columns=[0, 1]).fit(x[:1000], mask[:1000])
    data = {"x": x, "mask": mask}
    keras.utils.set_random_seed(0)
    model = VAE(x.shape[1:], network={"type": "conv"}, flow="sylvester_householder*2",
                flow_kwargs={"amortized": True, "num_householder": 2}, scaler=scaler.get_config())
    model.build()
    model.compile(optimizer="adam")
    val = {k: v[1000:] for k, v in data.items()}
    before = model.evaluate(val, verbose=0, batch_size=500)[0]
    _, history = train(model, {k: v[:1000] for k, v in data.items()}, val, epochs=3, batch_size=64, verbose=0,
                       jit_compile=False)  # graph mode: XLA compilation would cost more than the 3 short epochs
    assert history.history["val_loss"][-1] < before
    assert model.predict(val, verbose=0)["reconstruction"].shape == (500, 32, 4)


def test_swae_pulls_the_encodings_towards_its_prior():
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 2000)
    x = np.stack([np.cos(angle), np.sin(angle), 0.1 * rng.normal(size=2000)], 1).astype("float32") * 3
    keras.utils.set_random_seed(0)
    model = SWAE((3,), latent_dim=2, network={"type": "dense", "hidden_units": [32]}, prior="ring", lam=10.0)
    model.build()
    target = priors.get_prior("ring", 2).sample(2000, seed=(7, 7))
    directions = losses.random_directions(200, 2, tf.constant([3, 3]))

    def distance():
        return float(losses.sliced_wasserstein(model.predict(x, verbose=0)["z"], target, directions))

    start = distance()
    train(model, x, epochs=8, batch_size=128, learning_rate=3e-3, verbose=0, jit_compile=False)
    assert distance() < 0.5 * start


def _small_vae():
    return VAE((8,), latent_dim=3, network={"type": "dense", "hidden_units": [16], "dropout": 0.1},
               flow="iaf*2", flow_kwargs={"hidden_units": [8]}, kl_warmup_steps=10)


class _EpochsRun(keras.callbacks.Callback):
    """Records the epochs a ``fit`` actually trains."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


class _CopyCheckpoint(keras.callbacks.Callback):
    """At the end of epoch ``epoch`` (before the run's own checkpoint of it) copy the run's checkpoint
    files to ``target``: a run interrupted after ``epoch`` epochs, without training it separately."""

    def __init__(self, source, target, epoch):
        super().__init__()
        self.source, self.target, self.at = Path(source), Path(target), epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            self.target.mkdir(parents=True)
            for name in ("last.keras", "best.keras", "state.json", "history.csv"):
                shutil.copy2(self.source / name, self.target / name)


def _resumable_run(run_dir, epochs, x, callbacks=()):
    """A dropout VAE (a random stream to continue) trained with the default ``jit_compile="auto"``."""
    keras.utils.set_random_seed(0)
    counter = _EpochsRun()
    model = VAE((8,), latent_dim=3, network={"type": "dense", "hidden_units": [16], "dropout": 0.1},
                kl_warmup_steps=10)
    model, _ = train(model, x, x[:50], run_dir=run_dir, epochs=epochs, batch_size=64, verbose=0,
                     callbacks=[counter, *callbacks])
    return model, counter


def test_stop_and_resume_trains_the_remaining_epochs_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """Under XLA (the default): a resumed call trains only the epochs left (a silent restart would train
    all four and, seeded alike, could reach the same weights) and ends where an uninterrupted run does.
    (A fresh run repeating one with the same seed, and resuming a flow VAE after an interruption at any
    point of the checkpoint: tests/test_runs_robustness.py.)"""
    x = np.random.default_rng(0).normal(size=(300, 8)).astype("float32")
    # the uninterrupted run, and a copy of its run directory as it was after two epochs
    full, counter = _resumable_run(tmp_path / "full", 4, x, [_CopyCheckpoint(tmp_path / "full", tmp_path / "part", 2)])
    assert counter.epochs == [0, 1, 2, 3] and full.jit_compile  # "auto" compiled with XLA
    assert json.loads((tmp_path / "part" / "state.json").read_text())["epoch"] == 2
    resumed, counter = _resumable_run(tmp_path / "part", 4, x)
    assert counter.epochs == [2, 3] and resumed.jit_compile
    for a, b in zip(full.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    lines = (tmp_path / "part" / "history.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == [0, 1, 2, 3]  # one row per epoch, none twice
    _, counter = _resumable_run(tmp_path / "part", 4, x)  # complete: nothing left to train
    assert counter.epochs == []


def test_saved_model_carries_its_preprocessing_and_gives_identical_outputs(tmp_path):
    x = np.abs(np.random.default_rng(1).normal(size=(64, 5, 3))).astype("float32")
    mask = np.ones((64, 5), bool)
    mask[:, 3:] = False
    scaler = get_scaler("standard", log_columns=[0]).fit(x, mask)
    model = VAE((5, 3), latent_dim=2, network=DENSE, flow="planar*2", flow_kwargs={"amortized": True},
                scaler=scaler.get_config(), reconstruction="chamfer")
    model.build()
    model.save(tmp_path / "vae.keras")
    loaded = keras.models.load_model(tmp_path / "vae.keras")
    data = {"x": x, "mask": mask}
    a, b = model(data), loaded(data)  # same weights, same position in the random stream
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
    np.testing.assert_allclose(loaded.scaled(data)[0].numpy(), scaler.transform(x, mask), rtol=1e-5, atol=1e-6)


def test_nan_loss_stops_training_naming_epoch_and_step():
    x = np.random.default_rng(2).normal(size=(256, 8)).astype("float32")
    x[200, 3] = np.nan  # lands in the fourth batch of 64 of the first epoch when not shuffled
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 4;"):
        train(_small_vae(), x, epochs=2, batch_size=64, verbose=0, shuffle=False, jit_compile=False)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, steps 3-4;"):  # two steps per call into the graph
        train(_small_vae(), x, epochs=2, batch_size=64, verbose=0, shuffle=False, steps_per_execution=2,
              jit_compile=False)


def test_steps_per_execution_keeps_every_epoch_whole():
    from tfp_anomaly.models.training import whole_executions

    class Steps(keras.callbacks.Callback):  # optimiser steps per epoch
        def on_train_begin(self, logs=None):
            self.counts = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = int(self.model.optimizer.iterations.numpy())

        def on_epoch_end(self, epoch, logs=None):
            self.counts.append(int(self.model.optimizer.iterations.numpy()) - self.start)

    assert [whole_executions(16, 25), whole_executions(8, 400), whole_executions(7, 13), whole_executions(4, 0)] == \
        [5, 8, 1, 1]
    x = np.random.default_rng(4).normal(size=(50, 8)).astype("float32")
    steps = Steps()
    model, _ = train(_small_vae(), x, epochs=3, batch_size=2, verbose=0, steps_per_execution=16, callbacks=[steps],
                     jit_compile=False)
    assert steps.counts == [25, 25, 25] and model.steps_per_execution == 5  # not 32, 32, 11 at 16


def test_keras_callbacks_work_in_the_training_loop(tmp_path):
    x = np.random.default_rng(3).normal(size=(256, 8)).astype("float32")
    keras.utils.set_random_seed(0)
    # min_delta so large that no epoch after the first counts as an improvement: stops after 1 + patience
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=1e9)
    save = keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.keras"), monitor="val_loss")
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path / "tb"))
    _, history = train(_small_vae(), x, x[:64], run_dir=tmp_path / "run", epochs=10, batch_size=64, verbose=0,
                       callbacks=[stop, save, board], jit_compile=False)
    assert len(history.history["val_loss"]) == 2 and stop.stopped_epoch == 1
    assert keras.models.load_model(tmp_path / "ckpt.keras").count_params() > 0
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["epoch"] == 2 and state["best"] == min(history.history["val_loss"])
    assert (tmp_path / "run" / "best.keras").exists()
