"""Losses of the autoencoders: reconstruction terms (a registry), KL terms, sliced Wasserstein distance.

Shapes: inputs ``x`` are (batch, slots, features) object matrices (or (batch, features) vectors) with a
``mask`` (batch, slots) of real slots; every loss returns one value per event, shape (batch,).
"""
from __future__ import annotations

import math

import tensorflow as tf

RECONSTRUCTIONS: dict[str, type] = {}


def register(name):
    """Decorator: register a reconstruction loss class under ``name`` (``model.reconstruction``)."""
    def wrap(cls):
        cls.loss_name = name
        RECONSTRUCTIONS[name] = cls
        return cls
    return wrap


def get_reconstruction(spec) -> "Reconstruction":
    """``"mse"``, ``"chamfer"``, ``{"name": "likelihood", "features": ["lognormal", "gaussian", ...]}``."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name not in RECONSTRUCTIONS:
        raise KeyError(f"unknown reconstruction loss {name!r}; available: {', '.join(sorted(RECONSTRUCTIONS))}")
    return RECONSTRUCTIONS[name](**spec)


def _slot_mask(x, mask):
    """(batch, slots) float mask; all ones when there is none or x is a plain vector."""
    if mask is None or len(x.shape) == 2:
        return tf.ones(tf.shape(x)[:2] if len(x.shape) == 3 else tf.shape(x)[:1], x.dtype)
    return tf.cast(mask, x.dtype)


class Reconstruction:
    """A reconstruction term: the decoder emits ``params_per_feature`` numbers per input feature;
    ``loss(x, out, mask)`` is per event; ``point(out)`` is the point reconstruction (for MSE scores).
    ``is_likelihood``: the loss is −log p(x|z) (in nats, summed over the real features), so it adds to a
    KL into a true ELBO and enters the importance-weighted bound; ``create_weights(model, n_features)``
    lets a term own Keras weights of the model (a learned scale)."""

    params_per_feature = 1
    is_likelihood = False

    def create_weights(self, model, n_features: int) -> None:
        """Add this term's weights to ``model`` (none by default)."""

    @property
    def variables(self) -> list:
        """The weights this term added to its model (a flow-only training stage freezes them)."""
        return []

    def point(self, out):
        return out

    def get_config(self):
        return {"name": self.loss_name}


@register("mse")
class MaskedMSE(Reconstruction):
    """Mean over real slots and features of (x − x̂)²; padded slots do not count."""

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


@register("chamfer")
class Chamfer(Reconstruction):
    """Chamfer distance between the object rows of input and reconstruction (padded slots are the
    zero rows of the representation, so an event's object count is part of what is reconstructed);
    invariant under permutations of the rows of either set."""

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


@register("gaussian")
class GaussianLikelihood(Reconstruction):
    """−log p(x | z) = Σ_{real slots, features f} [ (x_f − x̂_f)² / (2σ_f²) + log σ_f + ½ log 2π ]:
    a Gaussian per feature around the decoder's output, *summed* over the real (unmasked) features,
    so it is in nats like the KL and reconstruction + KL is the negative ELBO.

    ``scale="learned"`` (default): one σ_f per feature column, a model weight trained with the rest
    (homoscedastic; the "calibrated decoder" of Rybkin, Daniilidis & Levine 2021, arXiv:2006.13202).
    A learned σ sets the weight of the reconstruction against the KL from the data instead of a hand
    tuned β, which is what keeps the posterior from collapsing onto the prior. A number fixes σ for
    every feature (σ = 1/√2 makes the loss the summed squared error plus a constant)."""

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


# Per-feature negative log-likelihoods: (x, params (..., k)) -> (...). Clamps noted where needed.
FEATURE_LIKELIHOODS = {
    # params: μ, log σ (log σ clamped to [−7, 7] so exp never over/underflows float32)
    "gaussian": (2, lambda x, p: _gaussian_nll(x, p[..., 0], tf.clip_by_value(p[..., 1], -7.0, 7.0))),
    # log x ~ N(μ, σ²): −log p(x) = NLL_N(log x) + log x; x floored at 1e-6 (x > 0 is the model's support)
    "lognormal": (2, lambda x, p: _gaussian_nll(tf.math.log(tf.maximum(x, 1e-6)), p[..., 0],
                                                tf.clip_by_value(p[..., 1], -7.0, 7.0))
                  + tf.math.log(tf.maximum(x, 1e-6))),
    # params: logit; x in {0, 1}
    "bernoulli": (1, lambda x, p: tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=p[..., 0])),
}
FEATURE_MEANS = {
    "gaussian": lambda p: p[..., 0],
    "lognormal": lambda p: tf.exp(p[..., 0] + 0.5 * tf.exp(2.0 * tf.clip_by_value(p[..., 1], -7.0, 7.0))),
    "bernoulli": lambda p: tf.sigmoid(p[..., 0]),
}


@register("likelihood")
class FeatureLikelihood(Reconstruction):
    """−log p(x | decoder) with one distribution per feature column whose parameters the decoder emits
    for every event, as in Cerri et al. 2019 (arXiv:1811.10276): ``gaussian`` (μ, log σ), ``lognormal``
    (for positive quantities such as pT; use it on unscaled or log-free columns) and ``bernoulli`` (for
    0/1 flags). Summed over the features of the real slots: a negative log-likelihood in nats."""

    is_likelihood = True

    def __init__(self, features=("gaussian",)):
        self.features = list(features)
        unknown = [f for f in self.features if f not in FEATURE_LIKELIHOODS]
        if unknown:
            raise KeyError(f"unknown feature likelihood {unknown[0]!r}; available: {', '.join(FEATURE_LIKELIHOODS)}")
        self.params_per_feature = max(FEATURE_LIKELIHOODS[f][0] for f in self.features)

    def _split(self, out):
        k = self.params_per_feature
        return tf.reshape(out, tf.concat([tf.shape(out)[:-1], [len(self.features), k]], axis=0))

    def loss(self, x, out, mask=None):
        params = self._split(out)
        nll = tf.stack([FEATURE_LIKELIHOODS[f][1](x[..., i], params[..., i, :]) for i, f in enumerate(self.features)],
                       axis=-1)
        return _sum_real(nll, x, mask)

    def point(self, out):
        params = self._split(out)
        return tf.stack([FEATURE_MEANS[f](params[..., i, :]) for i, f in enumerate(self.features)], axis=-1)

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
    theta = tf.random.stateless_normal((dim, num_projections), seed)
    return theta / tf.norm(theta, axis=0, keepdims=True)


def sliced_wasserstein(x, y, directions, p: float = 2.0) -> tf.Tensor:
    """Sliced p-Wasserstein distance between equal-size samples x, y (n, d) along ``directions`` (d, L)
    (Kolouri et al. 2018, arXiv:1804.01947; Bonneel et al. 2015):

        SW_p = ( 1/L Σ_l W_p^p(θ_lᵀx, θ_lᵀy) )^{1/p},  W_p^p in 1-D = mean_i |sort(θᵀx)_i − sort(θᵀy)_i|^p.

    Returns SW_p (not its p-th power), the convention of POT's ``ot.sliced_wasserstein_distance``.
    """
    px = tf.sort(tf.matmul(x, directions), axis=0)
    py = tf.sort(tf.matmul(y, directions), axis=0)
    per_direction = tf.reduce_mean(tf.abs(px - py) ** p, axis=0)
    return tf.reduce_mean(per_direction) ** (1.0 / p)
