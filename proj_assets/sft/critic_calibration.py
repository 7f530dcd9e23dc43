"""Is the critic good enough to filter with? Calibration, within-type ranking and the filter rule.

Three things the plain ROC-AUC hides:
- **Calibration.** Read as P(correct), sigmoid(margin) may be far from the accuracy it claims
  (the demo critic: mean 0.82 against 0.33 accuracy). The expected calibration error (ECE) is the
  row-weighted mean |accuracy - mean confidence| over scikit-learn's `calibration_curve` bins.
- **Task type.** Some task types are much harder than others, so a critic that only recognises
  the type already ranks well overall. The within-type AUC asks the question that matters for a
  filter: does a correct answer outrank a wrong one *of the same type*? Pooled over types it is
  the per-type ROC-AUC (scikit-learn) weighted by each type's number of (correct, wrong) pairs;
  `type_only_auc` is what the type alone achieves (each row scored by its type's accuracy).
- **Noise.** A pilot of 100 rows with a third correct gives an AUC that moves by about +-0.1
  between pilots. The interval is DeLong's: the AUC is a two-sample U-statistic whose variance is
  estimated from the placement values (each row's share of the other class it outranks). Chosen
  over a bootstrap because it is closed-form and deterministic (no resampling seed, no
  resample holding a single class), and over Hanley-McNeil because it assumes no distribution of
  the margins. The pooled within-type AUC is a weighted sum of independent per-type AUCs, so its
  variance is the weighted sum of theirs. Coverage and the false-use rate at chance are measured
  by simulation in `proj_tests/sft/test_sft_critic_calibration_coverage.py` (docs/sft.md).

**The filter rule**: the critic filters only when the pilot's within-type AUC interval lies above
0.5. An interval that includes 0.5 (a critic at chance) or lies below it (a critic that prefers the
wrong answers) would only throw data away, so every row is kept and the checks say why;
`sft.critic_force_filter` filters anyway.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from proj_assets.shared.markdown import Markdown, figure_image, new_figure


@dataclass(frozen=True)
class AucInterval:
    auc: float
    low: float
    high: float
    pairs: int  # (correct, wrong) pairs the AUC compares


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per positive, the share of negatives it outranks (ties count half); per negative, the share
    of positives that outrank it (DeLong's structural components V10, V01)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    v10 = (ranks[: len(pos)] - rankdata(pos)) / len(neg)
    v01 = 1.0 - (ranks[len(pos) :] - rankdata(neg)) / len(pos)
    return v10, v01


def _component_variance(values: np.ndarray) -> float:
    """Sample variance of placement values; 0.25 (their largest possible) for a single one."""
    return float(np.var(values, ddof=1)) if len(values) > 1 else 0.25


def _delong(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, int] | None:
    """(AUC, its DeLong variance, pairs), or None when `labels` hold one class."""
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return None
    v10, v01 = _placements(pos, neg)
    variance = _component_variance(v10) / len(pos) + _component_variance(v01) / len(neg)
    return float(v10.mean()), variance, len(pos) * len(neg)


def _interval(auc: float, variance: float, pairs: int, confidence: float) -> AucInterval:
    from scipy.stats import norm

    half = float(norm.ppf(0.5 + confidence / 2)) * math.sqrt(variance)
    return AucInterval(auc, max(0.0, auc - half), min(1.0, auc + half), pairs)


def delong_interval(
    margins: Sequence[float], labels: Sequence[bool], confidence: float = 0.95
) -> AucInterval | None:
    """ROC-AUC with DeLong's normal interval; None when the labels hold one class."""
    found = _delong(np.asarray(margins, dtype=float), np.asarray(labels, dtype=bool))
    return None if found is None else _interval(*found, confidence)


def within_type_interval(
    margins: Sequence[float],
    labels: Sequence[bool],
    task_types: Sequence[str],
    confidence: float = 0.95,
) -> AucInterval | None:
    """The pooled within-type AUC (per-type AUCs weighted by their pairs) with a DeLong interval;
    None when no type holds both classes."""
    scores, truth, types = (np.asarray(v) for v in (margins, labels, task_types))
    parts = [
        found
        for t in sorted(set(task_types))
        if (found := _delong(scores[types == t].astype(float), truth[types == t].astype(bool)))
    ]
    if not parts:
        return None
    total = sum(pairs for _, _, pairs in parts)
    auc = sum(a * pairs for a, _, pairs in parts) / total
    variance = sum(v * (pairs / total) ** 2 for _, v, pairs in parts)
    return _interval(auc, variance, total, confidence)


def type_only_auc(labels: Sequence[bool], task_types: Sequence[str]) -> float | None:
    """ROC-AUC of scoring each row by its task type's accuracy: what the type alone ranks."""
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return None
    accuracy = {
        t: float(np.mean([c for c, tt in zip(labels, task_types, strict=True) if tt == t]))
        for t in set(task_types)
    }
    return float(roc_auc_score(list(labels), [accuracy[t] for t in task_types]))


@dataclass(frozen=True)
class Calibration:
    """sigmoid(margin) read as P(correct), against the program labels, per bin."""

    ece: float
    mean_confidence: float
    accuracy: float
    bin_confidence: list[float]  # mean sigmoid(margin) per non-empty bin
    bin_accuracy: list[float]
    bin_rows: list[int]


def calibration(margins: Sequence[float], labels: Sequence[bool], n_bins: int = 10) -> Calibration:
    """Reliability bins from `sklearn.calibration.calibration_curve` (uniform bins) and the ECE."""
    from scipy.special import expit
    from sklearn.calibration import calibration_curve

    confidence = expit(np.asarray(margins, dtype=float))
    truth = np.asarray(labels, dtype=bool)
    bin_accuracy, bin_confidence = calibration_curve(truth, confidence, n_bins=n_bins)
    # the bins calibration_curve used, to weight each by its rows
    ids = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], confidence)
    rows = np.bincount(ids, minlength=n_bins)
    rows = rows[rows > 0]
    ece = float(np.sum(rows / len(truth) * np.abs(bin_accuracy - bin_confidence)))
    return Calibration(
        ece=ece,
        mean_confidence=float(confidence.mean()),
        accuracy=float(truth.mean()),
        bin_confidence=[float(v) for v in bin_confidence],
        bin_accuracy=[float(v) for v in bin_accuracy],
        bin_rows=[int(v) for v in rows],
    )


def reliability_plot(cal: Calibration, title: str = "critic reliability") -> Markdown:
    """Accuracy against sigmoid(margin) per bin (marker size: rows), with the diagonal."""
    fig, ax = new_figure(5, 4)
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="calibrated")
    ax.plot(cal.bin_confidence, cal.bin_accuracy, "-", color="C0")
    ax.scatter(cal.bin_confidence, cal.bin_accuracy, s=[10 + 4 * r for r in cal.bin_rows])
    ax.set_xlabel("sigmoid(critic margin)")
    ax.set_ylabel("program accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}: ECE {cal.ece:.3f}")
    ax.legend(loc="upper left")
    return figure_image(fig, title)


@dataclass(frozen=True)
class FilterDecision:
    filtering: bool  # the critic's keep flag is applied; False: every row is kept
    reason: str


def filter_decision(interval: AucInterval | None, force: bool) -> FilterDecision:
    """The filter rule (module docstring) applied to the pilot's within-type AUC interval."""
    if interval is None:
        evidence, usable = "within-type AUC not measurable (no type holds both classes)", False
    else:
        shown = f"[{interval.low:.3f}, {interval.high:.3f}]"
        evidence = f"pilot within-type AUC {interval.auc:.3f}, interval {shown}"
        usable = interval.low > 0.5
    if usable:
        return FilterDecision(True, f"critic filters: {evidence} lies above 0.5")
    if force:
        return FilterDecision(
            True, f"critic filters because sft.critic_force_filter is set, although {evidence}"
        )
    if interval is not None:
        evidence += " includes 0.5" if interval.high > 0.5 else " lies below 0.5"
    return FilterDecision(False, f"critic not used, every row kept: {evidence}")


def critic_summary(
    margins: Sequence[float],
    labels: Sequence[bool],
    task_types: Sequence[str],
    force: bool,
    confidence: float = 0.95,
) -> dict:
    """Everything a reviewer needs to judge the critic on labelled rows, as plain values:
    ROC-AUC overall and per type, the pooled within-type AUC with its interval, the type-only AUC,
    calibration (ECE, reliability plot) and the filter decision these rows would give."""
    from proj_assets.sft.critic import auc_by_type

    interval = within_type_interval(margins, labels, task_types, confidence)
    decision = filter_decision(interval, force)
    cal = calibration(margins, labels)
    return {
        "auc_by_type": auc_by_type(margins, labels, task_types),
        "within_type_auc": interval.auc if interval else None,
        "within_type_auc_low": interval.low if interval else None,
        "within_type_auc_high": interval.high if interval else None,
        "within_type_pairs": interval.pairs if interval else 0,
        "type_only_auc": type_only_auc(labels, task_types),
        "ece": cal.ece,
        "mean_confidence": cal.mean_confidence,
        "accuracy": cal.accuracy,
        "reliability": reliability_plot(cal),
        "filtering": decision.filtering,
        "filter_reason": decision.reason,
    }
