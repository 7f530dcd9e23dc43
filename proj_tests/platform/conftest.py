"""Platform fixtures: run the tiny gated graph (platform_graph) and the review job on a temporary instance."""

import dagster as dg
import pytest
from definitions_helpers import gated_graph, materializable
from platform_graph import GATE, gated, source, value_non_negative

from proj_resources import Warehouse


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(database=str(tmp_path / "warehouse.duckdb"))


@pytest.fixture
def run_source(instance, warehouse):
    def run(value: int):
        return dg.materialize(
            [source, value_non_negative],
            instance=instance,
            raise_on_error=False,
            run_config={"ops": {"ops_test__raw__source": {"config": {"value": value}}}},
            resources={"warehouse": warehouse},
        )

    return run


@pytest.fixture
def run_gated(instance, warehouse):
    def run():
        graph = gated_graph([source, gated], [value_non_negative], {"warehouse": warehouse})
        return dg.materialize(
            materializable(graph),
            selection=[gated.key],
            instance=instance,
            raise_on_error=False,
            resources={"warehouse": warehouse},
        )

    return run


@pytest.fixture
def record_review(instance, warehouse):
    from proj_assets.platform.review_job import gate_review_job

    def record(
        decision: str, reason: str = "known artefact, verified by hand", partition: str = ""
    ):
        config = {
            "check": GATE.to_user_string(),
            "partition": partition,
            "decision": decision,
            "reviewer": "Grace Hopper",
            "reason": reason,
        }
        return gate_review_job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            resources={"warehouse": warehouse},
            run_config={"ops": {"record_gate_review": {"config": config}}},
        )

    return record
