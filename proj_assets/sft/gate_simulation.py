"""How often the stage gate's test says "SFT is better" when it is not, and the coverage of the
per-arm Wilson intervals, on simulated paired outcomes (pure; bench/sft_gate_null.py prints them,
proj_tests/sft/test_sft_three_arms_stats.py asserts them at a smaller size).

Paired outcomes are drawn as an evaluation produces them: every test item has its own difficulty
(the chance a model answers it, Beta-distributed around `mean_accuracy`), shared by both arms, so
their answers are correlated item by item as a real baseline's and adapter's are; the SFT arm's
chance is the item's plus `shift` (0: no true difference, the null).
"""

import numpy as np
import polars as pl

from proj_assets.sft.evaluation import beats, paired_stats
from proj_assets.sft.tasks import TASK_TYPES


def paired_outcomes(
    rng: np.random.Generator, n: int, shift: float = 0.0, mean_accuracy: float = 0.35
) -> pl.DataFrame:
    """`n` items over the task types with `base_correct` and `sft_correct` drawn as above."""
    concentration = 2.0
    difficulty = rng.beta(mean_accuracy * concentration, (1 - mean_accuracy) * concentration, n)
    return pl.DataFrame(
        {
            "task_type": [TASK_TYPES[i % len(TASK_TYPES)] for i in range(n)],
            "base_correct": rng.random(n) < difficulty,
            "sft_correct": rng.random(n) < np.clip(difficulty + shift, 0, 1),
        }
    )


def gate_pass_rate(
    reps: int, n: int, alphas: tuple[float, ...], shift: float = 0.0, seed: int = 0
) -> dict[float, int]:
    """For each alpha, in how many of `reps` simulated evaluations `evaluation.beats` (the stage
    gate's rule: exact McNemar p < alpha and SFT more accurate) passes."""
    rng = np.random.default_rng(seed)
    passes = dict.fromkeys(alphas, 0)
    for _ in range(reps):
        stats = paired_stats(paired_outcomes(rng, n, shift))
        for alpha in alphas:
            passes[alpha] += beats(stats, alpha)[0]
    return passes


def wilson_coverage(reps: int, n: int, accuracy: float, seed: int = 0) -> float:
    """Share of `reps` binomial samples of size `n` whose Wilson 95% interval (as `paired_stats`
    computes it, statsmodels) holds the true `accuracy`."""
    from statsmodels.stats.proportion import proportion_confint

    correct = np.random.default_rng(seed).binomial(n, accuracy, reps)
    low, high = proportion_confint(correct, n, alpha=0.05, method="wilson")
    return float(np.mean((low <= accuracy) & (accuracy <= high)))
