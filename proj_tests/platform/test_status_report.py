"""The status report on a real instance with a mix of successes, failures, missing partitions,
a dead run, a run in progress, a failed gate, a stale asset and a budget overrun."""

from datetime import UTC

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test
from platform_graph import cells, cells_job, gated, source, value_non_negative

from proj_assets.platform.budget import BudgetState
from proj_assets.platform.snapshot import build_snapshot
from proj_assets.platform.status import next_actions, open_gates, render_markdown
from proj_assets.profiles import load_profile
from proj_assets.settings_shared import PlatformSettings
from proj_assets.shared.reviews import Review
from proj_resources import Warehouse

DEFS = dg.Definitions(
    assets=[source, gated, cells],
    asset_checks=[value_non_negative],
    jobs=[cells_job],
    resources={"warehouse": Warehouse(database=":memory:")},
)


def _cells(instance, partition: str, broken: bool = False):
    config = {
        "ops": {"ops_test__raw__cells": {"config": {"broken": [partition] if broken else []}}}
    }
    return DEFS.resolve_job_def("ops_cells_job").execute_in_process(
        instance=instance, partition_key=partition, run_config=config, raise_on_error=False
    )


@pytest.fixture
def mixed_instance(instance, run_source, run_gated):
    assert run_source(3).success and run_gated().success
    run_source(-2)  # gate now fails, and `gated` is stale (its input changed)
    for partition in ("a", "b"):
        assert _cells(instance, partition).success
    assert not _cells(instance, "c", broken=True).success  # "d" is never run
    dead = create_run_for_test(
        instance,
        job_name="ops_cells_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": "d"},
    )
    instance.report_engine_event(
        f"Run execution process for {dead.run_id} was terminated by signal 9 (SIGKILL).", dead
    )
    instance.report_run_failed(dead)
    running = create_run_for_test(
        instance, job_name="ops_cells_job", status=dg.DagsterRunStatus.STARTED
    )
    return instance, dead.run_id, running.run_id


def test_snapshot_and_report_match_the_instance(mixed_instance):
    instance, dead_id, running_id = mixed_instance
    profile = load_profile("demo").model_copy(
        update={"platform": PlatformSettings(budgets={"ops_test": 0.001})}
    )
    sign_off = Review(
        "ops_test/raw/cells:none", None, "sign_off", "Ada", "looked at it", None, True
    )
    snap = build_snapshot(instance, DEFS.get_repository_def(), profile, [sign_off])

    by_key = {a.key: a for a in snap.assets}
    cells_status = by_key["ops_test/raw/cells"]
    assert (
        cells_status.total,
        cells_status.materialized,
        cells_status.failed,
        cells_status.missing,
    ) == (4, 2, ["c"], ["d"])
    assert cells_status.job == "ops_cells_job"
    assert by_key["ops_test/processed/gated"].materialized == 1

    (gate,) = open_gates(snap)
    assert (gate.check, gate.passed, gate.measured, gate.threshold) == (
        "ops_test/raw/source:value_non_negative",
        False,
        -2.0,
        0.0,
    )
    assert [s.key for s in snap.stale] == ["ops_test/processed/gated"]
    assert [r.run_id for r in snap.in_progress] == [running_id]
    died = [r for r in snap.failures if r.died]
    assert [r.run_id for r in died] == [dead_id] and "SIGKILL" in died[0].error
    broken = [r for r in snap.failures if not r.died and r.partition == "c"]
    assert broken and "cell c is broken" in broken[0].error

    (budget,) = [b for b in snap.budget if b.domain == "ops_test"]
    assert budget.seconds == pytest.approx(
        2 * 36.0 + 2 * 1.0
    )  # a failed attempt records no materialization
    assert budget.cost == pytest.approx(74 / 3600 * profile.compute.cost_per_hour["cpu"])
    assert budget.state == BudgetState.OVER

    actions = "\n".join(next_actions(snap))
    assert "Review gate `ops_test/raw/source:value_non_negative`" in actions
    assert "-j ops_cells_job --partitions 'c,d' --noprompt" in actions
    assert f"`{dead_id[:8]}`" in actions and "stale" in actions and "`ops_test` spent" in actions

    text = render_markdown(snap)
    assert "**1 blocking gate open; 0 warnings**. To review: review the open gates" in text
    assert "| `ops_test/raw/cells` | 4 | 2 | 1 | 1 | 0 |" in text
    assert "**Open gates** (blocking, failed, not overridden): 1" in text
    assert "[check](http://127.0.0.1:3000/assets/ops_test/raw/source?view=checks)" in text
    assert "| sign_off | `ops_test/raw/cells:none` |" in text
    assert "**Died** (process lost, marked failed by run monitoring): 1" in text


def test_override_closes_the_gate_in_the_report(mixed_instance):
    instance = mixed_instance[0]
    snap = build_snapshot(instance, DEFS.get_repository_def(), load_profile("demo"), [])
    (gate,) = open_gates(snap)
    override = Review(
        gate.check, None, "override", "Ada", "accepted for this run", gate.run_id, False
    )
    snap.reviews = [override]
    assert open_gates(snap) == []
    assert "| override | `ops_test/raw/source:value_non_negative` |" in render_markdown(snap)


def test_failed_decision_gate_is_listed_but_a_warning_is_not():
    from datetime import datetime

    from proj_assets.platform.status_model import GateStatus, Snapshot

    stage = GateStatus(
        "sft/eval/stats:stage_gate",
        "sft",
        False,
        None,
        False,
        "ERROR",
        1.0,
        0.01,
        must_be="mcnemar_p below alpha = 0.01",
    )
    soft = GateStatus(
        "market/processed/targets:class_balance_reasonable", "market", False, None, False, "WARN"
    )
    snap = Snapshot(datetime.now(UTC), "demo", [], [stage, soft], [], [], [], [], [])
    actions = next_actions(snap)
    assert actions == [
        "Decide on `sft/eval/stats:stage_gate`: it failed (measured 1, must be: mcnemar_p below "
        "alpha = 0.01); "
        "it blocks nothing, so read its metadata before going on."
    ]
    assert open_gates(snap) == []
