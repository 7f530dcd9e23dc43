"""The host monitor on a real Redis and a real instance, without workers: a task whose worker's
lease expired is failed in the result backend, its run is told which host was lost, and the pool
slot its step held is freed at once; a task of a worker that still holds its lease is left alone."""

from __future__ import annotations

import json
import secrets

import dagster as dg
import pytest
from celery import Celery

from proj_assets.shared.conventions import DUCKDB_POOL
from proj_cluster.heartbeat import LEASE_PREFIX, TASKS_KEY, WorkerHostLost
from proj_cluster.host_monitor import HostMonitor
from proj_cluster.services import redis_client, start_redis, stop_group

WRITE_STEP = "probes__sweep__fold_results.probes_sweep_fold_results_write"


@pytest.fixture
def redis_urls(tmp_path):
    password = secrets.token_urlsafe(16)
    server = start_redis(tmp_path, password)
    base = f"redis://:{password}@127.0.0.1:{server.port}"
    try:
        yield f"{base}/0", f"{base}/1"
    finally:
        stop_group(server.pid)


def _task(redis, run: dg.DagsterRun, worker: str, addr: str) -> str:
    """A task a worker recorded when it received it (heartbeat.Lease.record)."""
    task_id = secrets.token_hex(8)
    record = {"worker": worker, "addr": addr, "run_id": run.run_id, "steps": [WRITE_STEP]}
    redis.hset(TASKS_KEY, task_id, json.dumps(record))
    return task_id


def test_a_lost_hosts_task_is_failed_named_and_its_pool_slot_freed(redis_urls):
    broker, backend = redis_urls
    redis = redis_client(broker, 5)
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(DUCKDB_POOL, 2)
        lost_run, live_run = (instance.add_run(dg.DagsterRun(job_name="j")) for _ in range(2))
        for run in (lost_run, live_run):
            assert storage.claim_concurrency_slot(DUCKDB_POOL, run.run_id, WRITE_STEP).is_claimed
        assert storage.get_concurrency_info(DUCKDB_POOL).active_slot_count == 2
        lost = _task(redis, lost_run, "cpu-1@node7", "10.0.0.17")
        live = _task(redis, live_run, "cpu-2@node8", "10.0.0.18")
        redis.set(LEASE_PREFIX + "cpu-2@node8", json.dumps({"addr": "10.0.0.18"}), ex=60)

        (message,) = HostMonitor(broker, backend, instance).check()

        assert message.startswith("worker cpu-1@node7 at 10.0.0.17 stopped answering")
        results = Celery(broker=broker, backend=backend)
        failed = results.AsyncResult(lost)
        assert failed.state == "FAILURE" and isinstance(failed.result, WorkerHostLost)
        assert not results.AsyncResult(live).ready()  # the live worker's task runs on
        assert redis.hkeys(TASKS_KEY) == [live.encode()]
        info = storage.get_concurrency_info(DUCKDB_POOL)
        assert info.active_slot_count == 1  # the lost step's slot, not the live one's
        assert [s.run_id for s in info.claimed_slots] == [live_run.run_id]
        (event,) = [
            e
            for e in instance.all_logs(lost_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if "stopped answering" in (e.message or "")
        ]
        assert event.step_key == WRITE_STEP and "10.0.0.17" in event.message
