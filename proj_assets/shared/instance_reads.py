"""Reads of the Dagster instance that several layers share: partition states and every
materialization of an asset (paged)."""

from collections.abc import Iterator

import dagster as dg
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

PAGE = 10_000  # the event log's maximum page size


def partition_states(
    instance: dg.DagsterInstance, key: dg.AssetKey, pdef: dg.PartitionsDefinition
) -> tuple[list[str], set[str], set[str], set[str]]:
    """(every partition key, materialized, failed, in progress) of a partitioned asset, from the
    status cache the UI uses (failed = the latest attempt failed)."""
    cache = get_and_update_asset_status_cache_value(instance, key, pdef)
    all_keys = list(pdef.get_partition_keys(dynamic_partitions_store=instance))
    if cache is None:
        return all_keys, set(), set(), set()
    return (
        all_keys,
        set(cache.deserialize_materialized_partition_subsets(pdef).get_partition_keys()),
        set(cache.deserialize_failed_partition_subsets(pdef).get_partition_keys()),
        set(cache.deserialize_in_progress_partition_subsets(pdef).get_partition_keys()),
    )


def materializations(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> Iterator[dg.EventLogRecord]:
    """Every materialization record of `key` (of `partition` only, when given), newest first,
    paging through the event log."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=key, asset_partitions=[partition] if partition else None
    )
    cursor = None
    while True:
        page = instance.fetch_materializations(records_filter, limit=PAGE, cursor=cursor)
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor
