"""tfp-anomaly: Keras 3 / TensorFlow Probability anomaly detection for LHC events.

Importing the package is light: TensorFlow is imported only by the modules that need it.
"""
__version__ = "0.1.0"
