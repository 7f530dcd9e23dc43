"""The head host's watch over worker leases (heartbeat.py): `python -m proj_cluster monitor`,
started next to the daemon by `python -m proj_cluster up`.

Every second it reads the tasks the workers recorded. A task whose result is in the backend is
finished and forgotten. A task whose worker's lease has expired is failed in the result backend
with `WorkerHostLost`, naming the worker and its address, and an engine event in its run says the
same; the pool slot its step held (a warehouse write) is freed at once. The orchestrator frees a
slot on the step's failure *event*, and a lost task has none (its result is an exception), so
without this the slot would wait for run monitoring's sweep after the run ends. The run's
orchestrator, polling that result, fails the step and then the run; the daemon's run retry
re-executes the run from the failed step on a live worker. The task was acknowledged when it started, so Celery never hands it
to a second worker, and the lost worker fenced its step itself: the step runs again only in the
retry. Detection takes at most the lease plus one poll.
"""

from __future__ import annotations

import json
import sys
import time

from proj_cluster.heartbeat import LEASE_PREFIX, TASKS_KEY, WorkerHostLost

POLL_S = 1.0


def lost_message(record: dict) -> str:
    steps = ", ".join(record["steps"]) or "a task"
    return (
        f"worker {record['worker']} at {record['addr']} stopped answering (its lease in Redis expired) while "
        f"running {steps}: the step is failed so the run retry re-executes it on a live worker"
    )


class HostMonitor:
    def __init__(self, broker_url: str, backend_url: str, instance):
        from celery import Celery

        from proj_cluster.services import redis_client

        self.app = Celery("proj_cluster_monitor", broker=broker_url, backend=backend_url)
        self.redis = redis_client(broker_url, timeout=5)
        self.instance = instance

    def check(self) -> list[str]:
        """One pass: forget finished tasks, fail those of lost workers; the messages of the latter."""
        failed = []
        for task_id, raw in self.redis.hgetall(TASKS_KEY).items():
            task_id, record = task_id.decode(), json.loads(raw)
            if self.app.AsyncResult(task_id).ready():
                self.redis.hdel(TASKS_KEY, task_id)
            elif not self.redis.exists(LEASE_PREFIX + record["worker"]):
                message = lost_message(record)
                self.app.backend.mark_as_failure(task_id, WorkerHostLost(message))
                self._free_slots(record)
                self._report(record, message)
                self.redis.hdel(TASKS_KEY, task_id)
                failed.append(message)
        return failed

    def _free_slots(self, record: dict) -> None:
        """Free the concurrency slots the lost task's steps held (none for a step outside a pool).
        Safe: the lost worker fenced its step at two thirds of the lease, before it expired."""
        if record["run_id"]:
            for step_key in record["steps"]:
                self.instance.event_log_storage.free_concurrency_slot_for_step(
                    record["run_id"], step_key
                )

    def _report(self, record: dict, message: str) -> None:
        from dagster._core.events import EngineEventData

        run = self.instance.get_run_by_id(record["run_id"]) if record["run_id"] else None
        if run is not None:
            self.instance.report_engine_event(
                message,
                run,
                EngineEventData({"worker": record["worker"], "address": record["addr"]}),
                step_key=record["steps"][0] if len(record["steps"]) == 1 else None,
            )

    def watch(self) -> None:
        while True:
            for message in self.check():
                print(f"proj_cluster monitor: {message}", file=sys.stderr, flush=True)
            time.sleep(POLL_S)


def run_monitor() -> None:
    """The monitor in the foreground, on the cluster's settings and instance (DAGSTER_HOME)."""
    import dagster as dg

    from proj_assets.cluster_settings import load_cluster_settings

    settings = load_cluster_settings()
    if settings is None:
        raise SystemExit("proj_cluster monitor: PROJ_CLUSTER is not set")
    with dg.DagsterInstance.get() as instance:
        HostMonitor(settings.broker_url, settings.backend_url, instance).watch()
