"""The executor of every job: embedded (local processes) by default, Celery workers in cluster mode.

Cluster mode (PROJ_CLUSTER=1, see proj_assets/cluster_settings.py) runs each step as a Celery
task on a worker listening to the step's queue: the `dagster-celery/queue` tag of the op or asset
(`cluster_settings.device_queue_tags("gpu")`), else `cpu`. Pools (`duckdb`) still hold across workers: the run's
orchestrator claims the slot in the instance before it submits the step. The settings are checked
when the definitions load, so a missing URL or a service that does not answer fails there, with
its name and host:port, instead of a run that waits forever on a queue.
"""

from __future__ import annotations

import dagster as dg

from proj_assets.cluster_settings import celery_config, load_cluster_settings, require_reachable
from proj_assets.profiles import Profile


def executor_for(profile: Profile) -> dg.ExecutorDefinition:
    settings = load_cluster_settings()
    if settings is None:
        return dg.multiprocess_executor.configured({"max_concurrent": profile.compute.threads})
    require_reachable(settings)
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(settings), name="celery")
