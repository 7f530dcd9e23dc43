"""Handoff Parquet files do not pile up: a write step removes the file it wrote; a run that failed
at its write leaves the file (a retry of the write step needs it) and the next compute step of a
later run removes it."""

import dagster as dg
import polars as pl

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
    return sorted(
        str(p.relative_to(root)) for p in (root / "artifacts" / "handoff").rglob("*.parquet")
    )


def test_handoffs_are_removed_once_written_and_after_a_failed_run(tmp_path, instance):
    resources = {
        "io_manager": FailingStore(),
        HANDOFF_IO_MANAGER: handoff_io_manager(tmp_path),
        "artifacts": ArtifactStore(root=str(tmp_path / "artifacts")),
    }
    ok = dg.materialize([cells], partition_key="ok", resources=resources, instance=instance)
    assert ok.success and _handoffs(tmp_path) == []

    bad = dg.materialize(
        [cells], partition_key="bad", resources=resources, instance=instance, raise_on_error=False
    )
    assert not bad.success
    (left,) = _handoffs(tmp_path)
    assert bad.run_id in left  # kept for a retry of the write step

    again = dg.materialize([cells], partition_key="ok", resources=resources, instance=instance)
    assert (
        again.success and _handoffs(tmp_path) == []
    )  # the failed run's file went with the next compute
