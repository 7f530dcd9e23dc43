"""A Celery worker of the cluster, on this host or another one that shares the data folder.

`python -m proj_cluster worker --name gpu-1 --queue gpu` reads its settings (the environment,
filled from `PROJ_CLUSTER_ENV_FILE` when set, a file of mode 0600), checks that PostgreSQL and
Redis answer and accept its password (clear error naming the service and host:port otherwise) and
that its PROJ_DATA_DIR is the cluster's shared folder (shared_root.py), writes the instance home
and the worker's Celery config, then becomes `dagster-celery worker start`. Each worker runs one
step at a time (`--concurrency=1`) and reserves no second one while it runs (so a lost host holds
one task at most): a step is a training job that uses the host's cores itself, or, with
`--threads N`, N of them (one worker per core or per GPU is the usual layout).
`proj_cluster.worker_boot` is imported before the pool starts, so a worker that cannot import the
code location stops with that error, and it holds the worker's lease (heartbeat.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from proj_assets.cluster_settings import (
    ClusterSettingsError,
    ServiceUnreachable,
    celery_config,
    load_cluster_settings,
    require_reachable,
)
from proj_cluster import shared_root
from proj_cluster.env_file import EnvFileError, load_env_file, write_private
from proj_cluster.heartbeat import lease_seconds
from proj_cluster.home import prepare_home
from proj_cluster.services import redis_client


def worker_argv(name: str, queues: list[str], config_yaml: Path, concurrency: int = 1) -> list[str]:
    argv = [
        str(Path(sys.executable).parent / "dagster-celery"),
        "worker",
        "start",
        "-A",
        "dagster_celery.app",
        "-y",
        str(config_yaml),
        "-n",
        name,
        "-i",
        "proj_cluster.worker_boot",
    ]
    for queue in queues:
        argv += ["-q", queue]
    return argv + ["--", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle"]


def worker_celery_config(settings) -> dict:
    """The executor's Celery config plus the worker-only setting: fetch a task only when a process
    is free (Redis broker), so a host that disappears takes no reserved, unacknowledged task along."""
    config = celery_config(settings)
    return {**config, "config_source": {**config["config_source"], "worker_disable_prefetch": True}}


# The thread pools a step may start besides torch's (set by the profile per step): BLAS under numpy
# and scikit-learn, OpenMP, polars. Several workers on one host each get their share of the cores.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "POLARS_MAX_THREADS",
)


def exec_worker(
    name: str, queues: list[str], concurrency: int = 1, threads: int | None = None
) -> None:
    try:
        load_env_file()
        settings = load_cluster_settings()
        if settings is None:
            raise ClusterSettingsError(
                "PROJ_CLUSTER is not set; `python -m proj_cluster env` prints the settings"
            )
        lease_seconds()  # a malformed lease fails here, not in the started worker
        if "DAGSTER_HOME" not in os.environ:  # each host its own; the settings file has none
            raise ClusterSettingsError(
                "DAGSTER_HOME is not set (this host's instance home, where the worker writes the "
                "cluster's dagster.yaml)"
            )
        require_reachable(settings)
        data_dir = Path(os.environ.get("PROJ_DATA_DIR", "data")).resolve()
        shared_root.check(redis_client(settings.broker_url, 5), data_dir)
    except (
        EnvFileError,
        ClusterSettingsError,
        ServiceUnreachable,
        shared_root.SharedRootError,
    ) as exc:
        raise SystemExit(f"proj_cluster worker {name}: {exc}") from None
    home = Path(os.environ["DAGSTER_HOME"])
    prepare_home(home)
    config_yaml = home / f"celery-{name}.yaml"
    write_private(
        config_yaml, yaml.safe_dump({"execution": {"config": worker_celery_config(settings)}})
    )
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    if threads:
        os.environ.update({variable: str(threads) for variable in THREAD_VARIABLES})
    argv = worker_argv(name, queues, config_yaml, concurrency)
    os.execv(argv[0], argv)
