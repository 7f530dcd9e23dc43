"""Critic calibration (ECE over scikit-learn's bins), within-type AUC, DeLong's interval against
scikit-learn and a scipy bootstrap, and the filter rule with its forcing switch."""

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from proj_assets.sft.critic_calibration import (
    AucInterval,
    calibration,
    delong_interval,
    filter_decision,
    within_type_interval,
)


def test_an_overconfident_critic_has_a_large_ece_and_a_calibrated_one_a_small_one():
    rng = np.random.default_rng(1)
    # the demo's failure: confident margins (sigmoid ~0.82) while a third of the answers are right
    labels = rng.random(600) < 1 / 3
    overconfident = calibration(rng.normal(1.5, 0.3, 600), labels)
    assert overconfident.mean_confidence == pytest.approx(0.82, abs=0.02)
    assert overconfident.ece == pytest.approx(
        abs(overconfident.mean_confidence - labels.mean()), abs=0.03
    )
    # calibrated by construction: each label drawn with the probability the margin claims
    margins = rng.normal(0, 2, 5000)
    calibrated = calibration(margins, rng.random(5000) < expit(margins))
    assert calibrated.ece < 0.03
    assert sum(calibrated.bin_rows) == 5000


def test_ece_is_the_row_weighted_gap_per_bin():
    margins = [-3.0, -3.0, 0.0, 0.0, 3.0, 3.0]
    labels = [False, True, True, True, True, True]
    cal = calibration(margins, labels, n_bins=10)
    p_low, p_high = float(expit(-3.0)), float(expit(3.0))
    expected = (2 * abs(0.5 - p_low) + 2 * abs(1.0 - 0.5) + 2 * abs(1.0 - p_high)) / 6
    assert cal.ece == pytest.approx(expected)
    assert cal.bin_rows == [2, 2, 2]


def test_delong_auc_matches_sklearn_and_its_se_matches_a_bootstrap():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(2)
    labels = rng.random(150) < 0.4
    margins = rng.normal(labels * 0.8, 1.0)
    interval = delong_interval(margins, labels)
    assert interval.auc == pytest.approx(roc_auc_score(labels, margins))
    se = (interval.high - interval.low) / (2 * 1.959964)
    boot = bootstrap(
        (labels, margins),
        lambda y, s: roc_auc_score(y, s),
        paired=True,
        vectorized=False,
        n_resamples=600,
        method="percentile",
        random_state=3,
    )
    assert se == pytest.approx(boot.standard_error, rel=0.2)
    assert delong_interval([0.1, 0.2], [True, True]) is None


def test_within_type_auc_weights_each_type_by_its_pairs():
    types = ["add"] * 6 + ["sort"] * 4
    labels = [True, True, False, False, False, True, True, False, False, False]
    margins = [3.0, 1.0, 2.0, 0.0, -1.0, 0.5, -5.0, -4.0, -6.0, -7.0]
    add = roc_auc_score(labels[:6], margins[:6])
    sort = roc_auc_score(labels[6:], margins[6:])
    pooled = within_type_interval(margins, labels, types)
    assert pooled.pairs == 3 * 3 + 1 * 3
    assert pooled.auc == pytest.approx((add * 9 + sort * 3) / 12)
    # a type holding one class contributes no pairs
    one_class = within_type_interval(margins + [9.0], labels + [True], types + ["count"])
    assert one_class.auc == pytest.approx(pooled.auc) and one_class.pairs == 12
    assert within_type_interval([1.0, 2.0], [True, False], ["add", "sort"]) is None


def test_the_filter_rule_needs_an_interval_above_chance_and_can_be_forced():
    good = filter_decision(AucInterval(0.8, 0.7, 0.9, 100), force=False)
    assert good.filtering and "lies above 0.5" in good.reason
    chance = filter_decision(AucInterval(0.55, 0.45, 0.65, 100), force=False)
    assert not chance.filtering and "every row kept" in chance.reason
    assert "includes 0.5" in chance.reason
    inverted = filter_decision(AucInterval(0.2, 0.1, 0.3, 100), force=False)
    assert not inverted.filtering and "lies below 0.5" in inverted.reason
    assert not filter_decision(None, force=False).filtering
    forced = filter_decision(AucInterval(0.55, 0.45, 0.65, 100), force=True)
    assert forced.filtering and "critic_force_filter" in forced.reason
