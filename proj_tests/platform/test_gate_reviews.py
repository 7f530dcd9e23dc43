"""Gates across runs with reviews: a failed gate blocks later runs until a reviewer overrides
exactly that result; the override is a warehouse record and does not outlive a new failure."""

import dagster as dg
from platform_graph import GATE

from proj_assets.shared import reviews

GATED = dg.AssetKey(["ops_test", "processed", "gated"])


def _failure_text(result) -> str:
    return "\n".join(
        e.step_failure_data.error.message for e in result.all_events if e.is_step_failure
    )


def _stored(warehouse) -> list:
    with warehouse.get_connection() as conn:
        return reviews.load_reviews(conn)


def test_failed_gate_blocks_a_later_run_until_overridden(
    instance, run_source, run_gated, record_review, warehouse
):
    written = run_source(-5)  # the asset is written, its blocking check fails
    assert [e.passed for e in written.get_asset_check_evaluations()] == [False]
    blocked = run_gated()
    assert not blocked.success
    text = _failure_text(blocked)
    assert "refusing to run" in text and GATE.to_user_string() in text and "'measured': -5" in text
    assert instance.get_latest_materialization_event(GATED) is None

    review = record_review("override")
    assert review.success
    (stored,) = _stored(warehouse)
    assert (stored.decision, stored.reviewer, stored.result_passed, stored.measured) == (
        "override",
        "Grace Hopper",
        False,
        -5.0,
    )

    assert run_gated().success  # honoured: the record names exactly the failed result
    assert instance.get_latest_materialization_event(GATED) is not None

    run_source(-7)  # a new failure: the old override does not cover it
    again = run_gated()
    assert not again.success and "'measured': -7" in _failure_text(again)


def test_passing_gate_lets_downstream_run_and_cannot_be_overridden(
    instance, run_source, run_gated, record_review, warehouse
):
    run_source(3)
    assert run_gated().success
    refused = record_review("override")
    assert not refused.success and "nothing to override" in _failure_text(refused)
    assert _stored(warehouse) == []
    assert record_review("sign_off").success
    assert [r.decision for r in _stored(warehouse)] == ["sign_off"]


def test_bad_review_request_is_refused_and_nothing_is_written(
    instance, run_source, record_review, warehouse
):
    run_source(-1)
    refused = record_review("override", reason="meh")
    assert not refused.success and "field 'reason'" in _failure_text(refused)
    assert _stored(warehouse) == []


def test_gate_that_never_ran_blocks(run_gated):
    result = run_gated()
    assert not result.success and "has no result yet" in _failure_text(result)


def test_asset_without_warehouse_resource_reads_reviews_from_its_builders_warehouse(
    instance, run_source, tmp_path
):
    from definitions_helpers import gated_graph, materializable
    from platform_graph import gated_with_warehouse, source, value_non_negative

    from proj_resources import Warehouse

    builders = Warehouse(database=str(tmp_path / "builders.duckdb"))
    asset = gated_with_warehouse(builders)
    graph = gated_graph([source, asset], [value_non_negative], {})

    def run_default():
        return dg.materialize(
            materializable(graph), selection=[asset.key], instance=instance, raise_on_error=False
        )

    run_source(-3)
    assert not run_default().success
    latest = instance.event_log_storage.get_asset_check_execution_history(GATE, limit=1)[0]
    with builders.get_connection() as conn:
        reviews.insert_review(
            conn,
            reviews.Review(
                GATE.to_user_string(),
                None,
                "override",
                "Ada",
                "accepted for this test run",
                latest.run_id,
                False,
            ),
        )
    assert run_default().success


def test_review_of_an_unknown_check_is_refused(instance, warehouse):
    from proj_assets.platform.review_job import gate_review_job

    config = {
        "check": "ops_test/raw/source:no_such_check",
        "partition": "",
        "decision": "sign_off",
        "reviewer": "Ada",
        "reason": "typo in the check name",
    }
    result = gate_review_job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        resources={"warehouse": warehouse},
        run_config={"ops": {"record_gate_review": {"config": config}}},
    )
    assert not result.success and "check the spelling" in _failure_text(result)
    assert _stored(warehouse) == []
