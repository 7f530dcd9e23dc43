"""The executor of every job: embedded, one process per run (in-process executor); Celery workers in
cluster mode.

Embedded, a run's steps run in its own process: the multiprocess executor would start a fresh
interpreter per step (and per check step) that imports the code location, torch and scikit-learn
again, which made a launched 6-partition fold range 18-19 s against ~2 s of work (measured
2026-12-02, bench/backfill_overhead.py; a forkserver preloading those modules was no faster). Jobs
whose steps must overlap (an HPO cell's trial workers) take `parallel_executor_for` explicitly.

Cluster mode (PROJ_CLUSTER=1, see proj_assets/cluster_settings.py) runs each step as a Celery
task on a worker listening to the step's queue: the `dagster-celery/queue` tag of the op or asset
(`cluster_settings.device_queue_tags("gpu")`), else `cpu`. Pools (`duckdb`) still hold across workers: the run's
orchestrator claims the slot in the instance before it submits the step. The settings are checked
when the definitions load, so a missing URL or a service that does not answer fails there, with
its name and host:port, instead of a run that waits forever on a queue.
"""

from __future__ import annotations

import dagster as dg

from proj_assets.cluster_settings import (
    celery_config,
    cluster_enabled,
    load_cluster_settings,
    require_reachable,
)


def executor_for() -> dg.ExecutorDefinition:
    """The code location's default (asset backfills, the UI's Materialize, every job without its own)."""
    settings = load_cluster_settings()
    if settings is None:
        return dg.in_process_executor
    require_reachable(settings)
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(settings), name="celery")


def parallel_executor_for(max_concurrent: int) -> dg.ExecutorDefinition | None:
    """For jobs whose steps should run at once: embedded, one process per step, `max_concurrent`
    (the profile's `compute.threads`) at a time; None in cluster mode, where the default (Celery)
    already runs steps on the workers."""
    if cluster_enabled():
        return None
    return dg.multiprocess_executor.configured({"max_concurrent": max_concurrent})
