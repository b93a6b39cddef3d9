"""Models: VAE with flow posteriors, SWAE with TFP priors, their networks and training."""
from .base import Autoencoder
from . import sets  # noqa: F401  (registers the deepsets and graph networks)
from .networks import NETWORKS, build_networks
from .preprocessing import ScalerLayer
from .swae import SWAE
from .vae import VAE

MODELS = {"vae": VAE, "swae": SWAE}

from .ensemble import Ensemble, make_model  # noqa: E402  (needs MODELS)

__all__ = ["Autoencoder", "VAE", "SWAE", "Ensemble", "MODELS", "NETWORKS", "build_networks", "make_model",
           "ScalerLayer"]
