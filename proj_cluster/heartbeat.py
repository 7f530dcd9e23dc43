"""Worker leases: how the cluster tells a worker *host* that stopped answering from a slow step.

Celery alone cannot: a task is acknowledged when it starts (so the broker never hands it to
another worker) and a host that loses power or network never reports back, so the run's
orchestrator would wait on the result forever. Dagster's run monitoring does not help either: it
watches the run's orchestrator process, which lives on the head host and stays healthy. So every
worker holds a lease in Redis that it renews every third of `PROJ_CLUSTER_WORKER_LEASE_S`, and
records each task it receives; the head's monitor (host_monitor.py) fails the tasks of a worker
whose lease expired. A worker that cannot renew its lease for two thirds of it kills its running
step itself (fencing), before the monitor declares it lost: a host cut off from the cluster never
finishes a step late, next to the retry.

Keys, in the broker's Redis database:
    proj_cluster:lease:<worker>   {"addr": its address}, expires unless renewed
    proj_cluster:tasks            task id -> {"worker", "addr", "run_id", "steps"}, kept until the
                                  monitor sees the task's result (or fails it)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

LEASE_VARIABLE = "PROJ_CLUSTER_WORKER_LEASE_S"
DEFAULT_LEASE_S = 30.0
LEASE_PREFIX = "proj_cluster:lease:"
TASKS_KEY = "proj_cluster:tasks"


class WorkerHostLost(Exception):
    """Stored by the monitor as the result of a task whose worker's lease expired."""


def lease_seconds() -> float:
    value = os.environ.get(LEASE_VARIABLE, "")
    try:
        lease = float(value) if value else DEFAULT_LEASE_S
    except ValueError:
        lease = 0.0
    if lease <= 0:
        raise SystemExit(f"{LEASE_VARIABLE} must be a positive number of seconds, got {value!r}")
    return lease


class Lease:
    """The lease of one worker (its Celery node name), renewed from a thread of its main process."""

    def __init__(self, broker_url: str, worker: str, lease_s: float):
        from proj_cluster.services import redis_client

        self.worker, self.lease_s, self.period = worker, lease_s, lease_s / 3
        self.client = redis_client(broker_url, timeout=self.period)
        self.addr = self.client.client_info()["addr"].rsplit(":", 1)[
            0
        ]  # as the cluster sees this host
        self.renewed = time.monotonic()

    def renew(self) -> None:
        self.client.set(
            LEASE_PREFIX + self.worker, json.dumps({"addr": self.addr}), px=int(self.lease_s * 1000)
        )
        self.renewed = time.monotonic()

    def record(self, task_id: str, run_id: str | None, steps: list[str]) -> None:
        self.client.hset(
            TASKS_KEY,
            task_id,
            json.dumps(
                {"worker": self.worker, "addr": self.addr, "run_id": run_id, "steps": steps}
            ),
        )

    def keep(self) -> None:
        """Renew forever; fence once per outage that outlasts two thirds of the lease."""
        fenced = False
        while True:
            try:
                self.renew()
                fenced = False
            except Exception:
                if not fenced and time.monotonic() - self.renewed > self.lease_s - self.period:
                    self.fence()
                    fenced = True
            time.sleep(self.period)

    def fence(self) -> None:
        from proj_cluster.services import children

        pids = children(os.getpid())  # the pool's processes: the one running a step
        sys.stderr.write(
            f"proj_cluster worker {self.worker}: lease not renewed for "
            f"{time.monotonic() - self.renewed:.0f} s (Redis unreachable); killing its pool "
            f"processes {pids} so that the step it was running does not finish after the cluster "
            "has failed it and retried it elsewhere\n"
        )
        for pid in pids:
            os.kill(pid, signal.SIGKILL)


def _step_args(request) -> tuple[str | None, list[str]]:
    """(run id, step keys) of a dagster-celery step task."""
    from dagster._grpc.types import ExecuteStepArgs
    from dagster._serdes import unpack_value

    try:
        args = unpack_value(request.kwargs["execute_step_args_packed"], as_type=ExecuteStepArgs)
    except Exception:
        return None, []
    return args.run_id, list(args.step_keys_to_execute or [])


def install() -> None:
    """Hold a lease from the worker's start and record every task it receives (worker_boot)."""
    from celery import signals

    lease: list[Lease] = []

    @signals.worker_ready.connect(weak=False)
    def _start(sender, **_):
        lease.append(Lease(os.environ["PROJ_CLUSTER_BROKER_URL"], sender.hostname, lease_seconds()))
        lease[0].renew()
        threading.Thread(target=lease[0].keep, name="proj-cluster-lease", daemon=True).start()

    @signals.task_received.connect(weak=False)
    def _record(request, **_):
        lease[0].record(request.id, *_step_args(request))
