"""Writing config × fold partitions of `probes_sweep.fold_results` in one DuckDB transaction.

The fold results are written here rather than by the DuckDB I/O manager because the I/O manager
cannot resolve partition keys of a multi-partition with dynamic dimensions (dagster 1.13: "The
instance is not available to load partitions"). Same effect: a re-run deletes and rewrites
exactly its partition, atomically.
"""

import polars as pl

SCHEMA, TABLE = "probes_sweep", "fold_results"
QUALIFIED = f"{SCHEMA}.{TABLE}"


def replace_partitions(conn, df: pl.DataFrame, partitions: list[tuple[str, str]]) -> None:
    """Delete the old rows of every (config_id, fold) partition and insert `df`, all or nothing."""
    conn.register("incoming_fold_results", df.to_arrow())
    try:
        conn.execute("begin transaction")
        conn.execute(f"create schema if not exists {SCHEMA}")
        conn.execute(
            f"create table if not exists {QUALIFIED} as select * from incoming_fold_results limit 0"
        )
        conn.executemany(
            f"delete from {QUALIFIED} where config_id = ? and fold = ?",
            [list(p) for p in partitions],
        )
        conn.execute(f"insert into {QUALIFIED} by name select * from incoming_fold_results")
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    finally:
        conn.unregister("incoming_fold_results")


def read_partitions(conn, partitions: list[tuple[str, str]]) -> pl.DataFrame:
    """The rows of every (config_id, fold) partition, in one query."""
    conn.register(
        "wanted_partitions",
        pl.DataFrame(partitions, schema=["config_id", "fold"], orient="row").to_arrow(),
    )
    try:
        return conn.execute(
            f"select r.* from {QUALIFIED} r join wanted_partitions using (config_id, fold)"
        ).pl()
    finally:
        conn.unregister("wanted_partitions")


def predictions_relpath(config_id: str, fold: str) -> str:
    """Where a config-fold's predictions live under the artifact store (written by fold_results,
    read by its no_group_leakage check)."""
    return f"probes/predictions/{config_id}/{fold}.parquet"
