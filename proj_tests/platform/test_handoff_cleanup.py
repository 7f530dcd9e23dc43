"""Handoff files do not pile up: a write step removes the Parquet it wrote; a run that failed at its
write leaves its Parquet and pickled handoff (a retry of the write step reads them) and the next
compute step of a later run removes both, unless the failed run's retry is pending or running;
another profile's instance, on the same data folder, never removes them."""

import dagster as dg
import polars as pl
import pytest
from dagster._core.storage.tags import (
    AUTO_RETRY_RUN_ID_TAG,
    PARENT_RUN_ID_TAG,
    RETRY_NUMBER_TAG,
    ROOT_RUN_ID_TAG,
)

from proj_assets.shared.compute_write import (
    HANDOFF_IO_MANAGER,
    compute_op,
    frame_write_op,
    handoff_io_manager,
    save_handoff,
)
from proj_resources import ArtifactStore

PARTS = dg.StaticPartitionsDefinition(["ok", "bad"])


class FailingStore(dg.ConfigurableIOManager):
    """A store that accepts the `ok` partition's rows and fails the `bad` partition's write."""

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if context.partition_key == "bad":
            raise OSError("disk full (on purpose)")

    def load_input(self, context: dg.InputContext):
        raise NotImplementedError


@compute_op({}, name="cells_compute")
def cells_compute(context: dg.OpExecutionContext, artifacts: ArtifactStore):
    frame = pl.DataFrame({"cell": [context.partition_key] * 3, "i": [0, 1, 2]})
    return save_handoff(context, artifacts, frame, {"rows": frame.height})


@dg.graph_asset(
    key=["t", "out", "cells"],
    partitions_def=PARTS,
    metadata={"schema": "t_out", "partition_expr": "cell"},
)
def cells():
    return frame_write_op("cells_write")(cells_compute())


def _handoffs(root) -> list[str]:
    """The Parquet handoffs and the I/O manager's pickled `Handoff`s left under the data folder."""
    parquet = (root / "artifacts" / "handoff").rglob("*.parquet")
    pickles = (p for p in (root / "handoff").rglob("*") if p.is_file())
    return sorted(str(p.relative_to(root)) for p in [*parquet, *pickles])


def _resources(root, profile: str) -> dict:
    return {
        "io_manager": FailingStore(),
        HANDOFF_IO_MANAGER: handoff_io_manager(root, profile),
        "artifacts": ArtifactStore(root=str(root / "artifacts")),
    }


def _run(partition: str, root, instance, profile: str = "demo") -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [cells],
        partition_key=partition,
        resources=_resources(root, profile),
        instance=instance,
        raise_on_error=False,
    )


def _left_by(run_id: str, root) -> list[str]:
    return [p for p in _handoffs(root) if run_id in p]


def test_handoffs_are_removed_once_written_and_after_a_failed_run(tmp_path, instance):
    ok = _run("ok", tmp_path, instance)
    # the write step removed its Parquet; its run's pickle goes with the next compute
    assert ok.success and _handoffs(tmp_path) == [
        f"handoff/demo/{ok.run_id}/t__out__cells.cells_compute/result"
    ]

    bad = _run("bad", tmp_path, instance)
    assert not bad.success
    assert _handoffs(tmp_path) == [  # kept for a retry of the write step; ok's pickle went
        f"artifacts/handoff/demo/{bad.run_id}/t__out__cells.cells_compute.parquet",
        f"handoff/demo/{bad.run_id}/t__out__cells.cells_compute/result",
    ]

    again = _run("ok", tmp_path, instance)
    # the failed run's files went with the next compute
    assert again.success and _handoffs(tmp_path) == [
        f"handoff/demo/{again.run_id}/t__out__cells.cells_compute/result"
    ]


def test_another_profiles_instance_on_the_same_data_folder_leaves_them_alone(tmp_path, instance):
    """Two profiles, two instances (as the default instance homes are), one data folder: the
    research instance knows none of the demo's runs, yet its cleanup must not take their files."""
    bad = _run("bad", tmp_path, instance)
    kept = _left_by(bad.run_id, tmp_path)
    assert not bad.success and len(kept) == 2
    with dg.instance_for_test() as research_instance:
        assert _run("ok", tmp_path, research_instance, profile="research").success
    assert _left_by(bad.run_id, tmp_path) == kept
    assert _run("ok", tmp_path, instance).success
    assert _left_by(bad.run_id, tmp_path) == []  # its own instance cleans it


@pytest.fixture
def retrying_instance():
    """An instance with run retries on, as proj_cluster/dagster.yaml sets them: a failed run is
    tagged `dagster/will_retry` = true."""
    with dg.instance_for_test(
        overrides={"run_retries": {"enabled": True, "max_retries": 2}}
    ) as inst:
        yield inst


def _start_retry(instance: dg.DagsterInstance, failed: dg.DagsterRun) -> dg.DagsterRun:
    """What the retry daemon records when it launches the retry of `failed` (a re-execution from
    failure in the same run group); the retry is left started."""
    retry = instance.add_run(
        dg.DagsterRun(
            job_name=failed.job_name,
            status=dg.DagsterRunStatus.STARTED,
            root_run_id=failed.run_id,
            parent_run_id=failed.run_id,
            tags={
                ROOT_RUN_ID_TAG: failed.run_id,
                PARENT_RUN_ID_TAG: failed.run_id,
                RETRY_NUMBER_TAG: "1",
            },
        )
    )
    instance.add_run_tags(failed.run_id, {AUTO_RETRY_RUN_ID_TAG: retry.run_id})
    return retry


def test_handoffs_of_a_run_whose_retry_is_pending_or_running_are_kept(tmp_path, retrying_instance):
    instance = retrying_instance
    bad = _run("bad", tmp_path, instance)
    failed = instance.get_run_by_id(bad.run_id)
    assert failed is not None and failed.tags.get("dagster/will_retry") == "true"
    kept = _left_by(bad.run_id, tmp_path)
    assert len(kept) == 2

    assert _run("ok", tmp_path, instance).success
    assert _left_by(bad.run_id, tmp_path) == kept  # the retry is pending: the daemon has not run

    retry = _start_retry(instance, failed)
    assert _run("ok", tmp_path, instance).success
    assert _left_by(bad.run_id, tmp_path) == kept  # the retry is running and reads them

    instance.report_run_canceled(retry)
    assert _run("ok", tmp_path, instance).success
    assert _left_by(bad.run_id, tmp_path) == []  # nothing of the group runs or will run again
