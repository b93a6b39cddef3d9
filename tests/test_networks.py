"""Network options: a misspelt one is an error naming the known ones; an option reaches only the
builder that takes it; the seeded dropout draws its masks from a saved counter."""
import numpy as np
import pytest

from tfp_anomaly import config as config_lib
from tfp_anomaly.models import networks
from tfp_anomaly.registry import UnknownNameError


def test_a_misspelt_option_is_an_error_that_lists_the_options():
    expected = (r"^model\.network: unknown option 'hiden_units' for network type 'dense'; "
                r"options: activation, batch_norm, dropout, hidden_units$")
    with pytest.raises(config_lib.ConfigError, match=expected):
        networks.build_networks({"type": "dense", "hiden_units": [8]}, (6,), latent_dim=2)
    with pytest.raises(ValueError, match="unknown option 'latent_dim'"):  # filled by the builder, not an option
        networks.build_networks({"type": "dense", "latent_dim": 3}, (6,), latent_dim=2)
    assert networks.network_options("dense") == {"activation", "batch_norm", "dropout", "hidden_units"}
    assert networks.network_options("conv") == {"filters", "hidden", "activation", "batch_norm"}
    assert {"blocks", "phi_units", "rho_units", "pooling", "decoder_units"} <= networks.network_options("deepsets")
    assert {"blocks", "edge_units", "k", "hidden", "decoder_units"} <= networks.network_options("graph")
    with pytest.raises(UnknownNameError, match="model.network: unknown network type 'mlp'; available: conv, deepsets, "
                                               "dense, graph"):
        networks.network_options("mlp")


def test_an_option_reaches_only_the_builder_that_takes_it():
    # blocks is the set encoder's alone, decoder_units the set decoder's alone: neither builder takes the
    # other's option (a TypeError if it were passed)
    network = {"type": "deepsets", "blocks": [5, 1], "phi_units": [4], "rho_units": [7], "decoder_units": [3, 5]}
    encoder, decoder = networks.build_networks(network, (6, 3), latent_dim=2, params_per_feature=2)
    assert encoder.output_shape == (None, 7) and len(encoder.inputs) == 2
    assert [layer.units for layer in decoder.layers if hasattr(layer, "units")] == [3, 5, 36]
    assert decoder.output_shape == (None, 6, 6)
    graph = {"type": "graph", "blocks": [5, 1], "edge_units": [[4]], "k": 2, "hidden": 9, "decoder_units": [3]}
    encoder, decoder = networks.build_networks(graph, (6, 3), latent_dim=2)
    assert encoder.output_shape == (None, 9) and decoder.output_shape == (None, 6, 3)


def test_a_builder_must_name_its_options():
    def loose(input_shape, **options):
        return None

    with pytest.raises(TypeError, match="name its options"):
        networks.NETWORKS.register("loose", networks.Network(loose, networks.dense_decoder))
    assert "loose" not in networks.NETWORKS


def test_seeded_dropout_draws_from_its_saved_counter():
    x = np.ones((4, 50), "float32")
    layer = networks.SeededDropout(0.5, seed=3)
    first, second = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    assert layer.calls.name == "calls" and layer.calls.dtype == "int64" and int(layer.calls.numpy()) == 2
    assert set(np.unique(first)) <= {0.0, 2.0} and not np.array_equal(first, second)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    again = networks.SeededDropout(0.5, seed=3)
    np.testing.assert_array_equal(again(x, training=True).numpy(), first)


def test_a_saved_network_drops_only_the_options_its_builders_never_took():
    saved = {"type": "dense", "hidden": 20, "hidden_units": [16]}  # release 0: a conv option left in a dense net
    assert networks.legacy_network(saved) == {"type": "dense", "hidden_units": [16]}
    assert networks.legacy_network({"type": "conv", "hidden": 20}) == {"type": "conv", "hidden": 20}
    assert networks.legacy_network(None) is None
