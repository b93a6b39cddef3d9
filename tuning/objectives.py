"""Search objectives that need labels: AUC and signal efficiency on a labelled validation set.

``val_loss`` needs nothing beyond the background (fully unsupervised). ``val_auc`` and
``val_eff_at_1e-3`` (any ε_B: ``val_eff_at_1e-2`` ...) are computed once per epoch by
:class:`LabelledValidation` and written into the Keras logs, where Keras Tuner reads its objective.
Selecting a model with them is model selection *with labels*: the user supplies signal events for the
validation set (``search.validation_signal``), so the chosen architecture has seen which signal
counts; say so when reporting its figures, and test on a signal that was not used.
"""
from __future__ import annotations

import keras
import numpy as np

from tfp_anomaly.report.metrics import auc, efficiency_at, format_efficiency, roc
from tfp_anomaly.scoring import Scorer

UNSUPERVISED = ("val_loss",)


def direction(objective: str) -> str:
    """Keras Tuner's direction: losses go down, AUC and efficiencies up."""
    return "min" if objective.endswith("loss") else "max"


def needs_labels(objective: str) -> bool:
    return objective not in UNSUPERVISED


def background_efficiency(objective: str) -> float:
    prefix = "val_eff_at_"
    if not objective.startswith(prefix):
        raise KeyError(f"unknown objective {objective!r}; use val_loss, val_auc or val_eff_at_<ε_B>, e.g. val_eff_at_1e-3")
    return float(objective[len(prefix):])


class LabelledValidation(keras.callbacks.Callback):
    """At the end of each epoch: fit ``score`` on (a sample of) the training background, score the
    validation background and the validation signal, and write ``val_auc`` and ``val_eff_at_<ε_B>``
    into the logs."""

    def __init__(self, train_background, val_background, val_signal, score="mse", efficiencies=(1e-3,),
                 fit_events: int = 5000, seed: int = 0):
        super().__init__()
        self.train_background = _head(train_background, fit_events)
        self.val_background, self.val_signal = val_background, val_signal
        self.score, self.efficiencies, self.seed = score, tuple(efficiencies), seed

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        scorer = Scorer([self.score], seed=self.seed).fit(self.model, self.train_background)
        b = next(iter(scorer.score(self.model, self.val_background).values()))
        s = next(iter(scorer.score(self.model, self.val_signal).values()))
        logs["val_auc"] = auc(b, s)
        fpr, tpr = roc(b, s)
        for e, value in zip(self.efficiencies, np.atleast_1d(efficiency_at(fpr, tpr, list(self.efficiencies)))):
            logs[f"val_eff_at_{format_efficiency(e)}"] = float(value)


def _head(x, n):
    return {k: v[:n] for k, v in x.items()} if isinstance(x, dict) else x[:n]
