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
    """A model saved by this package (``RUN/model.keras``, a checkpoint, a detector's model).

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` naming the file when it
    is a directory or not a Keras archive (a ``.keras`` file is a zip archive: a truncated or
    overwritten file is not one), never Keras' "file not found" for a file that is there."""
    import zipfile
    import zlib
    from pathlib import Path

    import keras

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a Keras model file (.keras)")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: corrupt or not a Keras model archive (a .keras file is a zip archive; "
                         "this one is truncated or of another kind)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt Keras model archive ({err})") from None
    if damaged is not None:
        raise ValueError(f"{path}: corrupt Keras model archive (member {damaged} is damaged)")
    if "config.json" not in names:
        raise ValueError(f"{path}: not a Keras model archive (a zip archive without config.json)")
    try:
        return keras.models.load_model(path)
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt Keras model archive ({err})") from None


__all__ = ["Autoencoder", "Encoding", "VAE", "SWAE", "Ensemble", "MODELS", "NETWORKS", "build_networks",
           "make_model", "load_model", "ScalerLayer"]
