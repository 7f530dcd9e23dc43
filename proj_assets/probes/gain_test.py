"""The gate's test of a gain over a reference, with folds (held-out problems) as the unit.

Why not the Student-t lower bound of the fold gains: with a handful of folds whose test sets differ
in size and positives, fold gains of PR-AUC are heavy-tailed and skewed, and the t bound over them
passed null corpora (labels independent of everything) far more often than its nominal 2.5%
(`bench/probe_gate_null.py`). Here the gain is tested by sign-flipping whole folds: under the null
"the candidate is no better than the reference by more than `margin`", a fold's excess gain is as
likely negative as positive, so every pattern of signs over the folds is equally likely, and the
one-sided p-value is the share of sign patterns whose mean excess is at least the observed one
(exact: all 2^k patterns, Monte Carlo above `EXACT_UP_TO` folds). The lower confidence bound is
the test inverted: the largest margin the gains still beat at level `alpha`.

With k folds the smallest p-value is 2^-k, so at least 6 folds are needed to pass at 2.5%.

Why PR-AUC is first corrected for chance (`excess_average_precision`): average precision of a
score that knows nothing is not the base rate. On a small test set it is biased upward, and by how
much depends on the score's ties (a tied block counts as one threshold): a position baseline whose
sentences tie across traces of equal length scores lower by chance than any continuous score, so a
candidate with no signal "beats" it. Each scorer's PR-AUC minus its own mean PR-AUC over the same
label permutations of the test fold is zero in expectation under the null for every scorer, ties
or not; the gains compared are of these excesses.
"""

import itertools
import math

import numpy as np

ALPHA = 0.025  # one-sided, the lower half of a 95% two-sided interval
EXACT_UP_TO = 16
MONTE_CARLO_PATTERNS = 20_000


N_PERMUTATIONS = 2000


def average_precision_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """scikit-learn's `average_precision_score(labels[i], scores)` for every row i of a 0/1 label
    matrix at once (ties in `scores` form one threshold, as there); NaN for a row without
    positives."""
    labels = np.atleast_2d(labels)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ranked = np.asarray(scores, dtype=np.float64)[order]
    block_ends = np.flatnonzero(np.append(np.diff(ranked) != 0, True))
    true_pos = np.cumsum(labels[:, order], axis=1, dtype=np.float64)[:, block_ends]
    positives = true_pos[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = true_pos / (block_ends + 1)
        recall_steps = np.diff(true_pos, axis=1, prepend=0.0) / positives
        return np.where(positives[:, 0] > 0, np.sum(recall_steps * precision, axis=1), np.nan)


def excess_average_precision(
    scores: np.ndarray, labels: np.ndarray, seed: int = 0, n_permutations: int = N_PERMUTATIONS
) -> np.ndarray:
    """PR-AUC of each row of `scores` (replicas x sentences) minus its mean PR-AUC over the same
    `n_permutations` permutations of `labels`: the chance-corrected PR-AUC of each replica. Scorers
    of one fold given the same seed share the permutations, so their difference carries little
    Monte Carlo noise."""
    labels = np.asarray(labels).astype(np.float64)
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.tile(labels, (n_permutations, 1)), axis=1)
    return np.array(
        [
            average_precision_rows(row, labels)[0] - average_precision_rows(row, shuffled).mean()
            for row in np.atleast_2d(scores)
        ]
    )


def _sign_patterns(k: int, seed: int) -> np.ndarray:
    if k <= EXACT_UP_TO:
        return np.array(list(itertools.product((1.0, -1.0), repeat=k)))
    rng = np.random.default_rng(seed)
    random = rng.choice((1.0, -1.0), size=(MONTE_CARLO_PATTERNS - 1, k))
    return np.vstack([np.ones(k), random])  # the observed pattern counts once


def sign_flip_pvalue(gains: np.ndarray, margin: float = 0.0, seed: int = 0) -> float:
    """One-sided p-value of "mean fold gain <= margin" by sign-flipping folds; NaN without folds."""
    excess = np.asarray(gains, dtype=np.float64) - margin
    if excess.size == 0 or not np.all(np.isfinite(excess)):
        return math.nan
    means = _sign_patterns(excess.size, seed) @ np.abs(excess) / excess.size
    return float(np.mean(means >= excess.mean() - 1e-12))


def sign_flip_lower_bound(gains: np.ndarray, alpha: float = ALPHA, seed: int = 0) -> float:
    """The largest margin m with sign_flip_pvalue(gains, m) <= alpha (the inverted test); -inf when
    no margin is rejected (too few folds), NaN without finite gains."""
    gains = np.asarray(gains, dtype=np.float64)
    if gains.size == 0 or not np.all(np.isfinite(gains)):
        return math.nan
    if 2.0**-gains.size > alpha:
        return -math.inf
    low, high = float(gains.min()) - 1.0, float(gains.max())  # rejected at low, never at high
    for _ in range(40):  # the p-value rises with the margin: bisect to ~1e-12 of the range
        mid = (low + high) / 2
        if sign_flip_pvalue(gains, mid, seed) <= alpha:
            low = mid
        else:
            high = mid
    return low


def gain_test(gains: np.ndarray, margin: float, alpha: float = ALPHA) -> dict:
    """Mean fold gain, its sign-flip p-value against `margin`, the inverted lower bound and whether
    the gain beats the margin at level `alpha`."""
    gains = np.asarray(gains, dtype=np.float64)
    p_value = sign_flip_pvalue(gains, margin)
    return {
        "mean": float(gains.mean()) if gains.size else math.nan,
        "p_value": p_value,
        "lower_bound": sign_flip_lower_bound(gains, alpha),
        "passed": bool(np.isfinite(p_value) and p_value <= alpha),
    }
