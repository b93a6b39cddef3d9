"""Synthetic scored runs for the report tests: a few models × scores × two signals, one model trained
with two seeds, physics observables that the scores depend on (so a cut on a score shifts them)."""
import numpy as np

from tfp_anomaly.report import ScoredRun

SIGNALS = {"wprime_wz": 1.0, "qstar": 0.5}  # name → shift of the observables (in background widths)
N_BACKGROUND, N_SIGNAL = 20_000, 2_000


def observables(rng, n: int, shift: float) -> dict:
    """HT, MET, m_jj (GeV-like, exponential tails) and jet / b-jet multiplicities."""
    return {"HT": 200.0 + rng.exponential(150.0 * (1 + shift), n), "MET": rng.exponential(40.0 * (1 + shift), n),
            "m_jj": rng.normal(300.0 + 200.0 * shift, 80.0, n), "n_jets": rng.poisson(2.0 + 2 * shift, n).astype(float),
            "n_b": rng.poisson(0.3 + shift, n).astype(float)}


def scores(rng, obs: dict, methods: dict) -> dict:
    """Each method a noisy function of the observables, its noise level ``methods[name]``."""
    base = np.log(obs["HT"]) + 0.01 * obs["MET"] + 0.2 * obs["n_jets"]
    return {m: base + rng.normal(0.0, noise, len(base)) for m, noise in methods.items()}


def scored_run(name: str, meta: dict, methods: dict, seed: int, weighted: bool = False,
               n_background: int = N_BACKGROUND, n_signal: int = N_SIGNAL) -> ScoredRun:
    rng = np.random.default_rng(seed)
    obs = {"background": observables(rng, n_background, 0.0)}
    obs.update({s: observables(rng, n_signal, shift) for s, shift in SIGNALS.items()})
    sc = {sample: scores(rng, o, methods) for sample, o in obs.items()}
    events = {}
    if weighted:
        events = {s: {"event_id": np.arange(len(o["HT"])), "file": np.zeros(len(o["HT"]), np.int16),
                      "weight": rng.uniform(0.5, 1.5, len(o["HT"]))} for s, o in obs.items()}
    return ScoredRun(name, dict(meta), sc["background"], {s: sc[s] for s in SIGNALS}, history=None, events=events,
                     observables=obs)


def demo_like_runs(weighted: bool = False, **sizes) -> list:
    """Four runs: ``swae (prior ring)`` with seeds 0 and 1 (one config digest), ``swae (prior gaussian)``
    and ``vae (flow planar*6)``; scores mse, mahalanobis, mse+mahalanobis (and kl for the VAE);
    ``sizes``: ``n_background``, ``n_signal``."""
    ring = {"type": "swae", "prior": "ring", "flow": "", "config_digest": "ring0123"}
    methods = {"mse": 0.6, "mahalanobis": 0.9, "mse+mahalanobis": 0.4}
    return [scored_run("ConvSWAE ring s0", {**ring, "seed": 0}, methods, 1, weighted, **sizes),
            scored_run("ConvSWAE ring s1", {**ring, "seed": 1}, methods, 2, weighted, **sizes),
            scored_run("ConvSWAE gaussian", {"type": "swae", "prior": "gaussian", "flow": ""},
                       {"mse": 0.7, "mahalanobis": 1.0, "mse+mahalanobis": 0.5}, 3, weighted, **sizes),
            scored_run("ConvVAE + Planar×6", {"type": "vae", "prior": "", "flow": "planar*6"},
                       {**methods, "kl": 1.5}, 4, weighted, **sizes)]
