"""Paired statistics equal scipy on known tables; the stage gate decides from them."""

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from proj_assets.sft.evaluation import judge, paired_counts, paired_stats, stage_gate


def paired_frame(table: dict[str, tuple[int, int, int, int]]) -> pl.DataFrame:
    """Rows from per-type (both right, only base right, only sft right, both wrong) counts."""
    rows = []
    for task_type, (a, b, c, d) in table.items():
        for base, sft, n in (
            (True, True, a),
            (True, False, b),
            (False, True, c),
            (False, False, d),
        ):
            rows += [{"task_type": task_type, "base_correct": base, "sft_correct": sft}] * n
    return pl.DataFrame(rows)


TABLE = {"add": (10, 2, 12, 16), "sort": (20, 5, 6, 9), "upper": (5, 0, 9, 26)}


def test_statistics_match_scipy():
    out = paired_stats(paired_frame(TABLE))
    overall = out.filter(pl.col("scope") == "overall").row(0, named=True)
    b, c = 7, 27
    assert overall["mcnemar_p_vs_base"] == pytest.approx(
        sps.binomtest(b, b + c, 0.5).pvalue
    )  # exact McNemar
    base_ok, sft_ok, n = 35 + 7, 35 + 27, 120
    ci = sps.binomtest(sft_ok, n).proportion_ci(0.95, method="wilson")
    assert (overall["sft_ci_low"], overall["sft_ci_high"]) == pytest.approx((ci.low, ci.high))
    h = 2 * math.asin(math.sqrt(sft_ok / n)) - 2 * math.asin(math.sqrt(base_ok / n))
    assert overall["cohens_h_vs_base"] == pytest.approx(h)
    per_type = out.filter(pl.col("scope") != "overall").sort("scope")
    raw = [
        sps.binomtest(min(v[1], v[2]), v[1] + v[2], 0.5).pvalue for _, v in sorted(TABLE.items())
    ]
    assert per_type["mcnemar_p_vs_base"].to_list() == pytest.approx(raw)
    assert per_type["p_bh_vs_base"].to_list() == pytest.approx(
        list(sps.false_discovery_control(np.array(raw), method="bh"))
    )


def test_stage_gate_needs_significance_and_direction():
    better = paired_stats(paired_frame({"add": (10, 1, 20, 9)}))
    assert stage_gate(better, 0.01)[0]
    worse = paired_stats(paired_frame({"add": (10, 20, 1, 9)}))
    assert not stage_gate(worse, 0.01)[0]  # significant, but the adapter is worse
    tie = paired_stats(paired_frame({"add": (10, 3, 4, 23)}))
    assert not stage_gate(tie, 0.01)[0]


def test_judging_by_program_and_by_critic():
    verdicts = judge(
        [" 42", " 41\n###", " K O", " The answer is 42."],
        ["42", "42", None, "42"],
        critic=lambda idx: [True] * len(idx),
    )
    assert verdicts["strict"] == [True, False, True, False] and verdicts["lenient"] == [
        True,
        False,
        True,
        True,
    ]
    assert verdicts["judged_by"] == ["program", "program", "critic", "program"]
    with pytest.raises(ValueError, match="no critic"):
        judge([" x"], [None])
    assert paired_counts([True, True, False, False], [True, False, True, False]) == (1, 1, 1, 1)
