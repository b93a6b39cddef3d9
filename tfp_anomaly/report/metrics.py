"""Figures of merit of an anomaly score: AUC, signal efficiency at fixed background efficiency, and
significance improvement, with bootstrap uncertainties.

ε_S(ε_B) interpolates the ROC linearly between its vertices (scikit-learn's ``roc_curve`` with every
threshold kept): at an ε_B between two distinct background efficiencies f_j < ε_B < f_{j+1} it is
the straight line from the highest ε_S at f_j to the lowest ε_S at f_{j+1} (the ROC of a randomised
threshold between the two cuts); at ε_B equal to a vertex it is that vertex's highest ε_S.

An operating point ε_B needs background events above the cut: with N background test events only
N·ε_B are, and below :data:`MIN_BACKGROUND_ABOVE` the figure is dominated by a handful of events. It is
still computed, flagged ``low_stats`` and reported with a warning, never silently.

**Event weights.** Every function takes optional per-event weights (a Dark Machines line carries one,
``Events.weight``): background weights w_j and signal weights v_i. Efficiencies become weighted
fractions, ε_B(t) = Σ_{j: b_j > t} w_j / Σ_j w_j and ε_S(t) = Σ_{i: s_i > t} v_i / Σ_i v_i, so the ROC,
the AUC (= P(s > b) + ½ P(s = b) for s, b drawn from the weighted samples) and ε_S at ε_B are those of
the weighted distributions, exactly what scikit-learn computes with ``sample_weight``. A low-statistics
flag then counts the effective number of background events, Kish's N_eff = (Σ w)² / Σ w² (Kish 1965,
*Survey Sampling*), which is N for equal weights. Weights must be finite and ≥ 0 with a positive sum;
anything else is a ``ValueError`` naming the sample and the first bad row: negative weights (NLO
generators) are not supported. ``None`` weights and all-ones weights give identical numbers.
"""
from __future__ import annotations

import warnings

import numpy as np

#: the Dark Machines operating points
BACKGROUND_EFFICIENCIES = (1e-2, 1e-3, 1e-4)

#: fewer background events than this above an operating point's cut → ``low_stats``
MIN_BACKGROUND_ABOVE = 10


class LowStatisticsWarning(UserWarning):
    """An operating point has too few background test events above its cut."""


def labelled(background_scores, signal_scores) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) with background 0 and signal 1, checked finite."""
    b = np.asarray(background_scores, np.float64).ravel()
    s = np.asarray(signal_scores, np.float64).ravel()
    if len(b) == 0 or len(s) == 0:
        raise ValueError(f"need background and signal scores, got {len(b)} and {len(s)}")
    for name, values in (("background", b), ("signal", s)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} scores: {int((~np.isfinite(values)).sum())} non-finite values")
    return np.r_[np.zeros(len(b)), np.ones(len(s))], np.r_[b, s]


def check_weights(weights, n: int, sample: str) -> np.ndarray | None:
    """``weights`` as a float64 (n,) array, or None for None. A ``ValueError`` (one line, naming
    ``sample`` and the first bad row, counted from 0) when there are not n of them, one is not finite
    or negative, or they sum to 0. Negative weights (NLO event generators) are refused: drop or absorb
    them before training and evaluation."""
    if weights is None:
        return None
    w = np.asarray(weights, np.float64).ravel()
    if len(w) != n:
        raise ValueError(f"{sample} weights: {len(w)} values for {n} events")
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if len(bad):
        row = int(bad[0])
        raise ValueError(f"{sample} weights: row {row} (counted from 0) is {float(w[row])!r}; weights must be finite "
                         "and ≥ 0 (negative-weight NLO events are not supported: drop or absorb them)")
    if not w.sum() > 0:
        raise ValueError(f"{sample} weights: all {n} are 0; at least one event needs a positive weight")
    return w


def weighted_labelled(background_scores, signal_scores, background_weights=None, signal_weights=None):
    """(labels, scores, sample_weight) as :func:`labelled`, with the weights checked
    (:func:`check_weights`) and concatenated in the same order; ``sample_weight`` is None when both
    weights are None, and a missing side counts as all ones when the other is given."""
    labels, scores = labelled(background_scores, signal_scores)
    n_s = int(labels.sum())
    n_b = len(labels) - n_s
    wb = check_weights(background_weights, n_b, "background")
    ws = check_weights(signal_weights, n_s, "signal")
    if wb is None and ws is None:
        return labels, scores, None
    return labels, scores, np.r_[np.ones(n_b) if wb is None else wb, np.ones(n_s) if ws is None else ws]


def roc(background_scores, signal_scores, background_weights=None,
        signal_weights=None) -> tuple[np.ndarray, np.ndarray]:
    """(ε_B, ε_S) at every distinct threshold (scikit-learn ``roc_curve``, no vertex dropped); with
    weights the weighted efficiencies of the module docstring (``roc_curve(sample_weight=...)``, which
    leaves zero-weight events out: they move no efficiency)."""
    from sklearn.metrics import roc_curve

    labels, scores, sample_weight = weighted_labelled(background_scores, signal_scores,
                                                      background_weights, signal_weights)
    fpr, tpr, _ = roc_curve(labels, scores, sample_weight=sample_weight, drop_intermediate=False)
    return fpr, tpr


def auc(background_scores, signal_scores, background_weights=None, signal_weights=None) -> float:
    """Area under the (weighted) ROC curve (scikit-learn's ``roc_auc_score`` with ``sample_weight``;
    higher scores = signal-like)."""
    from sklearn.metrics import roc_auc_score

    labels, scores, sample_weight = weighted_labelled(background_scores, signal_scores,
                                                      background_weights, signal_weights)
    return float(roc_auc_score(labels, scores, sample_weight=sample_weight))


def rank_auc(background_scores, signal_scores, background_weights=None, signal_weights=None) -> float:
    """The AUC as the weighted Mann–Whitney statistic, by one sort (for the bootstrap):

        AUC = Σ_i Σ_j v_i w_j [1(s_i > b_j) + ½ 1(s_i = b_j)] / (Σ_i v_i · Σ_j w_j),

    computed over the distinct scores t as Σ_t V_t (W_{<t} + ½ W_t) / (V W), with V_t and W_t the
    signal and background weight at score t and W_{<t} the background weight below it. It is the area
    under the weighted ROC (the trapezoids of a tied vertex are the ½), i.e. :func:`auc`, to rounding.
    Scores and weights are not checked here (:func:`weighted_labelled` does that); None weights are ones."""
    b = np.asarray(background_scores, np.float64).ravel()
    s = np.asarray(signal_scores, np.float64).ravel()
    wb = np.ones(len(b)) if background_weights is None else np.asarray(background_weights, np.float64)
    ws = np.ones(len(s)) if signal_weights is None else np.asarray(signal_weights, np.float64)
    values, inverse = np.unique(np.r_[b, s], return_inverse=True)
    at_b = np.bincount(inverse[:len(b)], weights=wb, minlength=len(values))
    at_s = np.bincount(inverse[len(b):], weights=ws, minlength=len(values))
    below = np.r_[0.0, np.cumsum(at_b)[:-1]]
    return float(np.sum(at_s * (below + 0.5 * at_b)) / (at_b.sum() * at_s.sum()))


def weighs(weights) -> bool:
    """Whether ``weights`` change any figure: given and not all equal. Equal weights (a weighted format's
    1s, or σ/N of one process) cancel in every fraction, so they are no weighting."""
    return weights is not None and len(weights) > 0 and bool(np.ptp(np.asarray(weights, np.float64)) > 0)


def effective_events(weights) -> float:
    """Kish's effective number of events (Σ w)² / Σ w²: the N of unweighted events whose mean has
    the variance of the weighted mean; N for N equal weights."""
    w = np.asarray(weights, np.float64)
    if not weighs(w):  # exactly N: the sums' rounding gives N(1 − 1e-16) for some equal weights
        return float(len(w))
    return float(w.sum() ** 2 / np.sum(w * w))


def efficiency_at(fpr, tpr, background_efficiency) -> np.ndarray:
    """ε_S at the given ε_B (scalar or array) on the ROC (fpr, tpr), interpolated as in the module doc."""
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    if np.any(np.diff(fpr) < 0) or np.any(np.diff(tpr) < 0):
        raise ValueError("efficiency_at needs a ROC in curve order (fpr and tpr non-decreasing), as roc() returns")
    x = np.atleast_1d(np.asarray(background_efficiency, np.float64))
    levels, first = np.unique(fpr, return_index=True)
    last = np.r_[first[1:] - 1, len(fpr) - 1]
    upper, lower = tpr[last], tpr[first]  # highest and lowest ε_S at each ε_B vertex
    j = np.clip(np.searchsorted(levels, x, side="right") - 1, 0, len(levels) - 1)
    nxt = np.minimum(j + 1, len(levels) - 1)
    span = levels[nxt] - levels[j]
    frac = np.where(span > 0, (x - levels[j]) / np.where(span > 0, span, 1.0), 0.0)
    out = upper[j] + np.clip(frac, 0.0, 1.0) * (lower[nxt] - upper[j])
    out = np.where(x >= levels[j], out, upper[0])
    return out if np.ndim(background_efficiency) else out[0]


def figures_of_merit(background_scores, signal_scores, efficiencies=BACKGROUND_EFFICIENCIES,
                     bootstrap: int = 100, seed: int = 0, warn: bool = True, background_weights=None,
                     signal_weights=None) -> dict:
    """AUC, ε_S and significance improvement ε_S/√ε_B at each ε_B, each with the standard deviation
    over ``bootstrap`` resamples (background and signal resampled independently, with replacement;
    a resampled event keeps its weight), and per operating point the number of background events
    above the cut and a ``low_stats`` flag.

    With weights (module docstring) ε_B and ε_S are weighted fractions and ε_S is read off the
    weighted ROC; the events "above the cut" are then N_eff · ε_B with N_eff = (Σ w)²/Σ w² (Kish),
    the effective number of background events, instead of N · ε_B.

    Keys: ``AUC``, ``AUC_err``, ``n_background``, ``n_signal``, ``n_eff_background`` (N_eff; N
    unweighted), ``weighted`` (whether weights were given) and, per ε_B written ``1e-2`` …,
    ``eff@1e-2``, ``eff_err@1e-2``, ``SIC@1e-2``, ``bkg_above@1e-2``, ``low_stats@1e-2``.
    """
    b = np.asarray(background_scores, np.float64).ravel()
    s = np.asarray(signal_scores, np.float64).ravel()
    labelled(b, s)  # the scores are checked before the weights
    wb = check_weights(background_weights, len(b), "background")
    ws = check_weights(signal_weights, len(s), "signal")
    is_weighted = wb is not None or ws is not None
    fpr, tpr = roc(b, s, wb, ws)
    eps = np.asarray(efficiencies, np.float64)
    central = efficiency_at(fpr, tpr, eps)
    n_eff = float(len(b)) if wb is None else effective_events(wb)
    row = {"AUC": auc(b, s, wb, ws), "n_background": len(b), "n_signal": len(s), "n_eff_background": n_eff,
           "weighted": is_weighted}
    # equal weights on each side cancel in every fraction: the unweighted resampling gives the same spreads
    # (tests/test_weights.py) in a fraction of the time
    equal = not (weighs(wb) or weighs(ws))
    samples_auc, samples_eff = _bootstrap(b, s, eps, bootstrap, seed, *((None, None) if equal else (wb, ws)))
    row["AUC_err"] = float(np.std(samples_auc)) if bootstrap else float("nan")
    counted = "effective (Kish) background events" if wb is not None else "background test events"
    for k, e in enumerate(eps):
        key = format_efficiency(e)
        above = (len(b) if wb is None else n_eff) * e
        row[f"eff@{key}"] = float(central[k])
        row[f"eff_err@{key}"] = float(np.std(samples_eff[:, k])) if bootstrap else float("nan")
        row[f"SIC@{key}"] = float(central[k] / np.sqrt(e))
        row[f"bkg_above@{key}"] = float(above)
        row[f"low_stats@{key}"] = bool(above < MIN_BACKGROUND_ABOVE)
        if warn and above < MIN_BACKGROUND_ABOVE:
            size = f"{len(b)}" if wb is None else f"{n_eff:.1f}"
            warnings.warn(f"ε_B = {key}: {size} {counted} leave {above:.1f} above the cut "
                          f"(fewer than {MIN_BACKGROUND_ABOVE}); ε_S there is a low-statistics estimate",
                          LowStatisticsWarning, stacklevel=2)
    return row


def _bootstrap(b, s, eps, n, seed, wb=None, ws=None):
    """AUC and ε_S of ``n`` resamples. For speed each resample uses the rank-sum form of the AUC
    (Mann-Whitney U / n_S n_B, ties averaged: identical to the ROC area; with weights
    :func:`rank_auc`) and ε_S at the resampled background's (1 − ε_B) quantile (:func:`threshold_at`,
    the ROC vertex at ε_B, without interpolation): spreads, not centres. A resampled event carries its
    weight; a resample whose background or signal weights all drew 0 is left out of the spread."""
    from scipy.stats import rankdata

    if not n:
        return np.zeros(0), np.zeros((0, len(eps)))
    rng = np.random.default_rng(seed)
    aucs, effs = np.empty(n), np.empty((n, len(eps)))
    nb, ns = len(b), len(s)
    if wb is None and ws is None:  # the unweighted path, unchanged
        for i in range(n):
            bb, ss = b[rng.integers(0, nb, nb)], s[rng.integers(0, ns, ns)]
            ranks = rankdata(np.r_[bb, ss])[nb:]
            aucs[i] = (ranks.sum() - ns * (ns + 1) / 2.0) / (ns * nb)
            cuts = np.quantile(bb, 1.0 - eps, method="higher")
            effs[i] = (ss[:, None] > cuts[None, :]).mean(axis=0)
        return aucs, effs
    wb = np.ones(nb) if wb is None else wb
    ws = np.ones(ns) if ws is None else ws
    for i in range(n):
        pick_b, pick_s = rng.integers(0, nb, nb), rng.integers(0, ns, ns)
        bb, ss, wbb, wss = b[pick_b], s[pick_s], wb[pick_b], ws[pick_s]
        if not (wbb.sum() > 0 and wss.sum() > 0):
            aucs[i], effs[i] = np.nan, np.nan
            continue
        aucs[i] = rank_auc(bb, ss, wbb, wss)
        cuts = np.array([threshold_at(bb, e, wbb) for e in eps])
        effs[i] = (wss[:, None] * (ss[:, None] > cuts[None, :])).sum(axis=0) / wss.sum()
    keep = np.isfinite(aucs)
    return aucs[keep], effs[keep]


def format_efficiency(e: float) -> str:
    """1e-2 → ``"1e-2"`` (the Dark Machines column names)."""
    mantissa, exponent = f"{e:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def threshold_at(background_scores, background_efficiency: float, weights=None) -> float:
    """The score above which a fraction ``background_efficiency`` of the background lies (the
    (1 − ε_B) quantile, "higher" interpolation so the realised fraction never exceeds ε_B).

    Unweighted it is NumPy's ``quantile(b, 1 − ε_B, method="higher")``: the sorted score b_(k) with
    the smallest k ≥ (1 − ε_B)(N − 1), i.e. at most a fraction ε_B of the *other* N − 1 events lie
    after it. With weights w (sorted with the scores, stably) the same rule reads: the smallest k with

        Σ_{j<k} w_j ≥ (1 − ε_B) (W − w_k),    W = Σ_j w_j,

    so the weight strictly after b_(k) is at most ε_B (W − w_k) ≤ ε_B W: the realised weighted
    fraction above the cut never exceeds ε_B. The left side minus the right grows with k, so the
    smallest such k is the cut; all-ones weights give NumPy's cut exactly (the same floating-point
    products). Weights are checked as in :func:`check_weights`."""
    b = np.asarray(background_scores, np.float64).ravel()
    w = check_weights(weights, len(b), "background")
    q = 1.0 - background_efficiency
    if w is None:
        return float(np.quantile(b, q, method="higher"))
    order = np.argsort(b, kind="stable")
    b, w = b[order], w[order]
    cumulative = np.cumsum(w)
    before = np.r_[0.0, cumulative[:-1]]
    holds = before >= (cumulative[-1] - w) * q
    holds[-1] = True  # true in exact arithmetic (q ≤ 1); guards the rounding of the running sum
    return float(b[np.argmax(holds)])
