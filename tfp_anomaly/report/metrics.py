"""Figures of merit of an anomaly score: AUC, signal efficiency at fixed background efficiency, and
significance improvement, with bootstrap uncertainties.

ε_S(ε_B) interpolates the ROC linearly between its vertices (scikit-learn's ``roc_curve`` with every
threshold kept): at an ε_B between two distinct background efficiencies f_j < ε_B < f_{j+1} it is
the straight line from the highest ε_S at f_j to the lowest ε_S at f_{j+1} (the ROC of a randomised
threshold between the two cuts); at ε_B equal to a vertex it is that vertex's highest ε_S.

An operating point ε_B needs background events above the cut: with N background test events only
N·ε_B are, and below :data:`MIN_BACKGROUND_ABOVE` the figure is dominated by a handful of events. It is
still computed, flagged ``low_stats`` and reported with a warning, never silently.
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


def roc(background_scores, signal_scores) -> tuple[np.ndarray, np.ndarray]:
    """(ε_B, ε_S) at every distinct threshold (scikit-learn ``roc_curve``, no vertex dropped)."""
    from sklearn.metrics import roc_curve

    labels, scores = labelled(background_scores, signal_scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return fpr, tpr


def auc(background_scores, signal_scores) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``; higher scores = signal-like)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(*labelled(background_scores, signal_scores)))


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
                     bootstrap: int = 100, seed: int = 0, warn: bool = True) -> dict:
    """AUC, ε_S and significance improvement ε_S/√ε_B at each ε_B, each with the standard deviation
    over ``bootstrap`` resamples (background and signal resampled independently, with replacement),
    and per operating point the number of background events above the cut and a ``low_stats`` flag.

    Keys: ``AUC``, ``AUC_err``, ``n_background``, ``n_signal`` and, per ε_B written ``1e-2`` …,
    ``eff@1e-2``, ``eff_err@1e-2``, ``SIC@1e-2``, ``bkg_above@1e-2``, ``low_stats@1e-2``.
    """
    b = np.asarray(background_scores, np.float64).ravel()
    s = np.asarray(signal_scores, np.float64).ravel()
    fpr, tpr = roc(b, s)
    eps = np.asarray(efficiencies, np.float64)
    central = efficiency_at(fpr, tpr, eps)
    row = {"AUC": auc(b, s), "n_background": len(b), "n_signal": len(s)}
    samples_auc, samples_eff = _bootstrap(b, s, eps, bootstrap, seed)
    row["AUC_err"] = float(np.std(samples_auc)) if bootstrap else float("nan")
    for k, e in enumerate(eps):
        key = format_efficiency(e)
        above = len(b) * e
        row[f"eff@{key}"] = float(central[k])
        row[f"eff_err@{key}"] = float(np.std(samples_eff[:, k])) if bootstrap else float("nan")
        row[f"SIC@{key}"] = float(central[k] / np.sqrt(e))
        row[f"bkg_above@{key}"] = float(above)
        row[f"low_stats@{key}"] = bool(above < MIN_BACKGROUND_ABOVE)
        if warn and above < MIN_BACKGROUND_ABOVE:
            warnings.warn(f"ε_B = {key}: {len(b)} background test events leave {above:.1f} above the cut "
                          f"(fewer than {MIN_BACKGROUND_ABOVE}); ε_S there is a low-statistics estimate",
                          LowStatisticsWarning, stacklevel=2)
    return row


def _bootstrap(b, s, eps, n, seed):
    """AUC and ε_S of ``n`` resamples. For speed each resample uses the rank-sum form of the AUC
    (Mann-Whitney U / n_S n_B, ties averaged: identical to the ROC area) and ε_S at the resampled
    background's (1 − ε_B) quantile (the ROC vertex at ε_B, without interpolation): spreads, not centres."""
    from scipy.stats import rankdata

    if not n:
        return np.zeros(0), np.zeros((0, len(eps)))
    rng = np.random.default_rng(seed)
    aucs, effs = np.empty(n), np.empty((n, len(eps)))
    nb, ns = len(b), len(s)
    for i in range(n):
        bb, ss = b[rng.integers(0, nb, nb)], s[rng.integers(0, ns, ns)]
        ranks = rankdata(np.r_[bb, ss])[nb:]
        aucs[i] = (ranks.sum() - ns * (ns + 1) / 2.0) / (ns * nb)
        cuts = np.quantile(bb, 1.0 - eps, method="higher")
        effs[i] = (ss[:, None] > cuts[None, :]).mean(axis=0)
    return aucs, effs


def format_efficiency(e: float) -> str:
    """1e-2 → ``"1e-2"`` (the Dark Machines column names)."""
    mantissa, exponent = f"{e:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def threshold_at(background_scores, background_efficiency: float) -> float:
    """The score above which a fraction ``background_efficiency`` of the background lies (the
    (1 − ε_B) quantile, "higher" interpolation so the realised fraction never exceeds ε_B by more
    than one event)."""
    b = np.asarray(background_scores, np.float64)
    return float(np.quantile(b, 1.0 - background_efficiency, method="higher"))
