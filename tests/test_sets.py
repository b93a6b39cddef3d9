"""Set and graph encoders: invariant under permutations of the objects within a type block, blind to
padded slots, sensitive to an object's type; they train in the VAE and the SWAE from a configuration
and save and load."""
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from tfp_anomaly import config as config_lib
from tfp_anomaly import experiment
from tfp_anomaly.data import ObjectGrid, get_scaler, load_sample
from tfp_anomaly.models import VAE

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"
GRID = ObjectGrid.preset("darkflow")
NETWORKS = {"deepsets": {"type": "deepsets", "phi_units": [32, 32], "rho_units": [32]},
            "graph": {"type": "graph", "edge_units": [[16, 16], [16]], "k": 4}}


@pytest.fixture(scope="module")
def events():
    x, mask = GRID.transform(load_sample("background")[np.arange(400)])
    return x, mask, get_scaler("standard", log_columns=[0, 1]).fit(x, mask).get_config()


def _encoder(name, scaler):
    keras.utils.set_random_seed(1)
    model = VAE(GRID.shape, network={**NETWORKS[name], "blocks": GRID.block_sizes}, latent_dim=4, scaler=scaler)
    model.build()
    return model


def _within_block_permutation(rng):
    order, start = [], 0
    for size in GRID.block_sizes:
        order.extend(start + rng.permutation(size))
        start += size
    return np.array(order)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_shuffling_objects_within_a_type_block_leaves_the_encoding_unchanged(events, name):
    x, mask, scaler = events
    model = _encoder(name, scaler)
    h, mu, _ = model.encode({"x": x, "mask": mask})
    rng = np.random.default_rng(0)
    for _ in range(3):  # padded slots move with the shuffle, as the objects do
        order = _within_block_permutation(rng)
        assert not np.array_equal(order, np.arange(len(order)))
        h2, mu2, _ = model.encode({"x": x[:, order], "mask": mask[:, order]})
        np.testing.assert_allclose(h2.numpy(), h.numpy(), atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(mu2.numpy(), mu.numpy(), atol=2e-5, rtol=1e-5)
    # an object's type matters: move the leading jet into the first b-jet slot (and back)
    swap = np.arange(GRID.n_rows)
    swap[[0, 13]] = [13, 0]
    has_jet = mask[:, 0]
    moved = model.encode({"x": x[:, swap], "mask": mask[:, swap]})[0].numpy()
    assert np.abs(moved - h.numpy())[has_jet].max() > 1e-3
    # the dense network sees the slot order: the same shuffle changes its encoding
    dense = VAE(GRID.shape, network={"type": "dense", "hidden_units": [32]}, latent_dim=4, scaler=scaler)
    dense.build()
    order = _within_block_permutation(np.random.default_rng(5))
    a = dense.encode({"x": x, "mask": mask})[0].numpy()
    assert np.abs(dense.encode({"x": x[:, order], "mask": mask[:, order]})[0].numpy() - a).max() > 1e-3


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_padded_slots_do_not_contribute(events, name):
    x, mask, scaler = events
    model = _encoder(name, scaler)
    scaled = model.scaled({"x": x, "mask": mask})[0].numpy()
    slot_mask = mask.astype("float32")
    junk = np.where(mask[..., None], scaled, np.random.default_rng(2).normal(size=x.shape) * 50)
    np.testing.assert_allclose(model.encoder([junk.astype("float32"), slot_mask]).numpy(),
                               model.encoder([scaled, slot_mask]).numpy(), atol=1e-5)
    # a bare object matrix: the mask is its non-zero rows, the same encoding as with the mask given
    np.testing.assert_allclose(model.encode(x)[0].numpy(), model.encode({"x": x, "mask": mask})[0].numpy(), atol=1e-6)


def test_set_networks_need_an_object_matrix_and_its_blocks():
    with pytest.raises(ValueError, match="needs an object matrix"):
        VAE((12,), network={"type": "deepsets", "blocks": [12]})
    with pytest.raises(ValueError, match="needs 'blocks'"):
        VAE(GRID.shape, network={"type": "graph"})
    with pytest.raises(ValueError, match=r"cover 31 slots, the input has 32"):
        VAE(GRID.shape, network={"type": "deepsets", "blocks": GRID.block_sizes[:-1]})


@pytest.mark.parametrize("config_file, name", [("deepsets_vae.yaml", "deepsets"), ("graph_swae.yaml", "graph")])
def test_set_and_graph_models_train_from_a_configuration_and_reload(tmp_path, config_file, name):
    config = config_lib.load_config(CONFIGS / config_file, [
        "data.max_events=900", "training.epochs=3", "training.batch_size=180", "training.verbose=0",
        "training.early_stopping=null", f"model.network={NETWORKS[name]}", "model.latent_dim=4"])
    experiment.run(config, tmp_path / "run")
    loss = pd.read_csv(tmp_path / "run" / "history.csv")["loss"]
    assert np.isfinite(loss).all() and loss.iloc[-1] < loss.iloc[0], loss.tolist()
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert model.network["blocks"] == GRID.block_sizes  # filled from the grid section
    model.save(tmp_path / "again.keras")
    reloaded = keras.models.load_model(tmp_path / "again.keras")
    x, mask = GRID.transform(load_sample("background")[np.arange(50)])
    a, b = (m.score_terms({"x": x, "mask": mask}, [1, 2]) for m in (model, reloaded))
    for key in ("encoding", "mse"):
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
