"""A Celery worker of the cluster, on this host or another one that shares the data folder.

`python -m proj_cluster worker --name gpu-1 --queue gpu` checks its settings and that PostgreSQL
and Redis answer (clear error naming host:port otherwise), writes the instance home and the
worker's Celery config from the PROJ_CLUSTER_* environment, then becomes
`dagster-celery worker start`. Each worker runs one step at a time (`--concurrency=1`): a step is
a training job that uses the host's cores itself, or, with `--threads N`, N of them (one worker
per core or per GPU is the usual layout). `proj_cluster.worker_boot` is imported before
the pool starts, so a worker that cannot import the code location stops with that error.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml

from proj_assets.cluster_settings import (ClusterSettingsError, ServiceUnreachable, celery_config,
                                          load_cluster_settings, require_reachable)
from proj_cluster.local_cluster import PACKAGE_DIR


def prepare_home(home: Path) -> None:
    """DAGSTER_HOME with the cluster's dagster.yaml (a host that joins has none yet)."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PACKAGE_DIR / "dagster.yaml", home / "dagster.yaml")


def worker_argv(name: str, queues: list[str], config_yaml: Path, concurrency: int = 1) -> list[str]:
    argv = [str(Path(sys.executable).parent / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
            "-y", str(config_yaml), "-n", name, "-i", "proj_cluster.worker_boot"]
    for queue in queues:
        argv += ["-q", queue]
    return argv + ["--", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle"]


# The thread pools a step may start besides torch's (set by the profile per step): BLAS under numpy
# and scikit-learn, OpenMP, polars. Several workers on one host each get their share of the cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS")


def exec_worker(name: str, queues: list[str], concurrency: int = 1, threads: int | None = None) -> None:
    try:
        settings = load_cluster_settings()
        if settings is None:
            raise ClusterSettingsError("PROJ_CLUSTER is not set; `python -m proj_cluster env` prints the settings")
        require_reachable(settings)
    except (ClusterSettingsError, ServiceUnreachable) as exc:
        raise SystemExit(f"proj_cluster worker {name}: {exc}") from None
    if "DAGSTER_HOME" not in os.environ:
        raise SystemExit("proj_cluster worker: DAGSTER_HOME is not set (the instance home with the cluster's dagster.yaml)")
    home = Path(os.environ["DAGSTER_HOME"])
    prepare_home(home)
    config_yaml = home / f"celery-{name}.yaml"
    config_yaml.write_text(yaml.safe_dump({"execution": {"config": celery_config(settings)}}))
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    if threads:
        os.environ.update({variable: str(threads) for variable in THREAD_VARIABLES})
    argv = worker_argv(name, queues, config_yaml, concurrency)
    os.execv(argv[0], argv)
