"""Simulated coverage of the critic's AUC interval, and how often a critic at chance would be
used to filter (the filter rule's error rate). Pilot-sized samples: 100 rows, a third correct
(the demo pilot's accuracy), margins binormal with known AUC Phi(d / sqrt(2))."""

import numpy as np
import pytest
from scipy.stats import norm

from proj_assets.sft.critic_calibration import (
    delong_interval,
    filter_decision,
    within_type_interval,
)

N_SIM, N_ROWS, P_CORRECT = 400, 100, 1 / 3


def _pilot(rng, separation: float, n_types: int = 1):
    labels = rng.random(N_ROWS) < P_CORRECT
    types = np.array([f"t{i % n_types}" for i in range(N_ROWS)])
    type_shift = np.array([int(t[1:]) for t in types]) * 2.0  # types differ; the critic sees it
    return rng.normal(labels * separation, 1.0) + type_shift, labels, types


@pytest.mark.parametrize("separation", [0.0, 0.8])
def test_delong_interval_covers_the_true_auc_about_95_percent(separation):
    rng = np.random.default_rng(10)
    true_auc = norm.cdf(separation / np.sqrt(2))
    covered = 0
    for _ in range(N_SIM):
        margins, labels, _types = _pilot(rng, separation)
        interval = delong_interval(margins, labels)
        covered += interval.low <= true_auc <= interval.high
    # 400 simulations: a binomial SE of 1.1 points around 95%
    assert 0.92 <= covered / N_SIM <= 0.98


def test_within_type_interval_covers_the_true_auc_across_types():
    rng = np.random.default_rng(11)
    true_auc = norm.cdf(0.8 / np.sqrt(2))
    covered = sum(
        (i := within_type_interval(*_pilot(rng, 0.8, n_types=3))).low <= true_auc <= i.high
        for _ in range(N_SIM)
    )
    assert 0.92 <= covered / N_SIM <= 0.98


def test_a_critic_at_chance_is_rarely_used_and_a_useful_one_mostly_is():
    rng = np.random.default_rng(12)

    def used(separation: float) -> float:
        picks = [
            filter_decision(within_type_interval(*_pilot(rng, separation, 3)), False).filtering
            for _ in range(N_SIM)
        ]
        return float(np.mean(picks))

    assert used(0.0) <= 0.05  # one-sided: about 2.5% of chance critics pass the rule
    assert used(1.0) >= 0.9  # AUC 0.76 on a 100-row pilot is found nearly always
