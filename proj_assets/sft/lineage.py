"""Finding the files an upstream non-tabular asset wrote: its latest materialization's `path`."""

from pathlib import Path

import dagster as dg


def latest_metadata(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    key: list[str],
    partition: str | None = None,
) -> dict:
    """`key`'s (`partition`'s) latest materialization metadata as plain values ({} when none)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    event = records[0] if records else None
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def latest_artifact_path(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, key: list[str]
) -> Path:
    """The `path` metadata of `key`'s latest materialization; a clear error when there is none."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey(key))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "path" not in meta:
        raise dg.Failure(
            f"{'/'.join(key)} has no materialization with a path yet: materialize it first"
        )
    path = Path(meta["path"].value)
    if not path.exists():
        raise dg.Failure(
            f"{'/'.join(key)} was materialized at {path}, which no longer exists: re-materialize it"
        )
    return path
