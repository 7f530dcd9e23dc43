"""Submit an asset backfill to the cluster's daemon, as the UI's "Materialize partitions" does.

`dagster job backfill` (the CLI) makes a *job* backfill, which Dagster marks complete as soon as
its runs are launched; runs of a complete backfill are never retried automatically. An *asset*
backfill stays in progress until every partition is materialized and waits for run retries, so a
run whose worker died is re-executed and the backfill ends with every partition done.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg

from proj_cluster.home import PROJECT_ROOT


def submit_asset_backfill(
    asset_key: dg.AssetKey,
    partitions: list[str] | None,
    workspace: Path = PROJECT_ROOT / "workspace.yaml",
    title: str | None = None,
) -> str:
    """Backfill `partitions` (None: all) of one asset on the instance at DAGSTER_HOME; its id."""
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with dg.DagsterInstance.get() as instance:
        with WorkspaceProcessContext(
            instance, WorkspaceFileTarget([str(workspace)])
        ) as workspace_context:
            asset_graph = workspace_context.create_request_context().asset_graph
            backfill = PartitionBackfill.from_asset_partitions(
                backfill_id=make_new_backfill_id(),
                asset_graph=asset_graph,
                partition_names=partitions,
                asset_selection=[asset_key],
                backfill_timestamp=time.time(),
                tags={},
                dynamic_partitions_store=instance,
                all_partitions=partitions is None,
                title=title,
                description=None,
                run_config=None,
            )
            instance.add_backfill(backfill)
    return backfill.backfill_id
