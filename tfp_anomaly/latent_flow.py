"""``latent_flow``: a learned density of the background's latent codes, scored as −log q̂(z).

The training background's encodings z (``terms["latent"]``: f(μ) of a VAE, the posterior mean pushed
through its flow; z of a SWAE) are standardised per dimension, u = (z − m) / s, and a normalising flow
is fitted to u by maximum likelihood (:class:`~tfp_anomaly.flows.FlowDensity`):

    q̂_u(u) = N(g⁻¹(u); 0, I) · |det ∂g⁻¹/∂u|,      g = (LU ∘ MAF)³ by default,

three masked autoregressive steps (MAF, Papamakarios, Pavlakou & Murray 2017, arXiv:1705.07057), each
followed by a learned invertible linear map W = PLU initialised as a random rotation (Glow's invertible
1×1 convolution, Kingma & Dhariwal 2018, arXiv:1807.03039). The rotations matter: an affine autoregressive
flow starts as the identity, and on background whose structure is aligned with the axes (two modes along
z₁, with z₂ independent) every conditional p(u_i | u_<i) it can fit is already independent of u_<i, so
the gradient toward a bimodal density vanishes and it stays Gaussian (measured: gap-vs-mode AUC 0.21,
the same as ``mahalanobis``; with the rotations 0.99). The score of an event is its negative log-density
in the *original* latent units, the standardisation's Jacobian included,

    score(z) = −log q̂(z) = −log q̂_u((z − m) / s) + Σ_i log s_i,

higher = more anomalous. ``mahalanobis`` is the Gaussian special case: for q̂ = N(m, Σ),
−log q̂(z) = ½ d²(z) + ½ log det(2πΣ), a monotone function of the Mahalanobis distance d. The flow also
sees what a Gaussian cannot: several modes, curved or heavy-tailed background, and so flags events
*between* background clusters, where d is small but the density is low (a SWAE with a mixture or ring
prior, a VAE whose aggregate posterior is not N(0, I)). It needs no decoder pass: encoder-only.

Limits:

* It is a density *estimate* of a 1-to-16-dimensional code from at most ``max_events`` background events,
  with a small network and a fixed budget (≤ 30 epochs): good in the bulk (on a 3-D Gaussian within
  0.04–0.08 nats of the true density, mean absolute difference), extrapolated in the tails, which is where
  anomalies sit. Far from the background the flow is close to piecewise affine (ReLU conditioners,
  soft-clamped log-scales), so −log q̂ grows about quadratically there, like a Gaussian's.
* Affine flows model multimodality only approximately; a sharper density (neural spline flows, e.g.
  ``spec="spline_autoregressive, reverse, maf"``) costs 3–4× the fitting time.
* The score depends on the encoder: an event the encoder maps into the background bulk cannot be found
  this way (combine it with a reconstruction term, e.g. ``rank:mse+latent_flow``).
* Fitting trains a network: 7–10 s for 20,000 × 15 on two CPU cores (≤ 20 s if early stopping never
  triggers). It is deterministic for a fixed ``seed`` and data, but it reseeds Keras' and TensorFlow's
  global random state (:func:`keras.utils.set_random_seed`; Python's and NumPy's global states are restored
  afterwards). Weights fitted on different hardware (CPU vs GPU) agree only to round-off.
"""
from __future__ import annotations

import random

import numpy as np

from .scoring import SCORES, ScoringMethod, _check_fitted

#: share of the fitting events held out to stop training early (the best held-out epoch is kept)
VALIDATION_FRACTION = 0.1
#: a standard deviation is floored at this fraction of the largest one (see ``fit``)
STD_FLOOR = 1e-3
#: standardised codes are clamped to ±this before the flow (see ``score``)
U_CLAMP = 1e6
#: events per flow evaluation when scoring
SCORE_BATCH = 65536


@SCORES.register("latent_flow")
class LatentFlow(ScoringMethod):
    """−log q̂(z): negative log-density of the encoding under a flow fitted to the background encodings.

    Arguments: ``spec`` (a :class:`~tfp_anomaly.flows.FlowChain` spec) and ``hidden_units`` (of every
    step's conditioner) define the flow; ``epochs``, ``batch_size``, ``learning_rate`` (Adam) and
    ``patience`` (early stopping on a held-out 10 %) the fit; at most ``max_events`` background events,
    drawn with ``seed``, are used for it. ``mean``, ``std`` and ``weights`` are the fitted state (as
    :meth:`get_config` writes them).
    """

    requires = ("latent",)
    # the code is the encoder's output (a VAE's f(μ) uses the encoder and its flow only): no decoder pass
    encoder_only = True

    def __init__(self, spec="maf, lu, maf, lu, maf, lu", hidden_units=(32, 32), epochs=30, max_events=20000,
                 batch_size=512, learning_rate=3e-3, patience=5, seed=0, mean=None, std=None, weights=None):
        self.spec = spec
        self.hidden_units = [int(u) for u in hidden_units]
        self.epochs, self.max_events, self.batch_size = int(epochs), int(max_events), int(batch_size)
        self.learning_rate, self.patience, self.seed = float(learning_rate), int(patience), int(seed)
        if min(self.epochs, self.max_events, self.batch_size) < 1:
            raise ValueError("latent_flow: epochs, max_events and batch_size must be positive")
        self.mean = None if mean is None else np.asarray(mean, np.float64)
        self.std = None if std is None else np.asarray(std, np.float64)
        self.weights = weights
        self._model = None

    # ------------------------------------------------------------------ the flow

    def _new_model(self, dim: int):
        from .flows import FlowDensity

        model = FlowDensity(self.spec, step_kwargs={"hidden_units": self.hidden_units})
        model.build((None, dim))
        return model

    def _flow(self):
        if self._model is None:  # rebuilt from the config: same shapes, then the stored weights
            model = self._new_model(len(self.mean))
            model.set_weights([np.asarray(w, v.dtype) for w, v in zip(self.weights, model.weights)])
            self._model = model
        return self._model

    # ------------------------------------------------------------------ fit / score

    def fit(self, terms):
        import keras

        z = _latent(terms)
        if len(z) < 2:
            raise ValueError(f"latent_flow needs at least 2 background events to fit, got {len(z)}")
        self.mean = z.mean(axis=0)
        std = z.std(axis=0)
        # A latent direction the encoder has collapsed (an inactive VAE unit, a constant f(μ)_i) has std ≈ 0:
        # u = (z − m)/s would divide by zero and Σ log s → −∞. The floor, relative to the widest direction so
        # the score does not depend on the overall latent scale, treats it as a narrow but finite direction.
        self.std = np.maximum(std, max(STD_FLOOR * float(std.max()), 1e-12))
        u = ((z - self.mean) / self.std).astype(np.float32)

        rng = np.random.default_rng(self.seed)
        if len(u) > self.max_events:
            u = u[np.sort(rng.choice(len(u), self.max_events, replace=False))]
        u = u[rng.permutation(len(u))]
        n_val = int(round(VALIDATION_FRACTION * len(u))) if len(u) >= 20 else 0
        train, val = u[n_val:], u[:n_val]

        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            keras.utils.set_random_seed(self.seed)  # weight initialisation and batch shuffling
            model = self._new_model(u.shape[1])
            # XLA off: docs/design.md keeps jit_compile opt-in, and it would make CPU and GPU fits differ further
            model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), jit_compile=False)
            # the optimizer's slots made now, not inside the first step (which would trace it twice: ~2 s)
            model.optimizer.build(model.trainable_variables)
            callbacks = [] if n_val == 0 else [keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=self.patience, restore_best_weights=True)]
            model.fit(train, validation_data=(val,) if n_val else None, epochs=self.epochs,
                      batch_size=self.batch_size, shuffle=True, callbacks=callbacks, verbose=0)
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
        self._model = model
        self.weights = [w.tolist() for w in model.get_weights()]
        return self

    def score(self, terms):
        _check_fitted(self, self.weights)
        z = _latent(terms)
        if z.shape[1] != len(self.mean):
            raise ValueError(f"latent_flow was fitted on {len(self.mean)}-dimensional codes, got {z.shape[1]}")
        # The flow runs in float32 (max 3.4e38): the base density squares g⁻¹(u), so an encoding far outside the
        # background (|u| ≳ 1e19, less after the flow's rescalings) would score inf. Clamped at |u| = 1e6 such
        # events keep a finite score that saturates there (~1e12 nats, far above any background event). NaN encodings stay NaN: the Scorer reports them with their row.
        u = np.clip((z - self.mean) / self.std, -U_CLAMP, U_CLAMP).astype(np.float32)
        if len(u) == 0:
            return np.zeros(0)
        model = self._flow()
        log_q = np.concatenate([np.asarray(model(u[i:i + SCORE_BATCH], training=False), np.float64)
                                for i in range(0, len(u), SCORE_BATCH)])
        return -(log_q - np.sum(np.log(self.std)))

    def get_config(self):
        return {"name": self.name, "spec": self.spec, "hidden_units": self.hidden_units, "epochs": self.epochs,
                "max_events": self.max_events, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                "patience": self.patience, "seed": self.seed,
                "mean": None if self.mean is None else self.mean.tolist(),
                "std": None if self.std is None else self.std.tolist(),
                "weights": self.weights}


def _latent(terms) -> np.ndarray:
    z = np.asarray(terms["latent"], np.float64)
    return z.reshape(len(z), -1)
