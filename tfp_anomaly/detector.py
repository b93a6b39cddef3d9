"""A PyOD-style detector: ``fit`` on background, ``decision_function`` (higher = more anomalous),
``threshold_`` at a background-efficiency target, ``predict`` → 0/1, ``save``/``load``.

    det = AnomalyDetector({"type": "vae", "flow": "planar*4"}, score="mse+mahalanobis", bkg_efficiency=1e-3)
    det.fit(x_background)                  # trains the model, fits the score statistics and the threshold
    scores = det.decision_function(x)      # (N,)
    flags = det.predict(x)                 # 1 where the score is above threshold_

The constructor only stores its arguments (scikit-learn ``clone`` and ``get_params`` work). ``fit``
holds out ``calibration_fraction`` of the background (seeded): the model trains on the rest (its
validation loss on a further ``validation_fraction`` of it), the score statistics (Mahalanobis mean
and covariance, combination standardisation) are fitted on the training part, and ``threshold_`` is
the (1 − ``bkg_efficiency``) quantile of the *held-out* scores, so the realised background efficiency
is not biased low by events the model was trained on. ``model`` may be a model specification (the
``model`` section of a configuration: trained on ``X``), a trained Keras model or a ``.keras`` path
(used as is: ``fit`` only fits the scores and the threshold).

``X``: an (N, F) feature matrix, (N, S, F) object matrices, or ``{"x": ..., "mask": ...}``.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from .atomic import atomic_path, save_model
from .data import arrays as model_input
from .data.splits import split_indices
from .report.metrics import MIN_BACKGROUND_ABOVE, LowStatisticsWarning, threshold_at
from .scoring import Scorer


class AnomalyDetector(BaseEstimator):
    """Anomaly detector over an autoencoder of :mod:`tfp_anomaly.models` and a scoring method of
    :mod:`tfp_anomaly.scoring`. Fitted attributes: ``model_``, ``scorer_``, ``threshold_``,
    ``decision_scores_`` (held-out background scores), ``history_``."""

    def __init__(self, model=None, score="mse", bkg_efficiency=1e-3, scaler="standard", epochs=20, batch_size=256,
                 learning_rate=1e-3, calibration_fraction=0.2, validation_fraction=0.2, seed=0, verbose=0):
        self.model = model
        self.score = score
        self.bkg_efficiency = bkg_efficiency
        self.scaler = scaler
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.calibration_fraction = calibration_fraction
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Fit on background ``X`` (``y`` is ignored: unsupervised)."""
        n = model_input.n_events(X)
        split = split_indices(n, (1.0 - self.calibration_fraction, self.calibration_fraction, 0.0), self.seed)
        fit_part, calibration = model_input.take(X, split.train), model_input.take(X, split.val)
        self.model_, self.history_ = self._model(fit_part)
        self.scorer_ = Scorer([self.score], batch_size=4096, seed=self.seed).fit(self.model_, fit_part)
        self.decision_scores_ = self.decision_function(calibration)
        self.threshold_ = threshold_at(self.decision_scores_, self.bkg_efficiency)
        above = len(self.decision_scores_) * self.bkg_efficiency
        if above < MIN_BACKGROUND_ABOVE:
            warnings.warn(f"bkg_efficiency={self.bkg_efficiency:g} with {len(self.decision_scores_)} held-out "
                          f"background events puts {above:.1f} above the threshold; threshold_ is uncertain "
                          "(more background or a larger calibration_fraction helps)", LowStatisticsWarning,
                          stacklevel=2)
        return self

    def _model(self, X):
        import keras

        from .models import load_model

        if isinstance(self.model, keras.Model):
            return self.model, None
        if isinstance(self.model, (str, Path)):
            return load_model(self.model), None
        return self._train(dict(self.model or {"type": "vae"}), X)

    def _train(self, spec, X):
        from .data import get_scaler
        from .experiment import build_model
        from .models.training import train

        fractions = (1.0 - self.validation_fraction, self.validation_fraction, 0.0)
        split = split_indices(model_input.n_events(X), fractions, self.seed + 1)
        train_x, val_x = model_input.take(X, split.train), model_input.take(X, split.val)
        scaler = get_scaler(self.scaler).fit(*model_input.split_mask(train_x))
        model = build_model({"model": spec, "training": {"seed": self.seed}}, model_input.event_shape(X),
                            scaler.get_config())
        model, history = train(model, train_x, val_x if len(split.val) else None, epochs=self.epochs,
                               batch_size=self.batch_size, seed=self.seed, learning_rate=self.learning_rate,
                               verbose=self.verbose)
        return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self, attribute="threshold_"):
        if not hasattr(self, attribute):
            raise AttributeError("this AnomalyDetector is not fitted yet: call fit(X_background) first")

    def decision_function(self, X) -> np.ndarray:
        """Anomaly scores, (N,), higher = more anomalous."""
        self._check_fitted("scorer_")  # set before threshold_: fit calls this for the held-out scores
        return next(iter(self.scorer_.score(self.model_, X).values()))

    def predict(self, X) -> np.ndarray:
        """1 where the score exceeds ``threshold_`` (a fraction ≈ ``bkg_efficiency`` of background), else 0."""
        self._check_fitted()
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    # ------------------------------------------------------------------ persistence
    def save(self, directory) -> Path:
        """``directory/model.keras`` and ``directory/detector.json`` (parameters, fitted scorer,
        threshold, held-out scores), each written atomically."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_model(self.model_, directory / "model.keras")
        params = {k: v for k, v in self.get_params().items() if k != "model"}
        state = {"params": params, "scorer": self.scorer_.get_config(), "threshold": self.threshold_,
                 "decision_scores": self.decision_scores_.tolist(), "history": self.history_}
        with atomic_path(directory / "detector.json") as tmp:
            tmp.write_text(json.dumps(state))
        return directory

    @classmethod
    def load(cls, directory) -> "AnomalyDetector":
        from .models import load_model

        directory = Path(directory)
        path = directory / "detector.json"
        if not path.exists():
            raise FileNotFoundError(f"{directory}: no detector.json (not a saved AnomalyDetector)")
        state = json.loads(path.read_text())
        detector = cls(model=str(directory / "model.keras"), **state["params"])
        detector.model_ = load_model(directory / "model.keras")
        detector.scorer_ = Scorer.from_config(state["scorer"])
        detector.threshold_ = float(state["threshold"])
        detector.decision_scores_ = np.asarray(state["decision_scores"])
        detector.history_ = state["history"]
        return detector
