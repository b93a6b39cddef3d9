"""Losses of the autoencoders: reconstruction terms (a registry), KL terms, sliced Wasserstein distance.

Shapes: inputs ``x`` are (batch, slots, features) object matrices (or (batch, features) vectors) with a
``mask`` (batch, slots) of real slots; every loss returns one value per event, shape (batch,).

:data:`RECONSTRUCTIONS` maps the names of ``model.reconstruction`` to the loss classes; a user adds
one with ``@RECONSTRUCTIONS.register("name")`` on a :class:`Reconstruction` subclass.
:data:`FEATURE_LIKELIHOODS` maps the per-feature distributions of the ``likelihood`` loss to their
:class:`FeatureDistribution`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import tensorflow as tf

from . import seeds
from .registry import Registry


#: ``model.reconstruction`` name → :class:`Reconstruction` subclass (its ``loss_name`` set on registration)
RECONSTRUCTIONS = Registry("reconstruction loss", name_attribute="loss_name")


def get_reconstruction(spec) -> "Reconstruction":
    """The reconstruction term of ``spec``: a name of :data:`RECONSTRUCTIONS` (``"mse"``, ``"chamfer"``,
    ``"gaussian"``) or a mapping ``{"name": ..., **arguments}`` (``{"name": "likelihood", "features":
    ["lognormal", "gaussian", ...]}``). An unknown name raises :class:`tfp_anomaly.registry.UnknownNameError`."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    cls = RECONSTRUCTIONS.lookup(spec.pop("name", None), "model.reconstruction")
    return cls(**spec)


def _slot_mask(x, mask):
    """(batch, slots) float mask; all ones when there is none or x is a plain vector."""
    if mask is None or len(x.shape) == 2:
        return tf.ones(tf.shape(x)[:2] if len(x.shape) == 3 else tf.shape(x)[:1], x.dtype)
    return tf.cast(mask, x.dtype)


class Reconstruction:
    r"""Base class of the reconstruction terms: a loss ℓ(x, out) per event between the input x and
    the decoder's output.

    The decoder emits ``params_per_feature`` = k numbers per input feature: ``out`` has the shape of x
    with its last axis F·k (the k numbers of a feature adjacent). :meth:`loss` returns ℓ per event;
    :meth:`point` the point reconstruction x̂ (for the MSE-type scores). A subclass registered with
    ``@RECONSTRUCTIONS.register("name")`` is selected by ``model.reconstruction: name``.

    Shapes:
        x: (batch, slots, F) object matrix or (batch, F) vector; out: the same with F·k last;
        mask: (batch, slots), True on real slots (or None); ``loss`` returns (batch,).

    Attributes:
        params_per_feature: k, the numbers the decoder emits per feature (1 by default).
        is_likelihood: the loss is −log p(x | z) in nats summed over the real features, so it adds to
            a KL into a true ELBO and enters the importance-weighted bound.
        loss_name: the registered name (set by :data:`RECONSTRUCTIONS`).
    """

    params_per_feature = 1
    is_likelihood = False

    def create_weights(self, model, n_features: int) -> None:
        """Add this term's weights (a learned scale) to ``model``, whose inputs have ``n_features``
        feature columns (none by default)."""

    @property
    def variables(self) -> list:
        """The weights this term added to its model (a flow-only training stage freezes them)."""
        return []

    def loss(self, x, out, mask=None):
        """ℓ per event, (batch,), of input ``x`` and decoder output ``out``; ``mask`` (batch, slots)
        marks the real slots."""
        raise NotImplementedError

    def point(self, out):
        """The point reconstruction x̂ of the decoder output (the output itself by default)."""
        return out

    def get_config(self):
        return {"name": self.loss_name}


@RECONSTRUCTIONS.register("mse")
class MaskedMSE(Reconstruction):
    r"""Masked mean squared error, the reconstruction loss of DarkFlow's ConvVAE and the SWAE's default.

    For an object matrix with real-slot mask m_s over S slots and F features,

        ℓ(x, x̂) = Σ_s m_s (1/F) Σ_f (x_sf − x̂_sf)² / max(1, Σ_s m_s),

    so padded slots do not count (an event with no real slot gives 0); for a vector
    ℓ = (1/F) Σ_f (x_f − x̂_f)². The decoder emits one number per feature (x̂ = out). Not a likelihood:
    its scale against the KL is set by β.

    Shapes:
        x, out: (batch, slots, F) or (batch, F); mask: (batch, slots) or None (every slot real);
        loss: (batch,).
    """

    def loss(self, x, out, mask=None):
        squared = tf.square(x - out)
        if len(x.shape) == 2:
            return tf.reduce_mean(squared, axis=-1)
        m = _slot_mask(x, mask)
        per_slot = tf.reduce_mean(squared, axis=-1) * m
        return tf.reduce_sum(per_slot, axis=-1) / tf.maximum(tf.reduce_sum(m, axis=-1), 1.0)


def chamfer_distance(a, b):
    """Symmetric Chamfer distance between point sets a (batch, n, f) and b (batch, m, f), per event:
    mean_i min_j ‖a_i − b_j‖² + mean_j min_i ‖a_i − b_j‖². Whole rows are points, so features of
    one object are only ever compared with features of one other object."""
    d = tf.reduce_sum(tf.square(a[:, :, None, :] - b[:, None, :, :]), axis=-1)
    return tf.reduce_mean(tf.reduce_min(d, axis=2), axis=1) + tf.reduce_mean(tf.reduce_min(d, axis=1), axis=1)


@RECONSTRUCTIONS.register("chamfer")
class Chamfer(Reconstruction):
    r"""Chamfer distance between the object rows of the input and of the reconstruction, as point sets:

        ℓ(x, x̂) = (1/S) Σ_i min_j ‖x_i − x̂_j‖² + (1/S) Σ_j min_i ‖x_i − x̂_j‖²,

    i, j over all S slots (:func:`chamfer_distance`). The mask is not used: padded slots are the zero
    rows of the representation, so an event's object count is part of what is reconstructed. Invariant
    under permutations of the rows of either set; the decoder emits one number per feature.

    Shapes:
        x, out: (batch, slots, F) (a flat vector input is an error); loss: (batch,).

    References:
        Fan, Su & Guibas 2017, "A Point Set Generation Network for 3D Object Reconstruction from a
        Single Image", arXiv:1612.00603.
    """

    def loss(self, x, out, mask=None):
        if len(x.shape) != 3:
            raise ValueError("the Chamfer loss needs (batch, objects, features) inputs")
        return chamfer_distance(x, out)


_LOG_2PI = math.log(2.0 * math.pi)

#: log σ of a Gaussian reconstruction is clamped to this range: σ ≥ 1e-3 of a scaled feature keeps
#: (x − μ)²/σ² finite in float32 and stops a near-perfectly reconstructed feature dominating the loss
LOG_SCALE_RANGE = (-7.0, 7.0)


def _gaussian_nll(x, mu, log_sigma):
    return 0.5 * tf.square((x - mu) * tf.exp(-log_sigma)) + log_sigma + 0.5 * _LOG_2PI


def _sum_real(nll, x, mask):
    """Σ over features (and over the real slots of an object matrix) of per-feature NLLs."""
    if len(x.shape) == 2:
        return tf.reduce_sum(nll, axis=-1)
    return tf.reduce_sum(tf.reduce_sum(nll, axis=-1) * _slot_mask(x, mask), axis=-1)


@RECONSTRUCTIONS.register("gaussian")
class GaussianLikelihood(Reconstruction):
    r"""Gaussian negative log-likelihood around the decoder's output, summed over the real features:

        ℓ(x, x̂) = −log p(x | z) = Σ_{real slots s} Σ_f [ (x_sf − x̂_sf)² / (2σ_f²) + log σ_f + ½ log 2π ],

    in nats like the KL, so reconstruction + KL is the negative ELBO. log σ_f is clamped to
    :data:`LOG_SCALE_RANGE`. With ``scale="learned"`` (default) σ_f is one weight per feature column,
    trained with the rest (homoscedastic; the "calibrated decoder" of Rybkin et al.): a learned σ sets
    the weight of the reconstruction against the KL from the data instead of a hand-tuned β, which is
    what keeps the posterior from collapsing onto the prior. A number fixes σ_f = scale for every
    feature (σ = 1/√2 makes ℓ the summed squared error plus a constant).

    Args:
        scale: ``"learned"``, or a positive number: the fixed σ of every feature.

    Shapes:
        x, out: (batch, slots, F) or (batch, F) (x̂ = out); mask: (batch, slots) or None;
        the learned log σ: (F,), the model weight ``reconstruction_log_scale``; loss: (batch,).

    References:
        Rybkin, Daniilidis & Levine 2021, "Simple and Effective VAE Training with Calibrated Decoders",
        arXiv:2006.13202.
    """

    is_likelihood = True

    def __init__(self, scale="learned"):
        if scale != "learned" and not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"gaussian reconstruction: scale must be 'learned' or a positive number, got {scale!r}")
        self.scale = scale
        self.log_scale = None

    def create_weights(self, model, n_features):
        if self.scale == "learned":
            self.log_scale = model.add_weight(shape=(n_features,), initializer="zeros", name="reconstruction_log_scale")

    @property
    def variables(self):
        return [] if self.log_scale is None else [self.log_scale]

    def _log_sigma(self, x):
        if self.log_scale is None:
            return tf.fill(tf.shape(x)[-1:], tf.constant(math.log(float(self.scale)), x.dtype))
        return tf.clip_by_value(tf.cast(self.log_scale, x.dtype), *LOG_SCALE_RANGE)

    def loss(self, x, out, mask=None):
        return _sum_real(_gaussian_nll(x, out, self._log_sigma(x)), x, mask)

    def get_config(self):
        return {"name": self.loss_name, "scale": self.scale}


@dataclasses.dataclass(frozen=True)
class FeatureDistribution:
    """One per-feature distribution of the ``likelihood`` reconstruction (:class:`FeatureLikelihood`).

    Args:
        params: how many parameters θ it reads (the first ``params`` of the decoder's k per feature).
        nll: ``nll(x, theta)`` → −log p(x | θ): x (...), θ (..., k) → (...).
        mean: ``mean(theta)`` → E[x | θ], (..., k) → (...): the point reconstruction.
    """

    params: int
    nll: Callable
    mean: Callable


#: per-feature distribution name → :class:`FeatureDistribution` (``{"name": "likelihood", "features": [...]}``)
FEATURE_LIKELIHOODS = Registry("feature likelihood")


def _log_sigma(theta):
    return tf.clip_by_value(theta[..., 1], *LOG_SCALE_RANGE)


def _log_positive(x):
    return tf.math.log(tf.maximum(x, 1e-6))  # x > 0 is the lognormal's support; floored at 1e-6


# θ = (μ, log σ): −log N(x; μ, σ²), log σ clamped to LOG_SCALE_RANGE so exp never over/underflows float32
FEATURE_LIKELIHOODS.register("gaussian", FeatureDistribution(
    2, nll=lambda x, theta: _gaussian_nll(x, theta[..., 0], _log_sigma(theta)), mean=lambda theta: theta[..., 0]))
# θ = (μ, log σ) of log x ~ N(μ, σ²): −log p(x) = −log N(log x; μ, σ²) + log x; E[x] = exp(μ + σ²/2)
FEATURE_LIKELIHOODS.register("lognormal", FeatureDistribution(
    2, nll=lambda x, theta: _gaussian_nll(_log_positive(x), theta[..., 0], _log_sigma(theta)) + _log_positive(x),
    mean=lambda theta: tf.exp(theta[..., 0] + 0.5 * tf.exp(2.0 * _log_sigma(theta)))))
# θ = logit; x in {0, 1}: the sigmoid cross-entropy; E[x] = sigmoid(logit)
FEATURE_LIKELIHOODS.register("bernoulli", FeatureDistribution(
    1, nll=lambda x, theta: tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=theta[..., 0]),
    mean=lambda theta: tf.sigmoid(theta[..., 0])))


@RECONSTRUCTIONS.register("likelihood")
class FeatureLikelihood(Reconstruction):
    r"""−log p(x | z) with one distribution per feature column whose parameters θ the decoder emits for
    every event and slot, as in Cerri et al.:

        ℓ(x, out) = Σ_{real slots s} Σ_f −log p_f(x_sf | θ_sf),

    a negative log-likelihood in nats. p_f is a name of :data:`FEATURE_LIKELIHOODS`: ``gaussian``
    (θ = μ, log σ), ``lognormal`` (θ = μ, log σ of log x; for positive quantities such as pT, on
    unscaled or log-free columns) or ``bernoulli`` (θ = logit; for 0/1 flags). The decoder emits
    k = max_f params_f numbers per feature; a distribution with fewer parameters reads the first of
    them. The point reconstruction is each distribution's mean.

    Args:
        features: one distribution name per feature column, in column order (length F).

    Shapes:
        x: (batch, slots, F) or (batch, F); out: the same with F·k last; mask: (batch, slots) or None;
        loss: (batch,); point: the shape of x.

    References:
        Cerri, Nguyen, Pierini, Spiropulu & Vlimant 2019, "Variational Autoencoders for New Physics
        Mining at the Large Hadron Collider", arXiv:1811.10276.
    """

    is_likelihood = True

    def __init__(self, features=("gaussian",)):
        self.features = list(features)
        self.distributions = [FEATURE_LIKELIHOODS.lookup(f, "model.reconstruction.features") for f in self.features]
        self.params_per_feature = max(d.params for d in self.distributions)

    def _split(self, out):
        k = self.params_per_feature
        return tf.reshape(out, tf.concat([tf.shape(out)[:-1], [len(self.features), k]], axis=0))

    def loss(self, x, out, mask=None):
        params = self._split(out)
        nll = tf.stack([d.nll(x[..., i], params[..., i, :]) for i, d in enumerate(self.distributions)], axis=-1)
        return _sum_real(nll, x, mask)

    def point(self, out):
        params = self._split(out)
        return tf.stack([d.mean(params[..., i, :]) for i, d in enumerate(self.distributions)], axis=-1)

    def get_config(self):
        return {"name": self.loss_name, "features": self.features}


def gaussian_kl_per_dim(mu, log_var):
    """KL(N(μ_i, σ_i²) ‖ N(0, 1)) of each latent dimension, (batch, d): ½ (μ² + σ² − 1 − log σ²)."""
    return 0.5 * (tf.square(mu) + tf.exp(log_var) - 1.0 - log_var)


def gaussian_kl(mu, log_var):
    """KL(N(μ, σ²) ‖ N(0, I)) in closed form, per event: ½ Σ (μ² + σ² − 1 − log σ²)."""
    return tf.reduce_sum(gaussian_kl_per_dim(mu, log_var), axis=-1)


def log_mean_exp(log_w, axis=-1):
    """log (1/K) Σ_k exp(log w_k) along ``axis``, computed stably (logsumexp − log K)."""
    k = tf.cast(tf.shape(log_w)[axis], log_w.dtype)
    return tf.reduce_logsumexp(log_w, axis=axis) - tf.math.log(k)


def flow_kl(log_q0, sum_log_det, log_p_zk):
    """Single-sample estimate of KL(q_K ‖ p) for z_K = f(z_0), z_0 ~ q_0 (Rezende & Mohamed 2015, eq. 15):
    log q_0(z_0) − Σ_k log|det ∂f_k/∂z_{k−1}| − log p(z_K)."""
    return log_q0 - sum_log_det - log_p_zk


def diagonal_gaussian_log_prob(z, mu, log_var):
    """log N(z; μ, diag exp(log_var)) summed over the last axis."""
    return -0.5 * tf.reduce_sum(_LOG_2PI + log_var + tf.square(z - mu) * tf.exp(-log_var), axis=-1)


def random_directions(num_projections: int, dim: int, seed) -> tf.Tensor:
    """``num_projections`` unit vectors uniform on S^{dim−1} (normalised Gaussians), (dim, L); ``seed``
    is a stateless seed (shape (2,))."""
    theta = seeds.normal((dim, num_projections), seed)
    return theta / tf.norm(theta, axis=0, keepdims=True)


def weighted_mean(values, weights=None):
    """The batch mean of per-event values, or with per-event weights w (batch,) the weighted mean

        Σ_i w_i v_i / Σ_i w_i    (over axis 0; ``values`` (batch,) or (batch, ...)),

    the self-normalised estimate of the weighted expectation: its scale does not depend on the
    weights' normalisation (cross-section × luminosity or per-mille fractions give the same loss), and
    integer weights give the mean over the batch with each row repeated w_i times. ``weights`` None is
    ``tf.reduce_mean(values, axis=0)`` itself; a batch whose weights are all 0 gives 0 (it moves nothing)."""
    if weights is None:
        return tf.reduce_mean(values, axis=0)
    w = tf.cast(weights, values.dtype)
    w = tf.reshape(w, tf.concat([tf.shape(w), tf.ones([tf.rank(values) - 1], tf.int32)], axis=0))
    return tf.math.divide_no_nan(tf.reduce_sum(w * values, axis=0), tf.reduce_sum(w))


def sliced_wasserstein(x, y, directions, p: float = 2.0, weights=None) -> tf.Tensor:
    """Sliced p-Wasserstein distance between equal-size samples x, y (n, d) along ``directions`` (d, L)
    (Kolouri et al. 2018, arXiv:1804.01947; Bonneel et al. 2015):

        SW_p = ( 1/L Σ_l W_p^p(θ_lᵀx, θ_lᵀy) )^{1/p},  W_p^p in 1-D = mean_i |sort(θᵀx)_i − sort(θᵀy)_i|^p.

    Returns SW_p (not its p-th power), the convention of POT's ``ot.sliced_wasserstein_distance``.
    With per-event ``weights`` of x it is :func:`weighted_sliced_wasserstein_power` to the power 1/p.
    """
    if weights is not None:
        return weighted_sliced_wasserstein_power(x, y, directions, weights, p) ** (1.0 / p)
    px = tf.sort(tf.matmul(x, directions), axis=0)
    py = tf.sort(tf.matmul(y, directions), axis=0)
    per_direction = tf.reduce_mean(tf.abs(px - py) ** p, axis=0)
    return tf.reduce_mean(per_direction) ** (1.0 / p)


def weighted_sliced_wasserstein_power(x, y, directions, weights, p: float = 2.0) -> tf.Tensor:
    """SW_p^p between the weighted empirical measure of x (n, d) and the sample y (m, d, any size m)
    along ``directions`` (d, L): the p-th power, as a loss wants it (no root, whose gradient is
    infinite at 0).

    x with per-event weights w (n,) ≥ 0 is the measure Σ_i w_i δ_{x_i} / W, W = Σ_i w_i. Along each
    direction θ the projections a_(1) ≤ … ≤ a_(n) are sorted with their weights, each is given its
    mid-point CDF level u_i = (Σ_{j≤i} w_(j) − w_(i)/2) / W and matched to the empirical quantile of
    the projected y at that level, Q_y(u) = sort(θᵀy)_{⌊m u⌋} (0-based):

        SW_p^p ≈ 1/L Σ_l Σ_i (w_(i) / W) |a_(i) − Q_y(u_i)|^p.

    With equal weights and m = n, u_i = (i − ½)/n picks the i-th smallest θᵀy: the unweighted
    :func:`sliced_wasserstein` to the power p. With integer weights it approximates repeating row i
    w_i times (against the same y): the w_i copies, which the exact transport sends to the w_i
    consecutive quantiles of their CDF step, all go to the middle one, so the two differ by at most
    the spread of y's quantiles within a step (tests/test_weights.py bounds it), which vanishes as m
    grows at fixed weights; all weights 1 is the exact case. Zero-weight rows take no part; a batch
    whose weights are all 0 gives 0 with zero gradients.
    """
    w = tf.reshape(tf.cast(weights, x.dtype), [-1])
    px = tf.transpose(tf.matmul(x, directions))  # (L, n)
    py = tf.sort(tf.transpose(tf.matmul(y, directions)), axis=-1)  # (L, m)
    order = tf.argsort(px, axis=-1, stable=True)
    px, w_sorted = tf.gather(px, order, batch_dims=1), tf.gather(w, order)
    total = tf.reduce_sum(w)
    level = tf.math.divide_no_nan(tf.cumsum(w_sorted, axis=-1) - 0.5 * w_sorted, total)
    m = tf.shape(py)[-1]
    index = tf.clip_by_value(tf.cast(tf.floor(level * tf.cast(m, level.dtype)), tf.int32), 0, m - 1)
    quantile = tf.gather(py, index, batch_dims=1)
    per_direction = tf.math.divide_no_nan(tf.reduce_sum(w_sorted * tf.abs(px - quantile) ** p, axis=-1), total)
    return tf.reduce_mean(per_direction)
