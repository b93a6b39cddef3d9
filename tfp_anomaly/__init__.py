"""tfp-anomaly: Keras 3 / TensorFlow Probability anomaly detection for LHC events.

Importing the package is light: TensorFlow is imported only by the modules that need it;
``tfp_anomaly.AnomalyDetector`` is resolved on first use. After ``import tfp_anomaly``,
``keras.models.load_model("RUN/model.keras")`` restores the package's models without importing
``tfp_anomaly.models`` first (:mod:`tfp_anomaly._keras_registration`).
"""
from . import _keras_registration

__version__ = "0.1.0"

_keras_registration.install()


def __getattr__(name):
    if name == "AnomalyDetector":
        from .detector import AnomalyDetector

        return AnomalyDetector
    raise AttributeError(f"module 'tfp_anomaly' has no attribute {name!r}")
