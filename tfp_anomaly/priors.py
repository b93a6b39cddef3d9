"""Latent priors: a registry of TFP distributions with event shape (dim,).

The SWAE (Kolouri et al. 2018, arXiv:1804.01947) only needs to *sample* its prior; the scores that use
the latent density need ``log_prob``. Every prior here provides both, except the exact sphere (a
measure on a (d−1)-dimensional surface has no density in ℝ^d: its ``log_prob`` raises).

``get_prior(name_or_distribution, dim, **kwargs)``; ``available()`` lists the names. A user may pass
any ``tfd.Distribution`` whose event shape is (dim,), or register a factory of their own in
:data:`PRIORS` (``@PRIORS.register("name")``) and name it.

A user's distribution is saved with the model that uses it: :func:`serialize_distribution` writes its
class and constructor parameters (``Distribution.parameters``, the arguments TFP's own ``copy()``
rebuilds it from: numbers, arrays, nested distributions and bijectors) as JSON, and
:func:`deserialize_distribution` rebuilds it. The classes are TFP's public ``tfd.*`` / ``tfb.*``
classes and those registered in :data:`DISTRIBUTIONS` (a user's own ``tfd.Distribution`` subclass:
``DISTRIBUTIONS.register("name", MyDistribution)``, in the script that saves and in the one that loads).
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .registry import Registry

tfd, tfb = tfp.distributions, tfp.bijectors

#: prior name → factory ``fn(dim, **kwargs) -> tfd.Distribution`` (``@PRIORS.register("name")`` adds one)
PRIORS = Registry("prior")


def available() -> list[str]:
    """Names of the registered priors, sorted."""
    return PRIORS.names()


def get_prior(prior, dim: int, **kwargs) -> tfd.Distribution:
    """A prior by registered name (with its keyword arguments), a user's ``tfd.Distribution``, or one
    serialised by :func:`serialize_distribution` (a mapping with ``class``)."""
    if isinstance(prior, dict):
        prior = deserialize_distribution(prior)
    if isinstance(prior, tfd.Distribution):
        if kwargs:
            raise ValueError("keyword arguments are only for named priors")
        if tuple(prior.event_shape) != (dim,):
            raise ValueError(f"prior event shape {tuple(prior.event_shape)} does not match the latent dim ({dim},)")
        return prior
    return PRIORS.lookup(prior, "model.prior")(int(dim), **kwargs)


def prior_options(name: str) -> set[str]:
    """The keyword arguments (``model.prior_kwargs``) of the registered prior ``name``, less ``dim``."""
    parameters = inspect.signature(PRIORS.lookup(name, "model.prior")).parameters.values()
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"dim"}


def has_log_prob(prior: tfd.Distribution) -> bool:
    """Whether ``prior`` gives a log-density: ``log_prob`` at the origin does not raise
    ``NotImplementedError`` (the exact sphere's does)."""
    try:
        prior.log_prob(tf.zeros((1,) + tuple(prior.event_shape), prior.dtype))
    except NotImplementedError:
        return False
    return True


#: priors whose log-density ranks points (not constant on the support, defined in R^d): the
#: ``latent_logp`` score uses them; uniform and ball are flat inside, the exact sphere has no density
INFORMATIVE_DENSITY = {"gaussian", "ring", "mixture", "laplace", "student_t"}


def has_informative_density(name: str) -> bool:
    """Whether the prior's log-density ranks events (not uniform, ball or exact sphere): ``latent_logp`` needs it."""
    return name in INFORMATIVE_DENSITY


def log_unit_sphere_area(dim: int) -> float:
    """log S_{d−1}, S_{d−1} = 2 π^{d/2} / Γ(d/2): the area of the unit sphere in ℝ^d."""
    return math.log(2.0) + 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim)


class RadialDistribution(tfd.Distribution):
    r"""A spherically symmetric distribution in ℝ^d built from a law of the radius:

        x = r · u,  u ~ Uniform(S^{d−1}) (``tfd.SphericalUniform``),  r ~ p_r independently,

        log p(x) = log p_r(‖x‖) − log S_{d−1} − (d − 1) log ‖x‖,  S_{d−1} = 2 π^{d/2} / Γ(d/2),

    (‖x‖ floored at 1e-15 in the log-density, so the origin gives a finite value). The ``ball``,
    ``sphere`` and ``ring`` priors are instances.

    Args:
        dim: d, the event size: samples have event shape (d,), float32, batch shape ().
        radius: p_r, a scalar TFP distribution on r ≥ 0.
        validate_args: passed to ``tfd.Distribution``.
        name: the distribution's name.
    """

    def __init__(self, dim: int, radius: tfd.Distribution, validate_args=False, name="RadialDistribution"):
        parameters = dict(locals())
        self.dim, self.radius = int(dim), radius
        super().__init__(dtype=tf.float32, reparameterization_type=tfd.FULLY_REPARAMETERIZED,
                         validate_args=validate_args, allow_nan_stats=True, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}

    def _event_shape(self):
        return tf.TensorShape([self.dim])

    def _event_shape_tensor(self):
        return tf.constant([self.dim], tf.int32)

    def _batch_shape(self):
        return tf.TensorShape([])

    def _batch_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _sample_n(self, n, seed=None):
        direction_seed, radius_seed = tfp.random.split_seed(seed, n=2)
        direction = tfd.SphericalUniform(self.dim).sample(n, seed=direction_seed)
        return direction * self.radius.sample(n, seed=radius_seed)[..., None]

    def _log_prob(self, x):
        # the floor keeps log‖x‖ finite at the origin (a single point, of measure zero)
        r = tf.sqrt(tf.maximum(tf.reduce_sum(x * x, axis=-1), 1e-30))
        return self.radius.log_prob(r) - log_unit_sphere_area(self.dim) - (self.dim - 1) * tf.math.log(r)


class _NoDensity(tfd.Deterministic):
    """A point mass at the radius whose log-density raises: the exact sphere has none in ℝ^d."""

    def _log_prob(self, x):
        raise NotImplementedError("the exact sphere has no density in R^d; give it radial_noise > 0 for one")


@PRIORS.register("gaussian")
def gaussian(dim, scale=1.0):
    """N(0, scale² I)."""
    return tfd.MultivariateNormalDiag(loc=tf.zeros(dim), scale_diag=tf.fill([dim], float(scale)))


@PRIORS.register("uniform")
def uniform(dim, low=-1.0, high=1.0):
    """Uniform in the hypercube [low, high]^d."""
    return tfd.Independent(tfd.Uniform(low=tf.fill([dim], float(low)), high=tf.fill([dim], float(high))), 1)


@PRIORS.register("ball")
def ball(dim, radius=1.0):
    """Uniform in the ball of radius R: x = R U^{1/d} u; R U^{1/d} ~ R·Beta(d, 1) (density d r^{d−1}/R^d)."""
    r = tfd.TransformedDistribution(tfd.Beta(float(dim), 1.0), tfb.Scale(float(radius)))
    return RadialDistribution(dim, r, name="ball")


def _shell(dim, radius, radial_noise, name):
    if radial_noise > 0:  # |x| ~ N(R, σ²) truncated to r ≥ 0
        r = tfd.TruncatedNormal(loc=float(radius), scale=float(radial_noise), low=0.0, high=np.inf)
    else:
        r = _NoDensity(loc=float(radius))
    return RadialDistribution(dim, r, name=name)


@PRIORS.register("sphere")
def sphere(dim, radius=1.0, radial_noise=0.0):
    """Uniform direction on S^{d−1} at radius R, plus Gaussian radial noise σ (truncated at 0)."""
    return _shell(dim, radius, radial_noise, "sphere")


@PRIORS.register("ring")
def ring(dim, radius=1.0, radial_noise=0.1):
    """The sphere prior with radial noise on by default (a ring in 2-D, a thick shell above)."""
    return _shell(dim, radius, radial_noise, "ring")


@PRIORS.register("mixture")
def mixture(dim, locs=None, scale=0.5, radius=2.0):
    """Equal-weight Gaussian mixture N(μ_k, scale² I). Default μ_k: ±radius along each axis (2d modes)."""
    if locs is None:
        eye = np.eye(dim, dtype="float32") * float(radius)
        locs = np.concatenate([eye, -eye])
    locs = tf.constant(np.asarray(locs, "float32"))
    if locs.shape[-1] != dim:
        raise ValueError(f"mixture locs have dimension {locs.shape[-1]}, the latent space {dim}")
    k = int(locs.shape[0])
    return tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros(k)),
                                 tfd.MultivariateNormalDiag(loc=locs, scale_diag=tf.fill([k, dim], float(scale))))


@PRIORS.register("laplace")
def laplace(dim, scale=1.0):
    """Independent Laplace(0, scale) per dimension."""
    return tfd.Independent(tfd.Laplace(loc=tf.zeros(dim), scale=tf.fill([dim], float(scale))), 1)


@PRIORS.register("student_t")
def student_t(dim, df=3.0, scale=1.0):
    """Independent Student-t(df, 0, scale) per dimension (heavy tails)."""
    return tfd.Independent(tfd.StudentT(df=float(df), loc=tf.zeros(dim), scale=tf.fill([dim], float(scale))), 1)


# --------------------------------------------------------------------------- saving a user's distribution
#: a user's ``tfd.Distribution`` (or ``tfb.Bijector``) subclass, by the name its saved form uses
#: (TFP's public classes need no entry); ``DISTRIBUTIONS.register("name", cls)`` adds one
DISTRIBUTIONS = Registry("distribution class", listing="registered")
DISTRIBUTIONS.register("tfp_anomaly.RadialDistribution", RadialDistribution)
DISTRIBUTIONS.register("tfp_anomaly.NoDensity", _NoDensity)

_TFP_NAMESPACES = {"tfd": tfd, "tfb": tfb}


def _class_name(cls) -> str:
    for prefix, namespace in _TFP_NAMESPACES.items():
        if getattr(namespace, cls.__name__, None) is cls:
            return f"{prefix}.{cls.__name__}"
    for name, registered in DISTRIBUTIONS.items():
        if registered is cls:
            return name
    raise TypeError(f"cannot save a prior of class {cls.__module__}.{cls.__qualname__}: it is not a public TFP "
                    f"class; register it with tfp_anomaly.priors.DISTRIBUTIONS.register('name', {cls.__name__}) "
                    "(before saving and before loading), or register a factory in PRIORS and name it")


def _class(name: str):
    prefix, _, attribute = name.partition(".")
    if prefix in _TFP_NAMESPACES and name not in DISTRIBUTIONS:
        cls = getattr(_TFP_NAMESPACES[prefix], attribute, None)
        if isinstance(cls, type) and issubclass(cls, (tfd.Distribution, tfb.Bijector)):
            return cls
    return DISTRIBUTIONS.lookup(name, "saved prior", hint="register the class before loading")


def _is_default(value, default) -> bool:
    if value is default:
        return True
    plain = (str, int, float, bool, type(None))
    return isinstance(value, plain) and isinstance(default, plain) and type(value) is type(default) and value == default


def _encode(value, where: str):
    if isinstance(value, (tfd.Distribution, tfb.Bijector)):
        return serialize_distribution(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, tf.DType):
        return {"dtype": value.name}
    if isinstance(value, tf.Variable):
        raise TypeError(f"cannot save a prior whose parameter {where} is a tf.Variable (a trained prior); "
                        "give constant parameters")
    if isinstance(value, (tf.Tensor, np.ndarray, np.generic)):
        array = np.asarray(value)
        return {"array": array.tolist(), "dtype": array.dtype.name}
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{where}[{k}]") for k, v in enumerate(value)]
    raise TypeError(f"cannot save a prior whose parameter {where} is a {type(value).__name__}")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "class" in value:
        return deserialize_distribution(value)
    if "array" in value:
        return tf.constant(np.asarray(value["array"], dtype=value["dtype"]))
    return tf.as_dtype(value["dtype"])


def serialize_distribution(distribution) -> dict:
    """``{"class": name, "parameters": {...}}``, JSON-friendly, of a ``tfd.Distribution`` or
    ``tfb.Bijector`` with constant parameters (those that differ from the constructor's defaults);
    :func:`deserialize_distribution` inverts it. ``TypeError`` naming the class or parameter that
    cannot be saved (an unregistered class, a ``tf.Variable``, a function)."""
    cls = type(distribution)
    name = _class_name(cls)
    defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    parameters = {}
    for key, value in distribution.parameters.items():
        if key in defaults and _is_default(value, defaults[key]):
            continue
        parameters[key] = _encode(value, f"{cls.__name__}.{key}")
    return {"class": name, "parameters": parameters}


def deserialize_distribution(config: dict):
    """The distribution (or bijector) of :func:`serialize_distribution`'s ``config``."""
    if not isinstance(config, dict) or "class" not in config:
        raise ValueError(f"a saved prior is a mapping with 'class' and 'parameters', got {config!r}")
    cls = _class(config["class"])
    return cls(**{k: _decode(v) for k, v in (config.get("parameters") or {}).items()})
