"""The fold results table `probes_sweep.fold_results`: what produced a row, writing config × fold
partitions in one DuckDB transaction, and which stored rows are current.

Every row carries the fingerprint of its inputs (`partition_inputs`: model id and revision, corpus
content hash, activation cache key, the fold's definition, the probe config, the code version;
`proj_resources.fingerprints`). Rows of other inputs stay in the table as history: a re-run
replaces only rows with its own fingerprint, and readers keep the current ones (`select_current`),
reporting the superseded ones and which inputs changed.

The fold results are written here rather than by the DuckDB I/O manager because the I/O manager
cannot resolve partition keys of a multi-partition with dynamic dimensions (dagster 1.13: "The
instance is not available to load partitions"). Same effect: a re-run rewrites exactly its
partition, atomically.
"""

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from proj_resources.fingerprints import FINGERPRINT, current_rows, staleness

SCHEMA, TABLE = "probes_sweep", "fold_results"
QUALIFIED = f"{SCHEMA}.{TABLE}"
# The code version of `probes/sweep/fold_results` (its Dagster `code_version`, and an input of
# every row's fingerprint): bump it when a change to training or scoring changes the rows.
FOLD_RESULTS_CODE_VERSION = "fold-results-2"

Partition = tuple[str, str]  # (config_id, fold)


def partition_inputs(config: Mapping, corpus_hash: str, fold_definition: str) -> dict[str, str]:
    """Input name -> version of one config × fold partition's rows. `config` is its resolved
    manifest row (config_id, model_id, model_revision, activations_path); `fold_definition` is
    `folds.fold_definition(corpus, fold)`."""
    return {
        "model": f"{config['model_id']}@{config['model_revision']}",
        "corpus": corpus_hash,
        "activations": Path(str(config["activations_path"])).name,  # the cache key
        "fold": fold_definition,
        "config": str(config["config_id"]),
        "code": FOLD_RESULTS_CODE_VERSION,
    }


def _add_missing_columns(conn) -> None:
    """Columns the incoming rows have and the table lacks (e.g. the fingerprint, on a table written
    before rows carried one), added as nullable: old rows keep their values and read as history."""
    have = {
        r[0]
        for r in conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [SCHEMA, TABLE],
        ).fetchall()
    }
    for name, dtype, *_ in conn.execute("describe incoming_fold_results").fetchall():
        if name not in have:
            conn.execute(f'alter table {QUALIFIED} add column "{name}" {dtype}')


def replace_partitions(conn, df: pl.DataFrame, partitions: list[Partition]) -> None:
    """Replace the rows of every (config_id, fold) partition that have the fingerprint of `df`'s
    rows by `df`, all or nothing; rows of the partition with another fingerprint stay (history)."""
    conn.register("incoming_fold_results", df.to_arrow())
    try:
        conn.execute("begin transaction")
        conn.execute(f"create schema if not exists {SCHEMA}")
        conn.execute(
            f"create table if not exists {QUALIFIED} as select * from incoming_fold_results limit 0"
        )
        _add_missing_columns(conn)
        conn.executemany(
            f"delete from {QUALIFIED} t where config_id = ? and fold = ? and exists ("
            f"select 1 from incoming_fold_results i where i.config_id = t.config_id "
            f"and i.fold = t.fold and i.{FINGERPRINT} is not distinct from t.{FINGERPRINT})",
            [list(p) for p in partitions],
        )
        conn.execute(f"insert into {QUALIFIED} by name select * from incoming_fold_results")
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    finally:
        conn.unregister("incoming_fold_results")


def read_partitions(conn, partitions: list[Partition]) -> pl.DataFrame:
    """Every stored row (current and history) of every (config_id, fold) partition, in one query."""
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


def select_current(
    rows: pl.DataFrame, expected: Mapping[Partition, Mapping[str, str]]
) -> tuple[pl.DataFrame, dict]:
    """(the rows whose fingerprint matches their partition's current inputs, a staleness report).

    `expected` maps each current partition to its inputs now (`partition_inputs`); rows of a
    partition not in it (a fold no longer in the corpus, a config no longer in the manifest) are
    superseded too. The report sums `fingerprints.staleness` over partitions and names the
    partitions that hold no current row (stale or missing: what a re-run must recompute)."""
    current, changed, removed, superseded = [rows.clear()], set[str](), set[str](), 0
    for (config_id, fold), part in rows.partition_by("config_id", "fold", as_dict=True).items():
        inputs = expected.get((config_id, fold))
        if inputs is None:
            superseded, removed = superseded + part.height, removed | {fold}
            continue
        report = staleness(part, inputs)
        superseded += report["superseded_rows"]
        changed |= set(report["changed_inputs"])
        current.append(current_rows(part, inputs))
    chosen = pl.concat(current, how="diagonal_relaxed")
    present = set(chosen.select("config_id", "fold").unique().iter_rows())
    removed_folds = sorted(removed - {fold for _config, fold in expected})
    if removed:
        changed.add("fold_removed" if removed_folds else "config_removed")
    return chosen, {
        "current_rows": chosen.height,
        "superseded_rows": superseded,
        "changed_inputs": sorted(changed),
        "removed_folds": removed_folds,
        "partitions_without_current_rows": len(set(expected) - present),
    }


def predictions_relpath(config_id: str, fold: str, input_fingerprint: str) -> str:
    """Where a config-fold's predictions of one input fingerprint live under the artifact store
    (written by fold_results, read by its no_group_leakage check); older inputs' files stay."""
    return f"probes/predictions/{config_id}/{fold}/{input_fingerprint}.parquet"
