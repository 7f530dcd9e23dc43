"""The gate is honest: an adapter fine-tuned only on wrong answers passes the study's stage gate
(it learns the answer format) but is not reported as beating the few-shot base; the three arms
answer the same items, rows carry their input versions, and once the adapter changes the old
evaluation is refused as stale."""

import json
import random

import dagster as dg
import polars as pl
import pytest

from proj_assets.sft import keys as k
from proj_assets.sft.dataset import find_test_overlap
from proj_assets.sft.evaluation import ARMS, beats
from proj_assets.sft.tasks import corrupt_answer, lenient_match, make_instructions, strict_match
from proj_tests.definitions_helpers import demo_profile, with_settings
from proj_tests.sft.conftest import SftRunner, failure_message, stand_in

# The demo base model pretrained here (about 2 minutes on 2 shared cores): the tiny test model
# answers nothing right in any arm, where every verdict is a vacuous "no".
pytestmark = pytest.mark.slow


def wrong_answer_rows(n: int, seed: int, test_instructions: list[str]) -> pl.DataFrame:
    """`n` training rows in the bare answer format whose every answer is wrong, none sharing an
    n-gram with the test set (the training set's own decontamination rule)."""
    rng = random.Random(seed)
    items = make_instructions(n, seed)
    rows = pl.DataFrame(
        {
            "example_id": [f"wrong-{i:04d}" for i in range(n)],
            "task_type": [i.task_type for i in items],
            "instruction": [i.instruction for i in items],
            "reference": [i.reference for i in items],
            "completion": [corrupt_answer(i, rng) for i in items],
        }
    )
    overlap = find_test_overlap(rows, test_instructions, 8)["example_id"]
    return rows.filter(~pl.col("example_id").is_in(overlap.to_list()))


def evaluations(run) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in run.get_asset_check_evaluations()}


def test_wrong_answer_fine_tune_does_not_beat_the_few_shot_base(tmp_path, instance):
    # the demo profile (its base model, formats, prompts, LoRA), 100 test items, one thread
    profile = with_settings(demo_profile(), sft={"test_per_type": 20}, compute={"threads": 1})
    runner = SftRunner(profile, tmp_path / "out", instance)
    runner([k.BASE_MODEL, k.TEST_INSTRUCTIONS])
    warehouse = runner.resources["warehouse"]
    test_set = warehouse.query("select instruction from sft_data.test_instructions")
    wrong = wrong_answer_rows(200, 31, test_set["instruction"].to_list())
    assert wrong.height >= 150
    assert not any(
        strict_match(c, r) or lenient_match(c, r)
        for c, r in zip(wrong["completion"], wrong["reference"], strict=True)
    )
    result = runner(
        [k.TRAINING_SET, k.ADAPTER, k.PAIRED, k.STATS],
        stand_ins=[stand_in(k.TRAINING_SET, wrong)],
    )
    checks = evaluations(result)
    assert checks["prompt_tokens_masked"].passed and checks["no_test_overlap"].passed
    gate, few_shot = checks["stage_gate"], checks["beats_few_shot"]
    stats = result.output_for_node("sft__eval__stats")
    overall = stats.filter(pl.col("scope") == "overall").row(0, named=True)
    # measured: base 9%, few-shot 37%, SFT 23% (one thread, deterministic). The wrong answers
    # still teach the bare format, so the study's stage gate passes; the few-shot base, prompted
    # as the data were generated, is more accurate, and beats_few_shot says so.
    assert gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR, gate.description
    assert not few_shot.passed and few_shot.severity == dg.AssetCheckSeverity.WARN
    assert overall["few_shot_accuracy"] > overall["sft_accuracy"] > overall["base_accuracy"]
    alpha = profile.sft.stage_gate_alpha
    assert (gate.passed, few_shot.passed) == (
        beats(stats, alpha, "base")[0],
        beats(stats, alpha, "few_shot")[0],
    )
    meta = few_shot.metadata
    assert {f"{arm}_accuracy" for arm in ARMS} <= set(meta)
    assert meta["baseline"].value == "few_shot" and isinstance(meta["cohens_h"].value, str)

    paired = result.output_for_node("sft__eval__paired_results")
    assert {f"{arm}_correct" for arm in ARMS} <= set(
        paired.columns
    ) and paired.height == 5 * profile.sft.test_per_type
    adapter_meta = result.asset_materializations_for_node("sft__model__adapter")[0].metadata
    versions = json.loads(paired["input_versions"][0])
    assert versions["adapter"] == adapter_meta["adapter_hash"].value
    assert set(versions) == {
        "base_model_revision",
        "adapter",
        "test_set",
        "prompt_eval",
        "prompt_few_shot",
        "greedy",
        "code",
    }
    assert (
        stats["input_fingerprint"].unique().to_list()
        == paired["input_fingerprint"].unique().to_list()
    )
    stats_event = result.asset_materializations_for_node("sft__eval__stats")[0]
    assert stats_event.tags["dagster/data_version"]  # a content version, not the run's

    # a different adapter (one wrong row fewer): the stored evaluation is no longer current, so
    # stats refuses it and names the input that changed, and nothing is written
    fewer = wrong.head(wrong.height - 1)
    runner([k.TRAINING_SET, k.ADAPTER], stand_ins=[stand_in(k.TRAINING_SET, fewer)])
    stale = runner([k.STATS], raise_on_error=False)
    assert not stale.success
    assert "no rows of the current inputs" in failure_message(stale)
    assert "changed: adapter" in failure_message(stale)
    assert warehouse.query("select count(*) as n from sft_eval.stats")["n"][0] == stats.height
