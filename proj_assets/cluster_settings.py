"""Cluster mode settings, read from the environment (config layer: no Dagster, no domain).

The embedded default needs no service. `PROJ_CLUSTER=1` switches to the cluster: the Dagster
instance on PostgreSQL (proj_cluster/dagster.yaml reads the same PROJ_CLUSTER_PG_* variables),
steps on Celery workers with Redis as broker and result backend, and Optuna studies in the same
PostgreSQL server (database PROJ_CLUSTER_OPTUNA_DB) so several workers share one study.

`python -m proj_cluster up` starts the services and prints these variables. A cluster setting
without its URLs is a `ClusterSettingsError` naming the missing variable; a service that does not
answer is a `ServiceUnreachable` naming host:port, after at most `CONNECT_TIMEOUT_S`, never a hang.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

CLUSTER_FLAG = "PROJ_CLUSTER"
CONNECT_TIMEOUT_S = 3.0
DEFAULT_QUEUE = "cpu"  # the Celery queue of a step without a queue tag
QUEUE_TAG = "dagster-celery/queue"  # the tag dagster-celery reads to route a step
DEVICE_QUEUES = ("cpu", "gpu")

# variable -> what it holds (the error message quotes it)
REQUIRED = {
    "PROJ_CLUSTER_BROKER_URL": "Celery broker, e.g. redis://127.0.0.1:6379/0",
    "PROJ_CLUSTER_BACKEND_URL": "Celery result backend, e.g. redis://127.0.0.1:6379/1",
    "PROJ_CLUSTER_PG_HOST": "PostgreSQL host of the Dagster instance and Optuna, e.g. 127.0.0.1",
    "PROJ_CLUSTER_PG_PORT": "PostgreSQL port, e.g. 5432",
}
OPTIONAL = {
    "PROJ_CLUSTER_PG_USER": "postgres",
    "PROJ_CLUSTER_PG_PASSWORD": "",
    "PROJ_CLUSTER_PG_DB": "dagster",
    "PROJ_CLUSTER_OPTUNA_DB": "optuna",
}


class ClusterSettingsError(ValueError):
    """Cluster mode is on but a setting is missing or malformed; the message names it."""


class ServiceUnreachable(ConnectionError):
    """A cluster service (PostgreSQL, Redis) does not accept connections at host:port."""


@dataclass(frozen=True)
class ClusterSettings:
    broker_url: str
    backend_url: str
    pg_host: str
    pg_port: int
    pg_user: str = "postgres"
    pg_password: str = ""
    pg_db: str = "dagster"
    optuna_db: str = "optuna"

    def postgres_url(self, database: str) -> str:
        """SQLAlchemy URL; `+psycopg2` because with SQLAlchemy 2.1 a bare postgresql:// means psycopg 3."""
        auth = quote(self.pg_user) + (f":{quote(self.pg_password)}" if self.pg_password else "")
        return f"postgresql+psycopg2://{auth}@{self.pg_host}:{self.pg_port}/{database}"

    @property
    def optuna_storage_url(self) -> str:
        return self.postgres_url(self.optuna_db)

    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Service name -> (host, port) of every service this cluster needs."""
        return {
            "PostgreSQL": (self.pg_host, self.pg_port),
            "Redis broker": url_endpoint(self.broker_url),
            "Redis result backend": url_endpoint(self.backend_url),
        }


def cluster_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(CLUSTER_FLAG, "").strip().lower() in {"1", "true", "yes", "on"}


def url_endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ClusterSettingsError(
            f"{url!r} names no host (expected e.g. redis://127.0.0.1:6379/0)"
        )
    try:
        return parts.hostname, parts.port or 6379
    except ValueError as exc:
        raise ClusterSettingsError(f"{url!r} has an invalid port: {exc}") from None


def load_cluster_settings(environ: Mapping[str, str] = os.environ) -> ClusterSettings | None:
    """The cluster settings when PROJ_CLUSTER is on, else None (embedded mode)."""
    if not cluster_enabled(environ):
        return None
    missing = [
        f"{name} ({what})" for name, what in REQUIRED.items() if not environ.get(name, "").strip()
    ]
    if missing:
        raise ClusterSettingsError(
            f"{CLUSTER_FLAG}=1 but these settings are not set: "
            + "; ".join(missing)
            + ". `python -m proj_cluster env` prints them for a running cluster."
        )
    port = environ["PROJ_CLUSTER_PG_PORT"].strip()
    if not port.isdigit():
        raise ClusterSettingsError(f"PROJ_CLUSTER_PG_PORT must be a port number, got {port!r}")
    for name in ("PROJ_CLUSTER_BROKER_URL", "PROJ_CLUSTER_BACKEND_URL"):
        if not environ[name].startswith(("redis://", "rediss://")):
            raise ClusterSettingsError(f"{name} must be a redis:// URL, got {environ[name]!r}")
        url_endpoint(environ[name])
    opt = {name: environ.get(name) or default for name, default in OPTIONAL.items()}
    return ClusterSettings(
        broker_url=environ["PROJ_CLUSTER_BROKER_URL"].strip(),
        backend_url=environ["PROJ_CLUSTER_BACKEND_URL"].strip(),
        pg_host=environ["PROJ_CLUSTER_PG_HOST"].strip(),
        pg_port=int(port),
        pg_user=opt["PROJ_CLUSTER_PG_USER"],
        pg_password=opt["PROJ_CLUSTER_PG_PASSWORD"],
        pg_db=opt["PROJ_CLUSTER_PG_DB"],
        optuna_db=opt["PROJ_CLUSTER_OPTUNA_DB"],
    )


def _ping_postgres(settings: ClusterSettings, timeout: float) -> None:
    import psycopg2

    psycopg2.connect(
        host=settings.pg_host,
        port=settings.pg_port,
        user=settings.pg_user,
        password=settings.pg_password,
        dbname=settings.pg_db,
        connect_timeout=max(int(timeout), 1),
    ).close()


def _ping_redis(url: str, timeout: float) -> None:
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
    )
    try:
        client.ping()
    finally:
        client.close()


def require_reachable(settings: ClusterSettings, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, naming host:port, when a service does not answer its own protocol (a port that
    accepts TCP but never replies counts as unreachable too) within `timeout` seconds."""
    checks = {
        "PostgreSQL": lambda: _ping_postgres(settings, timeout),
        "Redis broker": lambda: _ping_redis(settings.broker_url, timeout),
        "Redis result backend": lambda: _ping_redis(settings.backend_url, timeout),
    }
    failures = []
    for name, (host, port) in settings.endpoints().items():
        try:
            checks[name]()
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
            failures.append(f"{name} at {host}:{port} is unreachable ({reason})")
    if failures:
        raise ServiceUnreachable(
            f"cluster mode ({timeout:.0f} s timeout): "
            + "; ".join(failures)
            + ". Start the services with `make cluster-up` or fix the PROJ_CLUSTER_* settings."
        )


def device_queue_tags(kind: str) -> dict[str, str]:
    """Op/asset tags sending a step to the Celery workers of one device kind (`cpu` or `gpu`)."""
    if kind not in DEVICE_QUEUES:
        raise ValueError(f"device queue must be one of {DEVICE_QUEUES}, got {kind!r}")
    return {QUEUE_TAG: kind}


def training_queue_tags(device: str) -> dict[str, str]:
    """The queue of a long training step under the profile's `compute.device`: `cuda` steps go to
    the gpu workers, `cpu` and `auto` ones to the cpu workers (a gpu host may serve both queues)."""
    return device_queue_tags("gpu" if device == "cuda" else "cpu")


def celery_config(settings: ClusterSettings) -> dict:
    """The dagster-celery executor config; the workers' config YAML holds the same block."""
    return {
        "broker": settings.broker_url,
        "backend": settings.backend_url,
        "config_source": {
            "task_default_queue": DEFAULT_QUEUE,
            # a lost broker connection fails within seconds instead of retrying forever
            "broker_connection_timeout": CONNECT_TIMEOUT_S,
            "broker_connection_retry_on_startup": False,
            "redis_socket_connect_timeout": CONNECT_TIMEOUT_S,
            "redis_socket_timeout": 30,
            "result_expires": 86400,
        },
    }
