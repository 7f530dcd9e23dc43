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

from proj_cluster.local_cluster import process_env
from proj_cluster.services import group_alive, log_tail, wait_until
from proj_tests.cluster.folds import (
    COMPUTE_OP,
    FOLD_RESULTS,
    UPSTREAM,
    WRITE_OP,
    assert_written_once_and_equal,
    backfill_done,
    celery_workers,
    fold_partitions,
    location,
    materialize,
    partitions_of,
    steps,
    warehouse_rows,
)


def _kill_a_running_compute_step(instance, worker_groups: set[int]):
    """SIGKILL the worker process running some partition's compute step (never a process of ours
    outside the cluster's worker groups). Returns (run id, pid)."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        compute = steps(instance, run.run_id, COMPUTE_OP)
        if dg.DagsterEventType.STEP_START in compute and len(compute) == 1:
            pid = compute[dg.DagsterEventType.STEP_START][1]
            if os.getpgid(pid) in worker_groups:
                os.kill(pid, signal.SIGKILL)
                return run.run_id, pid
    return None


def test_fold_backfill_on_two_workers_survives_a_killed_worker_and_matches_a_local_run(
    cluster, cluster_profile, embedded_fold_rows
):
    data_dir, started = cluster.data_dir, time.monotonic()
    with cluster.instance() as instance:
        materialize(instance, location(cluster_profile, data_dir), UPSTREAM)
        partitions = [str(p) for p in fold_partitions(instance)]
        assert len(partitions) == 8
        # an asset backfill, as the UI launches one (proj_cluster/backfill.py says why not a job backfill)
        backfill_id = cluster.backfill(FOLD_RESULTS, partitions)
        groups = {w.pid for w in cluster.state.workers}
        victim_run, victim_pid = wait_until(
            lambda: _kill_a_running_compute_step(instance, groups),
            300,
            "a compute step running on a worker",
            interval=0.2,
        )
        print(f"killed {victim_pid} mid-step at {time.monotonic() - started:.0f}s")
        runs = wait_until(
            lambda: backfill_done(instance, backfill_id, len(partitions)),
            900,
            "every partition to succeed",
        )
        print(f"backfill done at {time.monotonic() - started:.0f}s")

        failed = [r for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
        assert [r.run_id for r in failed] == [victim_run], [(r.run_id, r.status) for r in failed]
        retry = [r for r in runs if r.tags.get("dagster/parent_run_id") == victim_run]
        assert (
            len(retry) == 1 and retry[0].status == dg.DagsterRunStatus.SUCCESS
        )  # the run retry policy re-ran it
        assert (
            steps(instance, retry[0].run_id, COMPUTE_OP)[dg.DagsterEventType.STEP_START][1]
            != victim_pid
        )

        succeeded = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
        computes = [steps(instance, r.run_id, COMPUTE_OP) for r in succeeded]
        writes = [steps(instance, r.run_id, WRITE_OP) for r in succeeded]
        pids = {s[dg.DagsterEventType.STEP_START][1] for s in computes + writes}
        assert len(pids) >= 2, pids
        workers = set().union(*(celery_workers(instance, r.run_id) for r in succeeded))
        assert {w.split("@")[0] for w in workers} == {"cpu-1", "cpu-2"}, workers
        spans = sorted(
            (s[dg.DagsterEventType.STEP_START][0], s[dg.DagsterEventType.STEP_SUCCESS][0])
            for s in writes
        )
        assert all(
            later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)
        ), spans  # writes never overlap
        assert (
            len(spans) == len(succeeded) >= 4
        )  # ranges of probes.partitions_per_run = 2 partitions
        assert sorted(p for r in succeeded for p in partitions_of(instance, r)) == sorted(
            partitions
        )

    # the killed step's retry wrote once; the same partitions embedded (conftest.py) give the same rows
    assert_written_once_and_equal(warehouse_rows(data_dir), embedded_fold_rows, len(partitions))


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
    code = (
        "import sys, dagster as dg\n"
        "from dagster._core.definitions.reconstruct import ReconstructableJob\n"
        "job = ReconstructableJob.for_file(sys.argv[1] + '/routed_job.py', 'routed')  # workers load the file\n"
        "with dg.execute_job(job, instance=dg.DagsterInstance.get()) as r:\n"
        "    print(r.success, r.output_for_node('on_gpu'), r.output_for_node('on_default'))"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)],
            env=process_env(cluster.state),
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        cluster.stop_worker(gpu)
    assert out.returncode == 0, out.stderr[-3000:]
    success, gpu_group, default_group = out.stdout.split()[-3:]
    assert success == "True"
    assert int(gpu_group) == gpu.pid  # the tagged step ran in the gpu worker's process group
    assert int(default_group) in {
        w.pid for w in cluster.state.workers
    }  # the untagged one on a cpu worker


def test_a_worker_that_cannot_import_the_code_location_says_so(cluster, tmp_path):
    broken = cluster.start_worker(
        "broken", extra_env={"PROJ_PROFILE": str(tmp_path / "missing.yaml")}
    )
    try:
        wait_until(lambda: not group_alive(broken.pid), 120, "the broken worker to exit")
    finally:
        cluster.stop_worker(broken)
    log = log_tail(broken.log, 40)
    assert "proj_cluster worker cannot load the code location proj_assets.definitions" in log, log
    assert "profile file not found" in log and "missing.yaml" in log
