"""The pilot's QC gates block scaling on a bad pilot (in later runs too) and pass on a good one."""

import dagster as dg
import polars as pl
import pytest

from proj_assets.shared.conventions import check_key, table_metadata
from proj_assets.shared.gates import gate_problems
from proj_assets.sft import assets, checks
from proj_assets.sft import keys as k
from proj_tests.sft.conftest import selected_pilot, stand_in_pilot

PILOT_CHECKS = [check_key(k.PILOT, k.RUNAWAY_CHECK), check_key(k.PILOT, k.TOKEN_LIMIT_CHECK)]


def crafted_pilot(n: int, n_runaway: int, n_limit: int) -> pl.DataFrame:
    """Pilot rows whose flags are set by hand (the generations themselves are not under test here)."""
    return pl.DataFrame({
        "example_id": [f"pilot-{i:06d}" for i in range(n)], "task_type": ["add"] * n,
        "instruction": ["Add 1 and 2."] * n,
        "completion": [" 3\nInstruction: Add" if i < n_runaway else " 3" for i in range(n)],
        "finish_reason": ["length" if i < n_limit else "stop" for i in range(n)],
        "n_tokens": [24 if i < n_limit else 3 for i in range(n)],
        "runaway": [i < n_runaway for i in range(n)], "token_limit": [i < n_limit for i in range(n)],
    })


def materialize_pilot(df, instance, resources):
    return dg.materialize([stand_in_pilot(df), checks.pilot_runaway_rate_below_max,
                           checks.pilot_token_limit_rate_below_max], instance=instance,
                          partition_key=selected_pilot(instance), resources=resources, raise_on_error=False)


def test_bad_pilot_blocks_scaling_with_the_measured_rate(tmp_path):  # demo thresholds: 5% and 10%
    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile

    resources = build_resources(load_profile(), tmp_path)
    with dg.instance_for_test() as instance:
        # 1 of 20 runaway (5%) is not below 5%; 3 of 20 at the token limit (15%) is not below 10%
        result = materialize_pilot(crafted_pilot(20, 1, 3), instance, resources)
        evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not evals[k.RUNAWAY_CHECK].passed and evals[k.RUNAWAY_CHECK].metadata["measured"].value == 0.05
        assert not evals[k.TOKEN_LIMIT_CHECK].passed and evals[k.TOKEN_LIMIT_CHECK].metadata["n_failing"].value == 3

        # a later run of the scale shards refuses, naming the failed check and the measured value
        run = dg.materialize([assets.scale_shards], partition_key="shard_00", instance=instance,
                             resources=resources, raise_on_error=False)
        assert not run.success
        failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
        message = str(failure.event_specific_data.error)
        assert "runaway_rate_below_max" in message and "0.05" in message and "token_limit_rate_below_max" in message
        assert not instance.get_latest_materialization_event(dg.AssetKey(k.SHARDS))

        # a good pilot clears both gates
        good = materialize_pilot(crafted_pilot(20, 0, 1), instance, resources)
        assert all(e.passed for e in good.get_asset_check_evaluations())
        assert gate_problems(instance, PILOT_CHECKS, [selected_pilot(instance)]) == []


@pytest.mark.parametrize("n_runaway,passed", [(0, True), (1, False)])
def test_runaway_gate_boundary(n_runaway, passed):
    from proj_assets.sft.checks import rate_result

    df = crafted_pilot(40, n_runaway, 0)
    assert rate_result(df, "runaway", 0.025).passed is passed  # 1/40 = 2.5% is not below 2.5%


def test_adapter_refuses_a_contaminated_training_set(tmp_path):
    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile

    resources = build_resources(load_profile(), tmp_path)
    leaked = "Add 12 and 30."

    @dg.asset(key=k.TRAINING_SET, group_name="sft", metadata=table_metadata(k.TRAINING_SET))
    def training_set() -> pl.DataFrame:
        return pl.DataFrame({"example_id": ["s-1", "s-2"], "instruction": ["Add 1 and 2.", leaked],
                             "completion": [" 3", " 42"]})

    @dg.asset(key=k.TEST_INSTRUCTIONS, group_name="sft", metadata=table_metadata(k.TEST_INSTRUCTIONS))
    def test_instructions() -> pl.DataFrame:
        return pl.DataFrame({"item_id": [0], "task_type": ["add"], "instruction": [leaked], "reference": ["42"]})

    with dg.instance_for_test() as instance:
        result = dg.materialize([test_instructions, training_set, checks.no_test_overlap], instance=instance,
                                resources=resources, raise_on_error=False)
        check = result.get_asset_check_evaluations()[0]
        assert not check.passed and check.metadata["n_failing"].value == 1
        assert "add 12 and 30" in check.metadata["offending_sample"].value

        run = dg.materialize([assets.adapter, training_set], selection=[dg.AssetKey(k.ADAPTER)], instance=instance,
                             resources=resources, raise_on_error=False)
        assert not run.success
        failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
        assert "no_test_overlap" in str(failure.event_specific_data.error)
        assert not (tmp_path / "artifacts" / "sft_adapter").exists()  # nothing written
