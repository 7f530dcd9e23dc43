"""Three-arm paired statistics on constructed outcomes (equal to scipy), the two verdicts drawn
from them, the input versions that make rows current, and the gate's error rate on null data."""

import math

import dagster as dg
import polars as pl
import pytest
from scipy import stats as sps

from proj_assets.sft.assets_eval import current_eval_rows
from proj_assets.sft.evaluation import beats, input_versions, paired_stats, prompt_builders
from proj_assets.sft.gate_simulation import gate_pass_rate, wilson_coverage
from proj_assets.sft.settings import SftSettings
from proj_resources.fingerprints import stamp_inputs


def three_arms(n: int, base: set[int], few_shot: set[int], sft: set[int]) -> pl.DataFrame:
    """`n` items of one type; each arm is right exactly on the item indices given."""
    return pl.DataFrame(
        {
            "task_type": ["add"] * n,
            **{
                f"{arm}_correct": [i in right for i in range(n)]
                for arm, right in (("base", base), ("few_shot", few_shot), ("sft", sft))
            },
        }
    )


# 100 items: zero-shot base right on 0-9, few-shot base on 0-39, SFT on 0-29 and 40-47, so SFT
# (38%) beats zero-shot (10%) by far and trails few-shot (40%).
ITEMS = three_arms(100, set(range(10)), set(range(40)), set(range(30)) | set(range(40, 48)))


def test_each_comparison_equals_scipy_on_the_same_items():
    overall = paired_stats(ITEMS).filter(pl.col("scope") == "overall").row(0, named=True)
    assert (overall["base_correct"], overall["few_shot_correct"], overall["sft_correct"]) == (
        10,
        40,
        38,
    )
    for baseline, only_ref, only_sft in (("base", 0, 28), ("few_shot", 10, 8)):
        assert overall[f"only_baseline_correct_vs_{baseline}"] == only_ref
        assert overall[f"only_sft_correct_vs_{baseline}"] == only_sft
        exact = sps.binomtest(only_ref, only_ref + only_sft, 0.5).pvalue
        assert overall[f"mcnemar_p_vs_{baseline}"] == pytest.approx(exact)
        ref = overall[f"{baseline}_accuracy"]
        h = 2 * math.asin(math.sqrt(0.38)) - 2 * math.asin(math.sqrt(ref))
        assert overall[f"cohens_h_vs_{baseline}"] == pytest.approx(h)
    ci = sps.binomtest(40, 100).proportion_ci(0.95, method="wilson")
    assert (overall["few_shot_ci_low"], overall["few_shot_ci_high"]) == pytest.approx(
        (ci.low, ci.high)
    )


def test_sft_passes_the_stage_gate_but_does_not_beat_few_shot():
    stats = paired_stats(ITEMS)
    assert beats(stats, 0.01, "base")[0]
    assert not beats(stats, 0.01, "few_shot")[0]  # 8 vs 10 discordant items, and SFT is worse
    better = three_arms(100, set(range(10)), set(range(20)), set(range(60)))
    assert beats(paired_stats(better), 0.01, "few_shot")[0]
    without_few_shot = paired_stats(ITEMS.drop("few_shot_correct"))
    with pytest.raises(ValueError, match="no comparison with 'few_shot'"):
        beats(without_few_shot, 0.01, "few_shot")


def test_few_shot_arm_uses_the_generation_prompt_and_versions_name_what_changed():
    cfg = SftSettings(n_shards=1, prompt_shots=2, critic_shots=2, sft_prompt_shots=0)
    builders = prompt_builders(cfg)
    assert builders["few_shot"].answer_prompt("Add 1 and 2.").count("Instruction:") == 3
    assert builders["base"].answer_prompt("Add 1 and 2.") == builders["sft"].answer_prompt(
        "Add 1 and 2."
    )
    now = input_versions(cfg, "rev1", "adapterA", "test1")
    more_shots = input_versions(
        cfg.model_copy(update={"prompt_shots": 3}), "rev1", "adapterA", "test1"
    )
    assert {k for k in now if now[k] != more_shots[k]} == {"prompt_few_shot"}
    other_adapter = input_versions(cfg, "rev1", "adapterB", "test1")
    rows = pl.concat(
        [
            stamp_inputs(ITEMS.head(3), other_adapter),  # an earlier evaluation's rows
            stamp_inputs(ITEMS.tail(5), now),
        ]
    )
    assert current_eval_rows(rows, now, "sft/eval/paired_results").height == 5
    with pytest.raises(dg.Failure, match=r"no rows of the current inputs.*changed: adapter"):
        current_eval_rows(rows.head(3), now, "sft/eval/paired_results")


def test_gate_false_positive_rate_on_null_data_is_at_most_alpha_and_it_detects_a_real_gain():
    reps, n = 1000, 200
    null = gate_pass_rate(reps, n, (0.05, 0.01), shift=0.0, seed=1)
    # exact McNemar is conservative and the gate also needs SFT ahead: the rate is at most
    # alpha / 2; allow the binomial noise of 1000 draws (upper 0.999 quantile at alpha)
    assert null[0.05] <= sps.binom.ppf(0.999, reps, 0.05)
    assert null[0.01] <= sps.binom.ppf(0.999, reps, 0.01)
    gain = gate_pass_rate(100, n, (0.05,), shift=0.15, seed=2)
    assert gain[0.05] >= 80  # the same rule is not blind: a 15-point gain mostly passes (93%)
    assert wilson_coverage(4000, n, 0.1) == pytest.approx(0.95, abs=0.015)
