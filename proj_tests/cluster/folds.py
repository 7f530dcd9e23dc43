"""The probe sweep's fold partitions on a cluster: what the backfill tests share (materializing
the upstream assets, reading a run's steps and workers, the warehouse rows, the comparison with an
embedded run)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from proj_assets.probes import assets as A

UPSTREAM = [A.CORPUS, A.ACTIVATIONS, A.MANIFEST]
FOLD_RESULTS = "probes/sweep/fold_results"
COMPUTE_OP, WRITE_OP = "probes_sweep_fold_results_compute", "probes_sweep_fold_results_write"
KEYS = ["config_id", "fold", "role", "probe", "probe_seed"]
STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}


def materialize(instance, location: dg.Definitions, keys, partition=None):
    result = dg.materialize(
        [*location.assets, *location.asset_checks],
        selection=dg.AssetSelection.assets(*keys),
        resources=location.resources,
        instance=instance,
        partition_key=partition,
    )
    assert all(e.passed for e in result.get_asset_check_evaluations())


def location(profile: Path, data_dir) -> dg.Definitions:
    """The code location the cluster's workers load, with outputs under `data_dir`, built here from
    the cluster's profile file; the cluster's own processes get the same file as PROJ_PROFILE."""
    from proj_assets.definitions import build_definitions
    from proj_assets.profiles import load_profile

    return build_definitions(load_profile(str(profile)), data_dir)


def fold_partitions(instance) -> list[dg.MultiPartitionKey]:
    return [
        dg.MultiPartitionKey({"config": c, "fold": f})
        for c in instance.get_dynamic_partitions("probe_config")
        for f in instance.get_dynamic_partitions("probe_fold")
    ]


def steps(instance, run_id: str, op_name: str) -> dict:
    """event type -> (timestamp, pid) of the op's step events in one run."""
    events = instance.all_logs(run_id, of_type=STEP_EVENTS)
    return {
        e.dagster_event.event_type: (e.timestamp, e.dagster_event.pid)
        for e in events
        if e.step_key and e.step_key.endswith(op_name)
    }


def celery_workers(instance, run_id: str, op_name: str = "") -> set[str]:
    """Names of the Celery workers that executed the run's steps (of `op_name`, if given), from
    dagster-celery's events."""
    names = set()
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata or {}
        if "Celery worker" in metadata and (entry.step_key or "").endswith(op_name):
            names.add(metadata["Celery worker"].value)
    return names


def warehouse_rows(data_dir) -> pl.DataFrame:
    with duckdb.connect(
        str(next((data_dir / "warehouse").glob("*.duckdb"))), read_only=True
    ) as conn:
        return conn.execute("select * from probes_sweep.fold_results").pl().sort(KEYS)


def partitions_of(instance, run) -> list[str]:
    """The partitions a backfill run materializes: its key, or every key of its range."""
    if "dagster/partition" in run.tags:
        return [run.tags["dagster/partition"]]
    from proj_assets.partitions import probe_config_fold_partitions

    return probe_config_fold_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(
            run.tags[ASSET_PARTITION_RANGE_START_TAG], run.tags[ASSET_PARTITION_RANGE_END_TAG]
        ),
        dynamic_partitions_store=instance,
    )


def backfill_done(instance, backfill_id: str, n_partitions: int):
    """The backfill's runs once every partition has a successful run and nothing is in flight."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    done = {
        p
        for r in runs
        if r.status == dg.DagsterRunStatus.SUCCESS
        for p in partitions_of(instance, r)
    }
    return len(done) == n_partitions and all(r.is_finished for r in runs) and runs


def embedded_rows(profile: Path, data_dir) -> pl.DataFrame:
    """Every fold partition materialized embedded: in-process, sqlite instance, own data folder."""
    with dg.instance_for_test() as embedded:
        defs = location(profile, data_dir)
        materialize(embedded, defs, UPSTREAM)
        for partition in fold_partitions(embedded):
            materialize(embedded, defs, [A.FOLD_RESULTS], partition)
    return warehouse_rows(data_dir)


def assert_written_once_and_equal(
    cluster_rows: pl.DataFrame, local_rows: pl.DataFrame, n_partitions: int
) -> None:
    """Every partition present with the same number of rows, none twice, metrics equal (1e-6)."""
    per_partition = cluster_rows.group_by("config_id", "fold").len()
    assert (
        per_partition.height == n_partitions and per_partition["len"].n_unique() == 1
    )  # none missing
    assert cluster_rows.select(KEYS).is_unique().all()  # none duplicated
    metrics = [c for c, t in cluster_rows.schema.items() if t == pl.Float64]
    assert "pr_auc" in metrics and local_rows.select(KEYS).equals(cluster_rows.select(KEYS))
    for column in (
        metrics
    ):  # NaN where a metric is undefined (e.g. spearman without importances): same places
        here, there = local_rows[column], cluster_rows[column]
        assert here.is_null().equals(there.is_null()) and here.is_nan().equals(there.is_nan()), (
            column
        )
        diff = (here - there).fill_nan(0.0).abs().max()
        assert diff is None or diff <= 1e-6, (column, diff)
