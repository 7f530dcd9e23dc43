"""Cluster mode end to end: a `fold_results` backfill through the daemon on two Celery workers
(instance on PostgreSQL, broker and results on Redis), one worker killed mid-step, compared
with an embedded run of the same partitions; queue routing by device tag; a worker that cannot
import the code location. Services come from the project's own LocalCluster (conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
import duckdb
import polars as pl
import pytest

from proj_assets.probes import assets as A
from proj_assets.probes import checks as C
from proj_cluster.local_cluster import process_env
from proj_cluster.services import group_alive, log_tail, wait_until

ASSETS = [A.corpus, A.token_activations, A.manifest, A.fold_results]
CHECKS = [C.groups_and_labels_valid, C.activations_finite, C.index_matches_cache, C.fold_checks]
COMPUTE_OP, WRITE_OP = "probes_sweep_fold_results_compute", "probes_sweep_fold_results_write"
KEYS = ["config_id", "fold", "role", "probe", "probe_seed"]
STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}



def _materialize(instance, resources, keys, partition=None):
    result = dg.materialize(ASSETS + CHECKS, selection=dg.AssetSelection.assets(*keys), resources=resources,
                            instance=instance, partition_key=partition)
    assert all(e.passed for e in result.get_asset_check_evaluations())


def _resources(data_dir):
    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile

    return build_resources(load_profile(), data_dir)


def _fold_partitions(instance) -> list[dg.MultiPartitionKey]:
    return [dg.MultiPartitionKey({"config": c, "fold": f}) for c in instance.get_dynamic_partitions("probe_config")
            for f in instance.get_dynamic_partitions("probe_fold")]


def _steps(instance, run_id: str, op_name: str) -> dict:
    """event type -> (timestamp, pid) of the op's step events in one run."""
    events = instance.all_logs(run_id, of_type=STEP_EVENTS)
    return {e.dagster_event.event_type: (e.timestamp, e.dagster_event.pid) for e in events
            if e.step_key and e.step_key.endswith(op_name)}


def _celery_workers(instance, run_id: str) -> set[str]:
    """Names of the Celery workers that executed the run's steps (from dagster-celery's events)."""
    names = set()
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata or {}
        if "Celery worker" in metadata:
            names.add(metadata["Celery worker"].value)
    return names


def _results(data_dir) -> pl.DataFrame:
    with duckdb.connect(str(next((data_dir / "warehouse").glob("*.duckdb"))), read_only=True) as conn:
        return conn.execute("select * from probes_sweep.fold_results").pl().sort(KEYS)


def _kill_a_running_compute_step(instance, worker_groups: set[int]):
    """SIGKILL the worker process running some partition's compute step (never a process of ours
    outside the cluster's worker groups). Returns (run id, pid)."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        steps = _steps(instance, run.run_id, COMPUTE_OP)
        if dg.DagsterEventType.STEP_START in steps and len(steps) == 1:
            pid = steps[dg.DagsterEventType.STEP_START][1]
            if os.getpgid(pid) in worker_groups:
                os.kill(pid, signal.SIGKILL)
                return run.run_id, pid
    return None


def _partitions_of(instance, run) -> list[str]:
    """The partitions a backfill run materializes: its key, or every key of its range."""
    if "dagster/partition" in run.tags:
        return [run.tags["dagster/partition"]]
    from proj_assets.partitions import probe_config_fold_partitions

    return probe_config_fold_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(
        run.tags[ASSET_PARTITION_RANGE_START_TAG], run.tags[ASSET_PARTITION_RANGE_END_TAG]), dynamic_partitions_store=instance)


def _backfill_done(instance, backfill_id: str, n_partitions: int):
    """The backfill's runs once every partition has a successful run and nothing is in flight."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    done = {p for r in runs if r.status == dg.DagsterRunStatus.SUCCESS for p in _partitions_of(instance, r)}
    return len(done) == n_partitions and all(r.is_finished for r in runs) and runs


def test_fold_backfill_on_two_workers_survives_a_killed_worker_and_matches_a_local_run(cluster, tmp_path):
    data_dir, started = cluster.data_dir, time.monotonic()
    with cluster.instance() as instance:
        _materialize(instance, _resources(data_dir), [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
        partitions = [str(p) for p in _fold_partitions(instance)]
        assert len(partitions) == 8
        # an asset backfill, as the UI launches one (proj_cluster/backfill.py says why not a job backfill)
        backfill_id = cluster.backfill("probes/sweep/fold_results", partitions)
        groups = {w.pid for w in cluster.state.workers}
        victim_run, victim_pid = wait_until(lambda: _kill_a_running_compute_step(instance, groups), 300,
                                            "a compute step running on a worker", interval=0.2)
        print(f"killed {victim_pid} mid-step at {time.monotonic() - started:.0f}s")
        runs = wait_until(lambda: _backfill_done(instance, backfill_id, len(partitions)), 900,
                          "every partition to succeed")
        print(f"backfill done at {time.monotonic() - started:.0f}s")

        failed = [r for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
        assert [r.run_id for r in failed] == [victim_run], [(r.run_id, r.status) for r in failed]
        retry = [r for r in runs if r.tags.get("dagster/parent_run_id") == victim_run]
        assert len(retry) == 1 and retry[0].status == dg.DagsterRunStatus.SUCCESS  # the run retry policy re-ran it
        assert _steps(instance, retry[0].run_id, COMPUTE_OP)[dg.DagsterEventType.STEP_START][1] != victim_pid

        succeeded = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
        computes = [_steps(instance, r.run_id, COMPUTE_OP) for r in succeeded]
        writes = [_steps(instance, r.run_id, WRITE_OP) for r in succeeded]
        pids = {s[dg.DagsterEventType.STEP_START][1] for s in computes + writes}
        assert len(pids) >= 2, pids
        workers = set().union(*(_celery_workers(instance, r.run_id) for r in succeeded))
        assert {w.split("@")[0] for w in workers} == {"cpu-1", "cpu-2"}, workers
        spans = sorted((s[dg.DagsterEventType.STEP_START][0], s[dg.DagsterEventType.STEP_SUCCESS][0]) for s in writes)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), spans  # writes never overlap
        assert len(spans) == len(succeeded) >= 4  # ranges of probes.partitions_per_run = 2 partitions
        assert sorted(p for r in succeeded for p in _partitions_of(instance, r)) == sorted(partitions)

    cluster_rows = _results(data_dir)
    per_partition = cluster_rows.group_by("config_id", "fold").len()
    assert per_partition.height == len(partitions) and per_partition["len"].n_unique() == 1  # none missing
    assert cluster_rows.select(KEYS).is_unique().all()  # none duplicated (the killed step's retry wrote once)

    local = tmp_path / "local"  # the same partitions, embedded: in-process, sqlite instance, own data folder
    with dg.instance_for_test() as embedded:
        resources = _resources(local)
        _materialize(embedded, resources, [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
        for partition in _fold_partitions(embedded):
            _materialize(embedded, resources, [A.FOLD_RESULTS], partition)
    local_rows = _results(local)
    print(f"local run done at {time.monotonic() - started:.0f}s")
    metrics = [c for c, t in cluster_rows.schema.items() if t == pl.Float64]
    assert "pr_auc" in metrics and local_rows.select(KEYS).equals(cluster_rows.select(KEYS))
    for column in metrics:  # NaN where a metric is undefined (e.g. spearman without importances): same places
        here, there = local_rows[column], cluster_rows[column]
        assert here.is_null().equals(there.is_null()) and here.is_nan().equals(there.is_nan()), column
        diff = (here - there).fill_nan(0.0).abs().max()
        assert diff is None or diff <= 1e-6, (column, diff)


ROUTED_JOB = textwrap.dedent("""
    import os
    import dagster as dg
    from dagster_celery import celery_executor
    from proj_assets.cluster_settings import celery_config, device_queue_tags, load_cluster_settings

    @dg.op(tags=device_queue_tags("gpu"))
    def on_gpu() -> int:
        return os.getpgid(0)

    @dg.op
    def on_default() -> int:
        return os.getpgid(0)

    @dg.job(executor_def=celery_executor.configured(celery_config(load_cluster_settings())))
    def routed():
        on_gpu()
        on_default()
""")


def test_steps_go_to_the_queue_of_their_device_tag(cluster, tmp_path):
    (tmp_path / "routed_job.py").write_text(ROUTED_JOB)
    gpu = cluster.start_worker("gpu-1", ("gpu",))
    code = ("import sys, dagster as dg\n"
            "from dagster._core.definitions.reconstruct import ReconstructableJob\n"
            "job = ReconstructableJob.for_file(sys.argv[1] + '/routed_job.py', 'routed')  # workers load the file\n"
            "with dg.execute_job(job, instance=dg.DagsterInstance.get()) as r:\n"
            "    print(r.success, r.output_for_node('on_gpu'), r.output_for_node('on_default'))")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=process_env(cluster.state),
                             capture_output=True, text=True, timeout=240)
    finally:
        cluster.stop_worker(gpu)
    assert out.returncode == 0, out.stderr[-3000:]
    success, gpu_group, default_group = out.stdout.split()[-3:]
    assert success == "True"
    assert int(gpu_group) == gpu.pid  # the tagged step ran in the gpu worker's process group
    assert int(default_group) in {w.pid for w in cluster.state.workers}  # the untagged one on a cpu worker


def test_a_worker_that_cannot_import_the_code_location_says_so(cluster, tmp_path):
    broken = cluster.start_worker("broken", extra_env={"PROJ_PROFILE": str(tmp_path / "missing.yaml")})
    try:
        wait_until(lambda: not group_alive(broken.pid), 120, "the broken worker to exit")
    finally:
        cluster.stop_worker(broken)
    log = log_tail(broken.log, 40)
    assert "proj_cluster worker cannot import the code location proj_assets.definitions" in log, log
    assert "profile file not found" in log and "missing.yaml" in log
