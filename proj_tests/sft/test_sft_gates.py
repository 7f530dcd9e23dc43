"""The pilot's QC gates block scaling on a bad pilot (in later runs too) and pass on a good one; the
decontamination gate stops the adapter. Each run holds the sft domain as the code location builds
it (its gates resolved from the graph); stand-ins replace the upstream assets not under test."""

import dagster as dg
import polars as pl
import pytest

from proj_assets.sft import keys as k
from proj_assets.shared.conventions import check_key
from proj_assets.shared.gates import gate_problems
from proj_tests.sft.conftest import (
    crafted_pilot,
    failure_message,
    refused_gates,
    stand_in,
    stand_in_base_model,
    stand_in_pilot,
)


def gate_line(run, start: str) -> str:
    """The one refusal line of `run` that starts with `start`."""
    (line,) = [g for g in refused_gates(run) if g.startswith(start)]
    return line


PILOT_CHECKS = [check_key(k.PILOT, k.RUNAWAY_CHECK), check_key(k.PILOT, k.TOKEN_LIMIT_CHECK)]


def test_bad_pilot_blocks_scaling_with_the_measured_rate(
    demo_runner,
):  # demo thresholds: 5% and 10%
    selected = demo_runner.selected_pilot()
    # 1 of 20 runaway (5%) is not below 5%; 3 of 20 at the token limit (15%) is not below 10%
    result = demo_runner(
        [k.PILOT], selected, [stand_in_pilot(crafted_pilot(20, 1, 3))], raise_on_error=False
    )
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert (
        not evals[k.RUNAWAY_CHECK].passed
        and evals[k.RUNAWAY_CHECK].metadata["measured"].value == 0.05
    )
    assert (
        not evals[k.TOKEN_LIMIT_CHECK].passed
        and evals[k.TOKEN_LIMIT_CHECK].metadata["n_failing"].value == 3
    )

    # a later run of the scale shards refuses, naming the failed checks and the measured value
    run = demo_runner([k.SHARDS], "shard_00", raise_on_error=False)
    assert not run.success
    runaway, limit = (
        gate_line(run, f"sft/data/pilot_generations:{name} partition {selected!r} failed")
        for name in (k.RUNAWAY_CHECK, k.TOKEN_LIMIT_CHECK)
    )
    assert "'measured': 0.05" in runaway and "'n_failing': 3" in limit
    assert not demo_runner.instance.get_latest_materialization_event(dg.AssetKey(k.SHARDS))

    # a good pilot clears both gates
    good = demo_runner([k.PILOT], selected, [stand_in_pilot(crafted_pilot(20, 0, 1))])
    assert all(e.passed for e in good.get_asset_check_evaluations())
    assert gate_problems(demo_runner.instance, PILOT_CHECKS, [selected]) == []


@pytest.mark.parametrize("n_runaway,passed", [(0, True), (1, False)])
def test_runaway_gate_boundary(n_runaway, passed):
    from proj_assets.sft.assets_check_results import rate_result

    df = crafted_pilot(40, n_runaway, 0)
    assert rate_result(df, "runaway", 0.025).passed is passed  # 1/40 = 2.5% is not below 2.5%


def test_adapter_refuses_to_train_while_no_test_overlap_failed(
    demo_runner, untrained_model_dir, tmp_path
):
    leaked = "Add 12 and 30."

    def training_set(instructions: list[str]):
        return stand_in(
            k.TRAINING_SET,
            pl.DataFrame(
                {
                    "example_id": [f"s-{i}" for i in range(len(instructions))],
                    "instruction": instructions,
                    "completion": [" 3"] * len(instructions),
                }
            ),
        )

    test_instructions = stand_in(
        k.TEST_INSTRUCTIONS,
        pl.DataFrame(
            {"item_id": [0], "task_type": ["add"], "instruction": [leaked], "reference": ["42"]}
        ),
    )
    # a base model whose completion_mode_only gate passes: the overlap is the only open gate
    base = demo_runner([k.BASE_MODEL], stand_ins=[stand_in_base_model(untrained_model_dir)])
    assert all(e.passed for e in base.get_asset_check_evaluations())
    contaminated = [training_set(["Add 1 and 2.", leaked]), test_instructions]

    result = demo_runner(
        [k.TEST_INSTRUCTIONS, k.TRAINING_SET], stand_ins=contaminated, raise_on_error=False
    )
    (check,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "no_test_overlap"
    ]
    assert not check.passed and check.metadata["n_failing"].value == 1
    assert leaked in check.metadata["offending_sample"].value

    run = demo_runner([k.ADAPTER], stand_ins=contaminated, raise_on_error=False)
    assert not run.success
    (gate,) = refused_gates(run)
    assert (
        gate.startswith("sft/data/training_set:no_test_overlap failed") and "'n_failing': 1" in gate
    )
    assert not (tmp_path / "artifacts" / "sft_adapter").exists()  # nothing trained or written
    assert not demo_runner.instance.get_latest_materialization_event(dg.AssetKey(k.ADAPTER))

    # a clean training set opens the gate: the adapter starts and stops at its own row minimum (demo: 50)
    clean = [training_set(["Add 1 and 2.", "Add 5 and 6."]), test_instructions]
    assert demo_runner([k.TRAINING_SET], stand_ins=clean).success
    run = demo_runner([k.ADAPTER], stand_ins=clean, raise_on_error=False)
    assert refused_gates(run) == [] and "has 2 rows, at least 50 needed" in failure_message(run)
