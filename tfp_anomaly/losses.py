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
    ``loss(x, out, mask)`` is per event; ``point(out)`` is the point reconstruction (for MSE scores)."""

    params_per_feature = 1

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


def _gaussian_nll(x, mu, log_sigma):
    return 0.5 * tf.square((x - mu) * tf.exp(-log_sigma)) + log_sigma + 0.5 * _LOG_2PI


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
    """−log p(x | decoder) with one distribution per feature column, as in Cerri et al. 2018
    (arXiv:1811.10276): ``gaussian`` (μ, log σ), ``lognormal`` (for positive quantities such as pT;
    use it on unscaled or log-free columns) and ``bernoulli`` (for 0/1 flags). Summed over features,
    averaged over real slots."""

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
        nll = tf.add_n([FEATURE_LIKELIHOODS[f][1](x[..., i], params[..., i, :]) for i, f in enumerate(self.features)])
        if len(x.shape) == 2:
            return nll
        m = _slot_mask(x, mask)
        return tf.reduce_sum(nll * m, axis=-1) / tf.maximum(tf.reduce_sum(m, axis=-1), 1.0)

    def point(self, out):
        params = self._split(out)
        return tf.stack([FEATURE_MEANS[f](params[..., i, :]) for i, f in enumerate(self.features)], axis=-1)

    def get_config(self):
        return {"name": self.loss_name, "features": self.features}


def gaussian_kl(mu, log_var):
    """KL(N(μ, σ²) ‖ N(0, I)) in closed form, per event: ½ Σ (μ² + σ² − 1 − log σ²)."""
    return 0.5 * tf.reduce_sum(tf.square(mu) + tf.exp(log_var) - 1.0 - log_var, axis=-1)


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
