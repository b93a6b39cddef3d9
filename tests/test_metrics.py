"""Figures of merit against scikit-learn and hand-made ROCs."""
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from tfp_anomaly.report import metrics


@pytest.mark.parametrize("tied", [False, True])
def test_auc_and_roc_match_scikit_learn(tied):
    rng = np.random.default_rng(1)
    b, s = rng.normal(size=3000), rng.normal(0.7, 1.2, size=800)
    if tied:  # many exact ties, within and across classes
        b, s = np.round(b, 1), np.round(s, 1)
    labels, scores = np.r_[np.zeros(3000), np.ones(800)], np.r_[b, s]
    assert metrics.auc(b, s) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr = metrics.roc(b, s)
    ref_fpr, ref_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_array_equal(fpr, ref_fpr)
    np.testing.assert_array_equal(tpr, ref_tpr)


def test_efficiency_interpolates_a_hand_made_roc():
    # background {1, 2}, signal {2, 3}: vertices (ε_B, ε_S) = (0, 0), (0, 0.5), (0.5, 1), (1, 1); the tie at 2
    # makes the segment from (0, 0.5) to (0.5, 1) a straight line
    fpr, tpr = metrics.roc([1.0, 2.0], [2.0, 3.0])
    np.testing.assert_allclose(metrics.efficiency_at(fpr, tpr, [0.0, 0.25, 0.1, 0.5, 0.75]),
                               [0.5, 0.75, 0.6, 1.0, 1.0])
    # vertical steps (ε_S rises at fixed ε_B): at a vertex the highest ε_S on the step counts
    fpr, tpr = metrics.roc([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 2.5, 0.0])
    np.testing.assert_allclose(metrics.efficiency_at(fpr, tpr, [0.0, 0.125, 0.5, 0.6]), [0.5, 0.5, 0.75, 0.75])
    with pytest.raises(ValueError, match="curve order"):
        metrics.efficiency_at([0.5, 0.0], [1.0, 0.0], 0.1)


def test_efficiency_agrees_with_the_threshold_rule_on_large_samples():
    rng = np.random.default_rng(2)
    b, s = rng.normal(size=200_000), rng.normal(2.0, 1.0, size=50_000)
    fpr, tpr = metrics.roc(b, s)
    for e in (1e-2, 1e-3):
        cut = metrics.threshold_at(b, e)
        assert (b > cut).mean() <= e
        assert metrics.efficiency_at(fpr, tpr, e) == pytest.approx((s > cut).mean(), abs=2e-3)


def test_figures_of_merit_flag_low_statistics_and_give_uncertainties():
    rng = np.random.default_rng(3)
    b, s = rng.normal(size=20_000), rng.normal(1.5, 1.0, size=1000)
    with pytest.warns(metrics.LowStatisticsWarning, match="1e-4"):
        row = metrics.figures_of_merit(b, s, bootstrap=30)
    assert row["low_stats@1e-4"] and not row["low_stats@1e-2"] and row["low_stats@1e-3"] is False
    assert row["bkg_above@1e-2"] == pytest.approx(200.0)
    assert row["SIC@1e-2"] == pytest.approx(row["eff@1e-2"] / 0.1)
    assert 0.0 < row["AUC_err"] < 0.02 and 0.0 < row["eff_err@1e-2"] < 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.figures_of_merit(b, s, efficiencies=(1e-2,), bootstrap=0)


def test_non_finite_or_empty_scores_are_refused():
    with pytest.raises(ValueError, match="signal scores: 1 non-finite"):
        metrics.auc([0.0, 1.0], [np.inf, 2.0])
    with pytest.raises(ValueError, match="need background and signal"):
        metrics.auc([], [1.0])


def test_format_efficiency_gives_the_challenge_column_names():
    assert [metrics.format_efficiency(e) for e in metrics.BACKGROUND_EFFICIENCIES] == ["1e-2", "1e-3", "1e-4"]
