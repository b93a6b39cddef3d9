"""Anomaly scores of events under a trained autoencoder: a registry of methods, higher = more anomalous.

A model's :meth:`score_terms` gives per-event quantities (reconstruction losses, KL, encodings, latent
log-density); :func:`compute_terms` runs it over a data set in batches with a progress bar. Each
scoring method turns those quantities into one score per event. Methods that need statistics of the
background (Mahalanobis, radial, combinations) are fitted on the *training* background's terms.

=================  =====================================================================================
``mse``            masked mean squared error of the point reconstruction (scaled features)
``reconstruction`` the model's own reconstruction loss: −log p(x|z) for a likelihood reconstruction
``chamfer``        Chamfer distance between input and reconstructed object rows (object matrices only)
``input_norm``     mean square of the scaled input (with the Gauss-rank scaler: a marginal-outlier χ²)
``total_loss``     the VAE's per-event loss, reconstruction + β·KL (the negative ELBO for β = 1)
``kl``             KL(q(z|x) ‖ p(z)): closed form, or the single-sample flow estimate (VAE)
``rz``             Σ_i μ_i²/σ_i², the encoder-only score of the SWAE/VAE trigger studies (VAE)
``latent_norm``    ‖e(x)‖ of the encoding (μ for the VAE, z for the SWAE)
``mahalanobis``    √((e − m)ᵀ Σ⁻¹ (e − m)), m and Σ from the training-background encodings with
                   Ledoit-Wolf shrinkage (Ledoit & Wolf 2004)
``radial``         | ‖z‖ − r₀ |, r₀ the median background radius (SWAE with a sphere or ring prior)
``latent_logp``    −log p(z) under the prior (VAE: N(0, I) at z = f(μ); SWAE: priors with a density)
``latent_flow``    −log q̂(z), q̂ a normalising flow fitted on the training background's encodings
                   (:mod:`tfp_anomaly.latent_flow`)
``iwae``           −log p̂(x), the importance-weighted bound with K posterior samples (VAE; Burda et al. 2016)
``elbo``           −ELBO estimated from the same K samples (VAE)
``a+b``            combination: each term standardised on background (z-score), weighted sum;
                   ``2*mse+mahalanobis`` weights; ``rank:mse+mahalanobis`` uses the background
                   quantile of each term instead of its z-score
=================  =====================================================================================

An :class:`tfp_anomaly.models.Ensemble` of K members is scored member by member: every method is fitted
on each member's training-background terms and the members are combined by averaging their
background-calibrated ranks (:class:`MemberRanks`); the method keeps its name.

The encoder-only scores (``kl`` without a flow, ``rz``, ``latent_norm``, ``mahalanobis``) need no decoder
pass: the ones a Level-1 trigger can afford (Govorkova et al. 2022, Nature Mach. Intell. 4, 154).
The MSE + Mahalanobis combination is the one that found anomalies MSE missed with a uniform-prior SWAE;
``rank:input_norm+mahalanobis`` (marginal outliers of the input + the latent distance) is the best
documented configuration on the LHCO R&D features (``benchmarks/lhco_quality.py``).
"""
from __future__ import annotations

import numpy as np

from .data import arrays as model_input
from .registry import Registry

#: quantiles of each background term kept by a rank combination (its CDF resolution)
RANK_GRID = 1001

#: combinations added by ``methods="all"``
DEFAULT_COMBINATIONS = ("mse+mahalanobis", "rank:mse+mahalanobis", "rank:input_norm+mahalanobis")


class ScoringError(ValueError):
    """A score could not be computed (non-finite values, a method that does not apply)."""


#: scoring method name → :class:`ScoringMethod` class (combinations are built from them by name)
SCORES = Registry("scoring method", name_attribute="name")


def available() -> list[str]:
    """Names of the registered scoring methods (combinations are built from them by name)."""
    return SCORES.names()


# --------------------------------------------------------------------------- per-event quantities

def compute_terms(model, x, batch_size: int = 4096, seed: int = 0, progress: bool = False, first_batch: int = 0,
                  rows: int | None = None) -> dict:
    """``model.score_terms`` over ``x`` (an (N, F) array, an (N, S, F) array or ``{"x", "mask"}``) in
    batches; returns numpy arrays of N rows. Batch ``i`` draws with stateless seed (seed, i), so the
    result depends on the batch size only through the flow-KL sample.

    A sample scored in consecutive pieces (streamed, or sharded: :func:`tfp_anomaly.evaluate.score_run`)
    gives the scores of one call when each piece starts at a batch boundary, is numbered by its first
    batch ``first_batch`` and pads to the ``rows`` of the whole sample's batches (``min(batch_size, N)``
    of the whole sample; by default of ``x``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    import tensorflow as tf

    arrays = model_input.as_dict(x)
    n = model_input.n_events(x)
    if n == 0:
        raise ScoringError("no events to score (0 rows)")
    step = model.compiled_score_terms()
    bar = _progress_bar(n) if progress else None
    parts: dict[str, list] = {}
    size = rows or min(batch_size, n)
    for i, start in enumerate(range(0, n, size), start=first_batch):
        rows = min(size, n - start)
        # the last batch is padded to the common size (rows are independent in inference mode), so the
        # compiled function is traced once
        batch = {k: tf.convert_to_tensor(_pad(v[start:start + size], size)) for k, v in arrays.items()}
        terms = step(model_input.like(x, batch), tf.constant([seed, i], tf.int32))
        for key, value in terms.items():
            parts.setdefault(key, []).append(value.numpy()[:rows])
        if bar is not None:
            bar.update(min(start + batch_size, n))
    return {key: np.concatenate(values) for key, values in parts.items()}


def _pad(values, size):
    if len(values) == size:
        return values
    return np.concatenate([values, np.repeat(values[-1:], size - len(values), axis=0)])


def _progress_bar(n):
    from keras.utils import Progbar

    return Progbar(n, unit_name="event")


# --------------------------------------------------------------------------- methods

class ScoringMethod:
    """One score. ``requires``: the quantities it reads; ``fit(terms)`` learns background statistics
    (the default learns nothing); ``score(terms)`` → (N,) float64; ``get_config`` holds the fitted state."""

    name = "?"
    requires: tuple = ()
    #: True when the encoder alone computes it (no decoder pass)
    encoder_only = False

    def applicable(self, model, terms: dict) -> bool:
        return all(key in terms for key in self.requires)

    def fit(self, terms: dict) -> "ScoringMethod":
        return self

    def score(self, terms: dict) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "ScoringMethod":
        config = dict(config)
        config.pop("name", None)
        return cls(**config)


class _Term(ScoringMethod):
    """A per-event quantity of the model used as is."""

    def score(self, terms):
        return np.asarray(terms[self.requires[0]], np.float64)


@SCORES.register("mse")
class MSE(_Term):
    """Masked mean squared error of the point reconstruction."""

    requires = ("mse",)


@SCORES.register("reconstruction")
class Reconstruction(_Term):
    """The model's own reconstruction loss of the point reconstruction: −log p(x | z = f(μ)) with a
    likelihood reconstruction (``gaussian``: squared errors weighted by the learned 1/σ_f², summed over
    the real features, so a badly reconstructed rare object counts in nats), the masked MSE with ``mse``."""

    requires = ("reconstruction",)


@SCORES.register("input_norm")
class InputNorm(_Term):
    """Mean over real slots and features of x'², x' the model's scaled input: no network involved. With
    the Gauss-rank (``quantile``) scaler every x' is N(0, 1) on background, so this is a χ²-like count
    of marginal outliers; the model-free term to combine with a latent score."""

    requires = ("input_norm",)
    encoder_only = True


@SCORES.register("chamfer")
class ChamferScore(_Term):
    """Symmetric Chamfer distance between input and reconstructed object rows."""

    requires = ("chamfer",)


@SCORES.register("total_loss")
class TotalLoss(_Term):
    """Reconstruction + β·KL: the negative ELBO for β = 1."""

    requires = ("total_loss",)


@SCORES.register("kl")
class KL(_Term):
    """KL(q(z|x) ‖ p(z)); closed form, or the single-sample estimate with a flow posterior."""

    requires = ("kl",)
    encoder_only = True


@SCORES.register("rz")
class RZ(_Term):
    """Σ μ²/σ² over the latent dimensions (encoder only)."""

    requires = ("rz",)
    encoder_only = True


@SCORES.register("latent_norm")
class LatentNorm(ScoringMethod):
    """‖e(x)‖, the norm of the encoding (μ of a VAE, z of a SWAE)."""

    requires = ("encoding",)
    encoder_only = True

    def score(self, terms):
        return np.linalg.norm(np.asarray(terms["encoding"], np.float64), axis=-1)


@SCORES.register("mahalanobis")
class Mahalanobis(ScoringMethod):
    """d(e) = √((e − m)ᵀ P (e − m)), P = Σ⁻¹ of the Ledoit-Wolf shrunk covariance of the background
    encodings (well conditioned even when the encoder collapses some latent directions)."""

    requires = ("encoding",)
    encoder_only = True

    def __init__(self, location=None, precision=None):
        self.location = None if location is None else np.asarray(location, np.float64)
        self.precision = None if precision is None else np.asarray(precision, np.float64)

    def fit(self, terms):
        from sklearn.covariance import LedoitWolf

        estimate = LedoitWolf().fit(np.asarray(terms["encoding"], np.float64))
        self.location, self.precision = estimate.location_, estimate.precision_
        return self

    def score(self, terms):
        _check_fitted(self, self.location)
        d = np.asarray(terms["encoding"], np.float64) - self.location
        return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", d, self.precision, d), 0.0))

    def get_config(self):
        return {"name": self.name, "location": _list(self.location), "precision": _list(self.precision)}


@SCORES.register("radial")
class Radial(ScoringMethod):
    """| ‖z‖ − r₀ |: distance from the shell a sphere or ring prior puts the background on; r₀ is the
    median radius of the background encodings (the prior's radius when the SWAE matched it)."""

    requires = ("latent",)
    encoder_only = True
    PRIORS = ("sphere", "ring")

    def __init__(self, radius=None):
        self.radius = radius

    def applicable(self, model, terms):
        return super().applicable(model, terms) and getattr(model, "prior_name", None) in self.PRIORS

    def fit(self, terms):
        self.radius = float(np.median(np.linalg.norm(terms["latent"], axis=-1)))
        return self

    def score(self, terms):
        _check_fitted(self, self.radius)
        return np.abs(np.linalg.norm(np.asarray(terms["latent"], np.float64), axis=-1) - self.radius)

    def get_config(self):
        return {"name": self.name, "radius": self.radius}


@SCORES.register("iwae")
class IWAE(_Term):
    """−L̂_K, the importance-weighted estimate of −log p(x) with K = ``model.iwae_samples`` posterior
    samples (Burda, Grosse & Salakhutdinov 2016): the model's own likelihood of the event."""

    requires = ("iwae",)


@SCORES.register("elbo")
class ELBO(_Term):
    """−ELBO, estimated from the same K posterior samples as ``iwae``."""

    requires = ("elbo",)


@SCORES.register("latent_logp")
class LatentLogP(ScoringMethod):
    """−log p(z) of the encoding under the prior."""

    requires = ("log_prior",)

    def score(self, terms):
        return -np.asarray(terms["log_prior"], np.float64)


class BackgroundCDF:
    """F(s): the background's empirical CDF of a score, from :data:`RANK_GRID` quantiles, interpolated
    linearly; beyond the background's range it continues with slope 1/(q_max − q_min), so the events
    past the last background quantile keep their order (a rank that stopped at 1 would tie them all,
    and signal efficiencies at small ε_B would be lost in the ties)."""

    def __init__(self, quantiles=None):
        self.quantiles = None if quantiles is None else np.asarray(quantiles, np.float64)

    def fit(self, values) -> "BackgroundCDF":
        self.quantiles = np.quantile(np.asarray(values, np.float64), np.linspace(0.0, 1.0, RANK_GRID))
        return self

    def __call__(self, values) -> np.ndarray:
        q = self.quantiles
        values = np.asarray(values, np.float64)
        span = max(q[-1] - q[0], 1e-12)
        inside = np.interp(values, q, np.linspace(0.0, 1.0, len(q)))
        return inside + np.maximum(values - q[-1], 0.0) / span + np.minimum(values - q[0], 0.0) / span


class Combination(ScoringMethod):
    """Σ_k w_k · s_k(x) with every term s_k standardised on background: ``zscore`` (s − mean)/std, or
    ``rank``: the background CDF of the term (:class:`BackgroundCDF`), so terms with heavy tails
    cannot dominate within the background's range; past it the CDF continues linearly
    (:class:`BackgroundCDF`), so an event far outside the background in any one term is ranked by how
    far, and can outweigh the other terms: such an event is anomalous whatever the others say. Weights
    are the user's: the defaults are equal weights (no signal needed). The statistics come from the terms passed to :meth:`fit`."""

    def __init__(self, terms, standardise="zscore", statistics=None):
        if standardise not in ("zscore", "rank"):
            raise KeyError(f"unknown standardisation {standardise!r}; use zscore or rank")
        self.terms = {str(k): float(w) for k, w in dict(terms).items()}
        self.methods = {k: get_method(k) for k in self.terms}
        self.standardise = standardise
        self.statistics = statistics
        weights = "+".join(k if w == 1.0 else f"{w:g}*{k}" for k, w in self.terms.items())
        self.name = ("rank:" if standardise == "rank" else "") + weights

    @property
    def requires(self):
        return tuple(sorted({r for m in self.methods.values() for r in m.requires}))

    @property
    def encoder_only(self):
        return all(m.encoder_only for m in self.methods.values())

    def applicable(self, model, terms):
        return all(m.applicable(model, terms) for m in self.methods.values())

    def fit(self, terms):
        self.statistics = {}
        for key, method in self.methods.items():
            values = method.fit(terms).score(terms)
            self.statistics[key] = ({"mean": float(values.mean()), "std": float(values.std() or 1.0)}
                                    if self.standardise == "zscore" else
                                    {"quantiles": BackgroundCDF().fit(values).quantiles})
        return self

    def _standardised(self, key, values):
        stats = self.statistics[key]
        if self.standardise == "zscore":
            return (values - stats["mean"]) / stats["std"]
        return BackgroundCDF(stats["quantiles"])(values)

    def score(self, terms):
        _check_fitted(self, self.statistics)
        return sum(w * self._standardised(k, self.methods[k].score(terms)) for k, w in self.terms.items())

    def get_config(self):
        stats = None if self.statistics is None else {
            k: {s: _list(v) for s, v in d.items()} for k, d in self.statistics.items()}
        return {"name": "combination", "terms": self.terms, "standardise": self.standardise, "statistics": stats,
                "methods": {k: m.get_config() for k, m in self.methods.items()}}

    @classmethod
    def from_config(cls, config):
        combo = cls(config["terms"], config["standardise"], config.get("statistics"))
        combo.methods = {k: method_from_config(c) for k, c in config.get("methods", {}).items()} or combo.methods
        return combo


def member_terms(terms: dict, k: int) -> dict:
    """Member ``k``'s terms of an ensemble's stacked terms ((N, K, ...) → (N, ...))."""
    return {key: np.asarray(value)[:, k] for key, value in terms.items()}


class MemberRanks(ScoringMethod):
    """A method over an ensemble's K members: fitted on each member's training-background terms, each
    member's score mapped through its own background CDF (:class:`BackgroundCDF`), the K ranks
    averaged. Identical members give a monotone function of one member's score (the same ROC)."""

    def __init__(self, method, members=None, cdfs=None):
        self.method = get_method(method) if not isinstance(method, ScoringMethod) else method
        self.name, self.requires, self.encoder_only = self.method.name, self.method.requires, self.method.encoder_only
        self.members, self.cdfs = members, cdfs

    def applicable(self, model, terms):
        return self.method.applicable(model.members[0], member_terms(terms, 0))

    def fit(self, terms):
        size = next(iter(terms.values())).shape[1]
        self.members, self.cdfs = [], []
        for k in range(size):
            method = method_from_config(self.method.get_config())  # an unfitted copy per member
            values = method.fit(member_terms(terms, k)).score(member_terms(terms, k))
            self.members.append(method)
            self.cdfs.append(BackgroundCDF().fit(values))
        return self

    def score(self, terms):
        _check_fitted(self, self.members)
        ranks = [cdf(m.score(member_terms(terms, k))) for k, (m, cdf) in enumerate(zip(self.members, self.cdfs))]
        return np.mean(ranks, axis=0)

    def get_config(self):
        return {"name": "member_ranks", "method": self.method.get_config(),
                "members": None if self.members is None else [m.get_config() for m in self.members],
                "cdfs": None if self.cdfs is None else [c.quantiles.tolist() for c in self.cdfs]}

    @classmethod
    def from_config(cls, config):
        members = config.get("members")
        return cls(method_from_config(config["method"]),
                   None if members is None else [method_from_config(m) for m in members],
                   None if config.get("cdfs") is None else [BackgroundCDF(q) for q in config["cdfs"]])


def get_method(spec) -> ScoringMethod:
    """A scoring method from a name (``"mahalanobis"``), a combination string (``"mse+mahalanobis"``,
    ``"2*mse+kl"``, ``"rank:mse+mahalanobis"``), a mapping ``{"terms": {"mse": 1, "kl": 0.5},
    "standardise": "rank"}`` or an instance."""
    if isinstance(spec, ScoringMethod):
        return spec
    if isinstance(spec, dict):
        return Combination(spec["terms"], spec.get("standardise", "zscore"))
    spec = str(spec).strip()
    standardise = "zscore"
    if spec.startswith("rank:"):
        spec, standardise = spec[len("rank:"):], "rank"
    if "+" in spec or "*" in spec or standardise == "rank":
        return Combination(_parse_terms(spec), standardise)
    return SCORES.lookup(spec, hint="or a combination such as mse+mahalanobis")()


def _parse_terms(spec: str) -> dict:
    terms = {}
    for part in spec.split("+"):
        weight, _, name = part.strip().rpartition("*")
        name = name.strip()
        SCORES.lookup(name, f"scoring combination {spec!r}")
        try:
            terms[name] = float(weight) if weight else 1.0
        except ValueError:
            raise KeyError(f"scoring combination {spec!r}: weight {weight!r} of {name!r} is not a number") from None
    return terms


def method_from_config(config: dict) -> ScoringMethod:
    """A fitted method back from its ``get_config()`` (as saved in ``scorer.json``)."""
    if config["name"] == "combination":
        return Combination.from_config(config)
    if config["name"] == "member_ranks":
        return MemberRanks.from_config(config)
    return SCORES[config["name"]].from_config(config)


def _check_fitted(method, state):
    if state is None:
        raise ScoringError(f"scoring method {method.name!r} needs background statistics: call fit first")


def _list(value):
    return None if value is None else np.asarray(value).tolist()


# --------------------------------------------------------------------------- a set of methods

class Scorer:
    """Several scoring methods of one model: ``fit(model, x_background)`` computes the background terms
    once and fits every method; ``score(model, x)`` → ``{method: (N,) scores}``.

    ``methods="all"``: every registered method that applies to the model, plus
    :data:`DEFAULT_COMBINATIONS` where their terms apply.
    """

    def __init__(self, methods="all", batch_size: int = 4096, seed: int = 0):
        self.methods_spec, self.batch_size, self.seed = methods, int(batch_size), int(seed)
        self.methods: dict[str, ScoringMethod] = {}

    def _candidates(self):
        if self.methods_spec == "all":
            return [SCORES[name]() for name in available()] + [get_method(c) for c in DEFAULT_COMBINATIONS]
        specs = [self.methods_spec] if isinstance(self.methods_spec, (str, dict)) else list(self.methods_spec)
        return [get_method(s) for s in specs]

    def terms(self, model, x, progress=False, first_batch: int = 0, rows: int | None = None) -> dict:
        return compute_terms(model, x, self.batch_size, self.seed, progress, first_batch, rows)

    def fit(self, model, x_background, progress=False, terms=None) -> "Scorer":
        terms = self.terms(model, x_background, progress) if terms is None else terms
        self.methods = {}
        for method in self._candidates():
            if getattr(model, "ensemble_size", 1) > 1:
                method = MemberRanks(method)
            if method.applicable(model, terms):
                self.methods[method.name] = method.fit(terms)
            elif self.methods_spec != "all":
                raise ScoringError(f"scoring method {method.name!r} does not apply to this model "
                                   f"({type(model).__name__}; it needs {', '.join(method.requires)})")
        return self

    def score(self, model, x, progress=False, terms=None) -> dict:
        if not self.methods:
            raise ScoringError("the scorer is not fitted: call fit(model, x_background) first")
        terms = self.terms(model, x, progress) if terms is None else terms
        out = {}
        for name, method in self.methods.items():
            values = method.score(terms)
            bad = ~np.isfinite(values)
            if bad.any():
                raise ScoringError(f"scoring method {name!r}: {int(bad.sum())} of {len(values)} events have a "
                                   f"non-finite score (first at row {int(np.flatnonzero(bad)[0])})")
            out[name] = values
        return out

    def get_config(self) -> dict:
        return {"methods_spec": self.methods_spec, "batch_size": self.batch_size, "seed": self.seed,
                "methods": {name: m.get_config() for name, m in self.methods.items()}}

    @classmethod
    def from_config(cls, config: dict) -> "Scorer":
        scorer = cls(config["methods_spec"], config["batch_size"], config["seed"])
        scorer.methods = {name: method_from_config(c) for name, c in config["methods"].items()}
        return scorer


from . import latent_flow  # noqa: E402,F401  (registers ``latent_flow``, which builds on the classes above)
