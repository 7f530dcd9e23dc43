"""The per-shard QC gates and the completion-mode gate FAIL on bad inputs and block later runs.

Same pattern as test_sft_gates: stand-in upstream assets (same key, same partitions, same I/O
manager) in the whole sft domain, its real checks and real downstream assets, one real temporary
instance.
"""

import shutil

import dagster as dg
import polars as pl

from proj_assets.partitions import sft_shard_partitions
from proj_assets.sft import keys as k
from proj_tests.sft.conftest import (
    crafted_pilot,
    failure_message,
    refused_gates,
    stand_in,
    stand_in_base_model,
    stand_in_pilot,
)

SHARD_NAMES = ["shard_00", "shard_01"]


def crafted_shard(shard: str, n: int, n_runaway: int, n_limit: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "example_id": [f"{shard}-{i:06d}" for i in range(n)],
            "task_type": ["add"] * n,
            "instruction": [f"Add {i} and 2." for i in range(n)],
            "completion": [
                f" {i + 2}\nInstruction: Add" if i < n_runaway else f" {i + 2}" for i in range(n)
            ],
            "finish_reason": ["length" if i < n_limit else "stop" for i in range(n)],
            "n_tokens": [24 if i < n_limit else 3 for i in range(n)],
            "runaway": [i < n_runaway for i in range(n)],
            "token_limit": [i < n_limit for i in range(n)],
            "answer_correct": [True] * n,
            "shard": [shard] * n,
        }
    )


# demo thresholds: runaway < 5%, token limit < 10%. shard_00 is clean; shard_01 has 4/20 runaway (20%)
SHARD_DATA = {
    "shard_00": crafted_shard("shard_00", 20, 0, 1),
    "shard_01": crafted_shard("shard_01", 20, 4, 1),
}
SHARD_PARTITIONS = sft_shard_partitions(len(SHARD_DATA))
STAND_IN_SHARDS = stand_in(k.SHARDS, SHARD_DATA.get, SHARD_PARTITIONS, "shard")


def keep_all(shard_rows: pl.DataFrame) -> pl.DataFrame:
    """Critic scores of `shard_rows` that keep every example (the critic is not under test)."""
    return shard_rows.select("example_id", "shard", "task_type", "answer_correct").with_columns(
        pl.lit(1.0).alias("critic_margin"),
        pl.lit(0.0).alias("critic_threshold"),
        pl.lit(True).alias("critic_keep"),
    )


def passing_critic(shard: str) -> pl.DataFrame:
    return keep_all(SHARD_DATA[shard])


STAND_IN_CRITIC = stand_in(k.CRITIC, passing_critic, SHARD_PARTITIONS, "shard")
STAND_IN_TEST_SET = stand_in(
    k.TEST_INSTRUCTIONS,
    pl.DataFrame(
        {
            "item_id": [0],
            "task_type": ["add"],
            "instruction": ["Add 500 and 600."],
            "reference": ["1100"],
        }
    ),
)
NO_BASE_MODEL = (
    "sft/model/base_model:completion_mode_only has no result yet: materialize its asset first"
)


def test_bad_shard_fails_its_gates_and_blocks_critic_and_training_set(demo_runner):
    run = demo_runner
    evals = {}
    for shard in SHARD_NAMES:
        result = run([k.SHARDS], shard, [STAND_IN_SHARDS], raise_on_error=False)
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
    pilot = stand_in_pilot(crafted_pilot(20, 0, 0))  # a clean pilot: its gates pass
    assert run([k.PILOT], run.selected_pilot(), [pilot]).success
    critic = run([k.CRITIC], "shard_01", [STAND_IN_SHARDS, pilot], raise_on_error=False)
    assert not critic.success and "refusing to run" in failure_message(critic)
    (shard_gate,) = [g for g in refused_gates(critic) if g != NO_BASE_MODEL]
    assert shard_gate.startswith(
        f"sft/data/scale_shards:{k.RUNAWAY_CHECK} partition 'shard_01' failed"
    )
    assert "'measured': 0.2" in shard_gate
    assert not run.instance.get_latest_materialization_event(dg.AssetKey(k.CRITIC))

    # shard_00 gets past the shard and pilot gates: only the base-model gate is open (no model here)
    critic = run([k.CRITIC], "shard_00", [STAND_IN_SHARDS, pilot], raise_on_error=False)
    assert refused_gates(critic) == [NO_BASE_MODEL]

    # training_set refuses while any shard's gate failed (all its inputs exist, so only the gate stops it)
    for shard in SHARD_NAMES:
        assert run([k.CRITIC], shard, [STAND_IN_CRITIC]).success
    assert run([k.TEST_INSTRUCTIONS], stand_ins=[STAND_IN_TEST_SET]).success
    training = run(
        [k.TRAINING_SET],
        stand_ins=[STAND_IN_SHARDS, STAND_IN_CRITIC, STAND_IN_TEST_SET],
        raise_on_error=False,
    )
    assert not training.success and "refusing to run" in failure_message(training)
    (shard_gate,) = refused_gates(training)
    assert shard_gate.startswith(
        f"sft/data/scale_shards:{k.RUNAWAY_CHECK} partition 'shard_01' failed"
    )
    assert not run.instance.get_latest_materialization_event(dg.AssetKey(k.TRAINING_SET))


def test_tokenizer_that_appends_eos_fails_completion_mode_and_blocks_the_pilot(
    tiny_runner, untrained_model_dir, tmp_path
):
    from tokenizers import processors

    from proj_assets.sft.demo_model import EOS
    from proj_resources.models import load_tokenizer

    # a model folder whose tokenizer appends EOS to every encoding: not plain continuation
    folder = tmp_path / "appends_eos"
    shutil.copytree(untrained_model_dir, folder)
    tok = load_tokenizer(folder)
    eos_id = tok.convert_tokens_to_ids(EOS)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, eos_id)]
    )
    tok.save_pretrained(folder)
    reloaded = load_tokenizer(folder)
    assert reloaded("Add 1 and 2.")["input_ids"][-1] == eos_id  # the break survives save/load

    base_model = stand_in_base_model(folder)
    result = tiny_runner([k.BASE_MODEL], stand_ins=[base_model], raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "completion_mode_only" and not evaluation.passed
    assert evaluation.metadata["measured"].value == 3  # all 3 sentinels
    assert evaluation.metadata["threshold"].value == 0
    assert f"tokenizer adds ids [{eos_id}]" in evaluation.metadata["offending_sample"].value

    # a later run of the pilot refuses, naming the check
    run = tiny_runner([k.PILOT], tiny_runner.selected_pilot(), [base_model], raise_on_error=False)
    assert not run.success and "refusing to run" in failure_message(run)
    (gate,) = refused_gates(run)
    assert (
        gate.startswith("sft/model/base_model:completion_mode_only failed")
        and "'measured': 3" in gate
    )
    assert not tiny_runner.instance.get_latest_materialization_event(dg.AssetKey(k.PILOT))


def test_training_set_needs_every_shard_past_its_gates(demo_runner):
    stand_ins = [STAND_IN_SHARDS, STAND_IN_CRITIC, STAND_IN_TEST_SET]
    assert demo_runner(
        [k.SHARDS, k.CRITIC], "shard_00", stand_ins
    ).success  # a clean shard; shard_01 never ran
    assert demo_runner([k.TEST_INSTRUCTIONS], stand_ins=stand_ins).success
    run = demo_runner([k.TRAINING_SET], stand_ins=stand_ins, raise_on_error=False)
    assert refused_gates(run) == [
        f"sft/data/scale_shards:{check} partition 'shard_01' has no result yet: "
        "materialize its asset first"
        for check in (k.RUNAWAY_CHECK, k.TOKEN_LIMIT_CHECK)
    ]
    assert not demo_runner.instance.get_latest_materialization_event(dg.AssetKey(k.TRAINING_SET))


def test_rows_of_a_replaced_base_model_are_left_out_of_the_training_set(
    tiny_runner, untrained_model_dir, tmp_path
):
    from safetensors.torch import load_file, save_file

    from proj_assets.sft.assets_check_results import on_current_rows, rate_result
    from proj_assets.sft.input_versions import shard_inputs
    from proj_resources.models import weights_revision

    def rows(shard: str) -> pl.DataFrame:  # distinct instructions per shard: no deduplication
        return crafted_shard(shard, 20, 0, 0).with_columns(
            pl.format("{} ({})", pl.col("instruction"), pl.lit(shard)).alias("instruction")
        )

    def critic(shard: str) -> pl.DataFrame:
        return keep_all(rows(shard))

    partitions = sft_shard_partitions(tiny_runner.cfg.n_shards)
    data = [
        stand_in(k.SHARDS, rows, partitions, "shard"),
        stand_in(k.CRITIC, critic, partitions, "shard"),
        STAND_IN_TEST_SET,
    ]
    replaced = tmp_path / "replaced_model"
    shutil.copytree(untrained_model_dir, replaced)
    (weights,) = replaced.glob("*.safetensors")
    tensors = load_file(weights)
    save_file({n: t * 0.5 for n, t in tensors.items()}, weights, metadata={"format": "pt"})

    assert tiny_runner([k.BASE_MODEL], stand_ins=[stand_in_base_model(untrained_model_dir)]).success
    for shard in SHARD_NAMES:  # both shards generated from the first base model: gates pass
        assert tiny_runner([k.SHARDS, k.CRITIC], shard, data).success
    assert tiny_runner([k.TEST_INSTRUCTIONS], stand_ins=data).success
    # the base model is replaced; only shard_00 is generated again
    assert tiny_runner([k.BASE_MODEL], stand_ins=[stand_in_base_model(replaced)]).success
    assert tiny_runner([k.SHARDS, k.CRITIC], "shard_00", data).success

    run = tiny_runner([k.TRAINING_SET], stand_ins=data)
    training = run.output_for_node("sft__data__training_set")
    assert set(training["shard"]) == {"shard_00"} and training.height == 20
    (event,) = run.asset_materializations_for_node("sft__data__training_set")
    assert event.metadata["superseded_shard_rows"].value == {
        "current_rows": 20,
        "superseded_rows": 20,
        "changed_inputs": ["base_model"],
    }
    assert training["input_versions"].str.contains("test_set").all()

    # judged again now, shard_01's stored rows are no evidence: its QC gate fails, naming why
    stale = tiny_runner.resources["warehouse"].query(
        "select * from sft_data.scale_shards where shard = 'shard_01'"
    )
    result = on_current_rows(
        stale,
        shard_inputs(tiny_runner.cfg, weights_revision(str(replaced))),  # the replaced model's
        lambda df, **extra: rate_result(df, "runaway", 0.05, **extra),
    )
    assert not result.passed and "changed: base_model" in result.description
