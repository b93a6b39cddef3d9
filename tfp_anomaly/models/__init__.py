"""Models: VAE with flow posteriors, SWAE with TFP priors, seed ensembles, their networks and training.

Importing this package registers every model, network and layer class with Keras, so
:func:`load_model` (or ``keras.models.load_model`` after ``import tfp_anomaly.models``) restores a
saved ``.keras`` file.
"""
from ..registry import Registry
from .base import Autoencoder, Encoding
from . import sets  # noqa: F401  (registers the deepsets and graph networks)
from .networks import NETWORKS, build_networks
from .preprocessing import ScalerLayer
from .swae import SWAE
from .vae import VAE

#: ``model.type`` → model class
MODELS = Registry("model")
MODELS.register("vae", VAE)
MODELS.register("swae", SWAE)

from .ensemble import Ensemble, make_model  # noqa: E402  (needs MODELS)


def load_model(path):
    """A model saved by this package (``RUN/model.keras``, a checkpoint, a detector's model)."""
    import keras

    return keras.models.load_model(path)


__all__ = ["Autoencoder", "Encoding", "VAE", "SWAE", "Ensemble", "MODELS", "NETWORKS", "build_networks",
           "make_model", "load_model", "ScalerLayer"]
