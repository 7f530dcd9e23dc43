"""Conventions every domain shares: asset keys `[domain, layer, name]` and table metadata."""

import dagster as dg

# Assets that write the DuckDB warehouse join this pool; dagster.yaml limits it to one step.
DUCKDB_POOL = "duckdb"


def table_metadata(key: list[str], partition_expr: str | dict[str, str] | None = None) -> dict:
    """Definition metadata for a tabular asset stored by the DuckDB I/O manager.

    The table lives in schema `<domain>_<layer>` (so two domains may both have a `raw` layer),
    and a partitioned asset names the column(s) holding its partition key, so a re-run deletes
    and rewrites exactly its partition.
    """
    domain, layer, _name = key
    meta: dict = {"schema": f"{domain}_{layer}"}
    if partition_expr is not None:
        meta["partition_expr"] = partition_expr
    return meta


def check_key(asset_key: list[str], name: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(asset_key), name)


# Automation for assets downstream of a gate: materialize when upstream changes, but only while
# every blocking check on the dependencies passes (eager() alone does not wait for checks).
GATED = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
