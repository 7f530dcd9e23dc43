"""The per-shard QC gates and the completion-mode gate FAIL on bad inputs and block later runs.

Same pattern as test_sft_gates: stand-in upstream assets (same key, same partitions, same I/O
manager), the real checks and the real downstream assets, one real temporary instance.
"""

import shutil

import dagster as dg
import polars as pl

from proj_assets.shared.conventions import table_metadata
from proj_assets.partitions import sft_shard_partitions
from proj_assets.sft import assets, checks
from proj_assets.sft import keys as k
from proj_tests.sft.conftest import selected_pilot, stand_in_pilot

SHARD_NAMES = ["shard_00", "shard_01"]


def crafted_shard(shard: str, n: int, n_runaway: int, n_limit: int) -> pl.DataFrame:
    return pl.DataFrame({
        "example_id": [f"{shard}-{i:06d}" for i in range(n)], "task_type": ["add"] * n,
        "instruction": [f"Add {i} and 2." for i in range(n)],
        "completion": [f" {i + 2}\nInstruction: Add" if i < n_runaway else f" {i + 2}" for i in range(n)],
        "finish_reason": ["length" if i < n_limit else "stop" for i in range(n)],
        "n_tokens": [24 if i < n_limit else 3 for i in range(n)],
        "runaway": [i < n_runaway for i in range(n)], "token_limit": [i < n_limit for i in range(n)],
        "answer_correct": [True] * n, "shard": [shard] * n,
    })


# demo thresholds: runaway < 5%, token limit < 10%. shard_00 is clean; shard_01 has 4/20 runaway (20%)
SHARD_DATA = {"shard_00": crafted_shard("shard_00", 20, 0, 1), "shard_01": crafted_shard("shard_01", 20, 4, 1)}


def stand_in_shards() -> dg.AssetsDefinition:
    @dg.asset(key=k.SHARDS, group_name="sft", partitions_def=sft_shard_partitions,
              metadata=table_metadata(k.SHARDS, partition_expr="shard"))
    def scale_shards(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return SHARD_DATA[context.partition_key]

    return scale_shards


def stand_in_critic() -> dg.AssetsDefinition:
    @dg.asset(key=k.CRITIC, group_name="sft", partitions_def=sft_shard_partitions,
              metadata=table_metadata(k.CRITIC, partition_expr="shard"))
    def critic_scores(context: dg.AssetExecutionContext) -> pl.DataFrame:
        df = SHARD_DATA[context.partition_key]
        return df.select("example_id", "shard").with_columns(
            pl.lit(1.0).alias("critic_margin"), pl.lit(0.0).alias("critic_threshold"), pl.lit(True).alias("critic_keep"))

    return critic_scores


def stand_in_test_instructions() -> dg.AssetsDefinition:
    @dg.asset(key=k.TEST_INSTRUCTIONS, group_name="sft", metadata=table_metadata(k.TEST_INSTRUCTIONS))
    def test_instructions() -> pl.DataFrame:
        return pl.DataFrame({"item_id": [0], "task_type": ["add"], "instruction": ["Add 500 and 600."],
                             "reference": ["1100"]})

    return test_instructions


def step_failure_message(run) -> str:
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    return str(failure.event_specific_data.error)


def test_bad_shard_fails_its_gates_and_blocks_critic_and_training_set(resources):
    shards, critic, test_instr = stand_in_shards(), stand_in_critic(), stand_in_test_instructions()
    pilot = stand_in_pilot(pl.DataFrame({"example_id": ["pilot-0", "pilot-1"], "critic_margin": [1.0, -1.0],
                                         "answer_correct": [True, False]}))
    shard_checks = [checks.shard_runaway_rate_below_max, checks.shard_token_limit_rate_below_max]
    with dg.instance_for_test() as instance:
        evals = {}
        for shard in SHARD_NAMES:
            result = dg.materialize([shards, *shard_checks], partition_key=shard, instance=instance,
                                    resources=resources, raise_on_error=False)
            evals[shard] = {e.check_name: e for e in result.get_asset_check_evaluations()}
            assert set(evals[shard]) == {k.RUNAWAY_CHECK, k.TOKEN_LIMIT_CHECK}

        # shard_00 passes both gates; shard_01 fails the runaway gate with measured vs threshold
        assert all(e.passed for e in evals["shard_00"].values())
        bad = evals["shard_01"][k.RUNAWAY_CHECK]
        assert not bad.passed
        assert bad.metadata["measured"].value == 0.2 and bad.metadata["threshold"].value == 0.05
        assert evals["shard_01"][k.TOKEN_LIMIT_CHECK].passed  # 1/20 = 5% is below 10%
        assert bad.severity == dg.AssetCheckSeverity.ERROR

        # critic_scores for shard_01 refuses in a later run, naming the check, the partition and the rate
        assert dg.materialize([pilot], partition_key=selected_pilot(instance), instance=instance,
                              resources=resources).success
        run = dg.materialize([assets.critic_scores, shards, pilot], selection=[dg.AssetKey(k.CRITIC)],
                             partition_key="shard_01", instance=instance, resources=resources,
                             raise_on_error=False)
        assert not run.success
        message = step_failure_message(run)
        assert "refusing to run" in message and k.RUNAWAY_CHECK in message
        assert "'shard_01'" in message and "0.2" in message
        assert not instance.get_latest_materialization_event(dg.AssetKey(k.CRITIC))

        # shard_00 gets past the shard gates (it may stop later at the base-model gate: no model here)
        run = dg.materialize([assets.critic_scores, shards, pilot], selection=[dg.AssetKey(k.CRITIC)],
                             partition_key="shard_00", instance=instance, resources=resources,
                             raise_on_error=False)
        if not run.success:
            message = step_failure_message(run)
            assert k.RUNAWAY_CHECK not in message and k.TOKEN_LIMIT_CHECK not in message
            assert "shard_00" not in message

        # training_set refuses while any shard's gate failed (all its inputs exist, so only the gate stops it)
        for shard in SHARD_NAMES:
            assert dg.materialize([critic], partition_key=shard, instance=instance, resources=resources).success
        assert dg.materialize([test_instr], instance=instance, resources=resources).success
        run = dg.materialize([assets.training_set, shards, critic, test_instr],
                             selection=[dg.AssetKey(k.TRAINING_SET)], instance=instance, resources=resources,
                             raise_on_error=False)
        assert not run.success
        message = step_failure_message(run)
        assert "refusing to run" in message and k.RUNAWAY_CHECK in message and "'shard_01'" in message
        assert "'shard_00'" not in message
        assert not instance.get_latest_materialization_event(dg.AssetKey(k.TRAINING_SET))


def test_tokenizer_that_appends_eos_fails_completion_mode_and_blocks_the_pilot(
        tiny_profile, untrained_model_dir, tmp_path):
    from tokenizers import processors

    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile
    from proj_assets.sft.demo_model import EOS
    from proj_resources.models import load_tokenizer

    # a model folder whose tokenizer appends EOS to every encoding: not plain continuation
    folder = tmp_path / "appends_eos"
    shutil.copytree(untrained_model_dir, folder)
    tok = load_tokenizer(folder)
    eos_id = tok.convert_tokens_to_ids(EOS)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, eos_id)])
    tok.save_pretrained(folder)
    reloaded = load_tokenizer(folder)
    assert reloaded("Add 1 and 2.")["input_ids"][-1] == eos_id  # the break survives save/load

    @dg.asset(key=k.BASE_MODEL, group_name="sft")
    def base_model() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(folder))})

    resources = build_resources(load_profile(str(tiny_profile)), tmp_path / "out")
    with dg.instance_for_test() as instance:
        result = dg.materialize([base_model, checks.completion_mode_only], instance=instance,
                                resources=resources, raise_on_error=False)
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.check_name == "completion_mode_only" and not evaluation.passed
        assert evaluation.metadata["measured"].value == 3  # all 3 sentinels
        assert evaluation.metadata["threshold"].value == 0
        assert f"tokenizer adds ids [{eos_id}]" in evaluation.metadata["offending_sample"].value

        # a later run of the pilot refuses, naming the check
        run = dg.materialize([assets.pilot_generations, base_model], selection=[dg.AssetKey(k.PILOT)],
                             partition_key=selected_pilot(instance), instance=instance, resources=resources, raise_on_error=False)
        assert not run.success
        message = step_failure_message(run)
        assert "refusing to run" in message and "completion_mode_only" in message
        assert not instance.get_latest_materialization_event(dg.AssetKey(k.PILOT))
