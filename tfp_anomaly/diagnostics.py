"""Is the VAE's latent space in use? Diagnostics of a trained VAE on held-out background.

* **Active units** (Burda, Grosse & Salakhutdinov 2016, arXiv:1509.00519, §5.2): latent dimension i is
  active when A_i = Cov_x(E_{q(z|x)}[z_i]) > 0.01, i.e. the posterior mean μ_i(x) moves with the event.
  A collapsed dimension has μ_i ≈ 0 and σ_i ≈ 1 for every event: it carries no information, and no
  flow posterior can use it. With a flow, the statistic is taken on q_0's mean μ (the flow's input).
* **KL per dimension**: E_x KL(N(μ_i, σ_i²) ‖ N(0, 1)) of q_0, in nats; collapsed dimensions sit at 0.
* **ELBO and IWAE** per event, in nats: the K-sample Monte-Carlo ELBO E_k[log w_k] and the importance
  weighted bound log (1/K) Σ_k w_k of the same draws (:meth:`tfp_anomaly.models.VAE.log_importance_weights`).
  The IWAE is the measure of whether a flow posterior tightens the bound: compare it across posteriors
  trained with the same likelihood (only a likelihood reconstruction gives log p(x) in nats).

:func:`latent_diagnostics` computes them; a warning (:class:`LatentCollapseWarning`) says when fewer
than half of the dimensions are active. :func:`summarise` averages an ensemble's members (mean ± std).
"""
from __future__ import annotations

import warnings

import numpy as np

#: Burda et al.'s threshold on Cov_x(E_q[z_i]) for an active latent unit
ACTIVE_THRESHOLD = 0.01


class LatentCollapseWarning(UserWarning):
    """Fewer than half of a VAE's latent dimensions are active: the posterior fell onto the prior."""


def has_latent_posterior(model) -> bool:
    """True for VAEs (and ensembles of VAEs) that draw importance samples (``iwae_samples`` ≥ 1)."""
    first = _first_member(model)
    return callable(getattr(first, "log_importance_weights", None)) and getattr(first, "iwae_samples", 0) >= 1


def _first_member(model):
    members = getattr(model, "members", None)
    return members[0] if members else model


def _one(terms: dict, likelihood: bool, samples: int) -> dict:
    mu = np.asarray(terms["encoding"], np.float64)
    activity = mu.var(axis=0)
    return {"latent_dim": int(mu.shape[1]), "active_units": int((activity > ACTIVE_THRESHOLD).sum()),
            "activity": activity.round(4).tolist(),
            "kl_per_dim": np.asarray(terms["kl_per_dim"], np.float64).mean(axis=0).round(4).tolist(),
            "kl": float(np.mean(terms["kl"])), "elbo": -float(np.mean(terms["elbo"])),
            "iwae": -float(np.mean(terms["iwae"])), "iwae_samples": samples, "likelihood": likelihood,
            "events": int(len(mu))}


def latent_diagnostics(model, x, seed: int = 0, batch_size: int = 4096, warn: bool = True) -> dict:
    """Active units, KL per dimension, ELBO and IWAE (per event, nats) of ``model`` on ``x`` (held-out
    background); for an ensemble, one entry per member under ``members`` and their mean ± std."""
    from .scoring import compute_terms, member_terms

    size = getattr(model, "ensemble_size", 1)
    first = _first_member(model)
    likelihood, samples = bool(first.reconstruction.is_likelihood), int(first.iwae_samples)
    if samples < 1:
        raise ValueError("latent diagnostics need the importance-weighted bound: set the VAE's iwae_samples ≥ 1")
    terms = compute_terms(model, x, batch_size=batch_size, seed=seed)
    members = [_one(member_terms(terms, k) if size > 1 else terms, likelihood, samples) for k in range(size)]
    result = summarise(members)
    if warn and result["active_units"] < result["latent_dim"] / 2:
        warnings.warn(f"only {result['active_units']:.3g} of {result['latent_dim']} latent dimensions are active "
                      f"(Cov_x E_q[z_i] > {ACTIVE_THRESHOLD}): the posterior has collapsed onto the prior and "
                      "latent scores (kl, rz, mahalanobis) carry little information; use a likelihood "
                      "reconstruction (model.reconstruction: gaussian), free_bits or kl_warmup_steps",
                      LatentCollapseWarning, stacklevel=2)
    return result


def summarise(members: list[dict]) -> dict:
    """One member's diagnostics as they are; several: mean of each number (``*_std`` beside it)."""
    if len(members) == 1:
        return dict(members[0])
    out = {"members": members, "latent_dim": members[0]["latent_dim"], "likelihood": members[0]["likelihood"],
           "iwae_samples": members[0]["iwae_samples"], "events": members[0]["events"]}
    for key in ("active_units", "kl", "elbo", "iwae"):
        values = np.array([m[key] for m in members], np.float64)
        out[key], out[f"{key}_std"] = float(values.mean()), float(values.std(ddof=1))
    out["kl_per_dim"] = np.mean([m["kl_per_dim"] for m in members], axis=0).round(4).tolist()
    return out
