"""The shared mechanisms of the package: the registry, the encode contract, the model-owned compiled
score terms, atomic model output, the model-input helpers, the configuration's network check."""
from __future__ import annotations

import numpy as np
import pytest

from tfp_anomaly import config as config_lib
from tfp_anomaly.data import arrays
from tfp_anomaly.registry import Registry, UnknownNameError


def test_registry_names_what_it_knows_and_refuses_a_second_registration():
    shapes = Registry("shape", name_attribute="name")

    @shapes.register("square")
    class Square:
        pass

    shapes.register("circle", type("Circle", (), {}))
    assert Square.name == "square" and list(shapes) == ["square", "circle"] and shapes.names() == ["circle", "square"]
    assert shapes["square"] is Square and "square" in shapes and ["unhashable"] not in shapes
    with pytest.raises(UnknownNameError, match=r"^model\.shape: unknown shape 'cube'; available: circle, square, "
                                               r"or draw one$") as error:
        shapes.lookup("cube", "model.shape", hint="or draw one")
    assert isinstance(error.value, KeyError) and isinstance(error.value, ValueError)
    with pytest.raises(UnknownNameError, match="unknown shape"):
        shapes.lookup(["unhashable"])
    with pytest.raises(ValueError, match="shape 'square' registered twice"):
        shapes.register("square", object)
    Other = type("Other", (), {})
    assert shapes.register("square", Other, replace=True) is Other and shapes["square"] is Other


def test_every_registry_of_the_package_is_a_registry():
    from tfp_anomaly import losses, priors, scoring, trigger
    from tfp_anomaly.data import formats, objects, preprocessing, representation
    from tfp_anomaly.data.generate import processes, selections
    from tfp_anomaly.flows import FLOWS
    from tfp_anomaly.models import MODELS, NETWORKS, strategies

    registries = [FLOWS, MODELS, NETWORKS, strategies.FLOW_TRAINING, strategies.STAGES, losses.RECONSTRUCTIONS,
                  losses.FEATURE_LIKELIHOODS, priors.PRIORS, scoring.SCORES, trigger.TRIGGER_SCORES,
                  formats.FORMATS, preprocessing.SCALERS, representation.FEATURES, representation.PRESETS,
                  objects.BY_CODE, processes.PROCESSES, selections.SELECTIONS]
    assert all(isinstance(r, Registry) and len(r) > 0 for r in registries)


def test_model_input_helpers_take_rows_of_either_form():
    x, mask = np.arange(24.0).reshape(3, 4, 2), np.array([[1, 1, 0, 0]] * 3, bool)
    grid = {"x": x, "mask": mask}
    assert arrays.n_events(grid) == arrays.n_events(x) == 3 and arrays.event_shape(grid) == (4, 2)
    np.testing.assert_array_equal(arrays.take(grid, [2, 0])["x"], x[[2, 0]])
    np.testing.assert_array_equal(arrays.take(grid, [2, 0])["mask"], mask[[2, 0]])
    np.testing.assert_array_equal(arrays.head(x, 2), x[:2])
    joined = arrays.concatenate([arrays.head(grid, 1), arrays.take(grid, slice(1, None))])
    np.testing.assert_array_equal(joined["x"], x) and np.testing.assert_array_equal(joined["mask"], mask)
    assert arrays.split_mask(x)[1] is None and arrays.like(x, {"x": x}) is x and arrays.like(grid, grid) is grid


@pytest.fixture(scope="module")
def small_models():
    from tfp_anomaly.models import SWAE, VAE, make_model

    options = {"latent_dim": 3, "network": {"type": "dense", "hidden_units": [8]}}
    models = {"vae": VAE((5, 2), flow="planar", **options), "swae": SWAE((5, 2), **options),
              "ensemble": make_model(VAE, (5, 2), ensemble=2, **options)}
    for model in models.values():
        model.build()
    return models


@pytest.mark.parametrize("kind", ["vae", "swae", "ensemble"])
def test_every_model_encodes_to_the_same_contract(small_models, kind):
    from tfp_anomaly.models import Encoding

    x = np.random.default_rng(0).normal(size=(7, 5, 2)).astype("float32")
    encoding = small_models[kind].encode(x)
    assert isinstance(encoding, Encoding)
    members = (2,) if kind == "ensemble" else ()
    assert tuple(encoding.loc.shape) == (7, *members, 3) and encoding.hidden.shape[:len(members) + 1] == (7, *members)
    assert (encoding.log_var is None) == (kind == "swae")
    if kind == "vae":  # the encoding is the posterior mean the scores use
        terms = small_models[kind].score_terms(x, np.array([0, 0], "int32"))
        np.testing.assert_allclose(terms["encoding"], encoding.loc, rtol=1e-6)


def test_the_model_keeps_its_compiled_score_terms(small_models):
    model = small_models["swae"]
    assert model.compiled_score_terms() is model.compiled_score_terms()
    assert small_models["vae"].compiled_score_terms() is not model.compiled_score_terms()
    assert not any("compiled" in v.path for v in model.variables)


def test_save_model_is_atomic_and_leaves_no_temporary_file(tmp_path, small_models):
    from tfp_anomaly.atomic import save_model
    from tfp_anomaly.models import load_model

    class Failing:
        def save(self, path):
            path.write_bytes(b"half a model")
            raise OSError("disk full")

    target = tmp_path / "model.keras"
    save_model(small_models["swae"], target)
    before = target.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        save_model(Failing(), target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    assert load_model(target).latent_dim == 3


def test_a_misspelt_network_option_is_a_configuration_error_before_any_data_is_read(tmp_path):
    from tfp_anomaly.experiment import run

    config = config_lib.merge(config_lib.DEFAULTS, {
        "data": {"background": str(tmp_path / "never_read.csv")},
        "model": {"type": "vae", "network": {"type": "dense", "hiden_units": [8]}}})
    with pytest.raises(config_lib.ConfigError, match=r"model\.network: unknown option 'hiden_units' for network "
                                                     r"type 'dense'; options: .*hidden_units"):
        run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # a refused configuration claims no run directory


def test_a_mapping_of_another_type_replaces_the_base_mapping():
    base = {"model": {"type": "vae", "network": {"type": "conv", "hidden": 20}}}
    merged = config_lib.merge(base, {"model": {"network": {"type": "deepsets", "phi_units": [8]}}})
    assert merged["model"] == {"type": "vae", "network": {"type": "deepsets", "phi_units": [8]}}
    assert config_lib.merge(base, {"model": {"network": {"hidden": 40}}})["model"]["network"] == \
        {"type": "conv", "hidden": 40}
