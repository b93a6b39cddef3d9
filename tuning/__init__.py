"""Keras Tuner searches over the toolkit's architectures, flows and priors (``tfp-anomaly tune``).

:mod:`tuning.space` (YAML search spaces), :mod:`tuning.hypermodel` (the HyperModel),
:mod:`tuning.objectives` (labelled objectives), :mod:`tuning.search` (tuners, distributed roles,
resuming, results).
"""
