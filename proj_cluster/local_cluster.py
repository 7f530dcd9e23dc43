"""A whole cluster on this host: PostgreSQL, Redis, the dagster-daemon, the host monitor and Celery
workers; the head host of a cluster that other hosts' workers join.

`LocalCluster(state_dir, data_dir, bind, allow)` binds its services to `bind` (127.0.0.1 unless
worker hosts join), admits PostgreSQL connections from `allow` (CIDRs) only, and records what it
started in `<state_dir>/cluster.json` (PIDs, ports, the generated passwords; mode 0600), so
`python -m proj_cluster down` (or `make cluster-down`) stops exactly those processes, by PID and
process group, and nothing else. `<state_dir>/cluster.env` (mode 0600) holds the settings a
worker host needs (docs/scaling-out.md). Tests use the same class.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from proj_assets.cluster_settings import ClusterSettings
from proj_assets.shared.conventions import DUCKDB_POOL
from proj_cluster import services, shared_root
from proj_cluster.env_file import format_exports, write_private
from proj_cluster.home import PROJECT_ROOT, prepare_home
from proj_cluster.services import Started

DATABASES = ("dagster", "optuna")


@dataclass
class ClusterState:
    state_dir: str
    data_dir: str
    bind: str = "127.0.0.1"
    allow: list[str] = field(default_factory=list)
    pg_password: str = ""
    redis_password: str = ""
    postgres: Started | None = None
    redis: Started | None = None
    daemon: Started | None = None
    monitor: Started | None = None
    workers: list[Started] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return Path(self.state_dir) / "cluster.json"

    def save(self) -> None:
        write_private(self.path, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> ClusterState | None:
        path = state_dir / "cluster.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        started = {
            k: Started(**raw[k]) if raw.get(k) else None
            for k in ("postgres", "redis", "daemon", "monitor")
        }
        return cls(**{**raw, **started, "workers": [Started(**w) for w in raw["workers"]]})


@contextmanager
def environment(values: dict[str, str]):
    """os.environ with `values` set, restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _port(service: Started | None, name: str) -> int:
    """Where a started service listens; AttributeError (as `None.port`) when it never started."""
    if service is None:
        raise AttributeError(f"the cluster's {name} was never started: it has no port")
    return service.port


def cluster_env(state: ClusterState) -> dict[str, str]:
    """The variables every process of the cluster needs (proj_assets/cluster_settings.py)."""
    redis_port = _port(state.redis, "redis")
    redis = f"redis://:{quote(state.redis_password, safe='')}@{state.bind}:{redis_port}"
    settings = ClusterSettings(
        broker_url=f"{redis}/0",
        backend_url=f"{redis}/1",
        pg_host=state.bind,
        pg_port=_port(state.postgres, "postgres"),
        pg_user=services.PG_SUPERUSER,
        pg_password=state.pg_password,
        pg_db=DATABASES[0],
        optuna_db=DATABASES[1],
    )
    return {
        "PROJ_CLUSTER": "1",
        "PROJ_CLUSTER_BROKER_URL": settings.broker_url,
        "PROJ_CLUSTER_BACKEND_URL": settings.backend_url,
        "PROJ_CLUSTER_PG_HOST": settings.pg_host,
        "PROJ_CLUSTER_PG_PORT": str(settings.pg_port),
        "PROJ_CLUSTER_PG_USER": settings.pg_user,
        "PROJ_CLUSTER_PG_PASSWORD": settings.pg_password,
        "PROJ_CLUSTER_PG_DB": settings.pg_db,
        "PROJ_CLUSTER_OPTUNA_DB": settings.optuna_db,
        # scaling/study.py: shared Optuna studies (RDBStorage with heartbeats) in the same server
        "PROJ_OPTUNA_STORAGE": settings.optuna_storage_url,
        "PROJ_DATA_DIR": state.data_dir,
        "DAGSTER_HOME": str(Path(state.state_dir) / "home"),
    }


def host_settings(env: dict[str, str]) -> dict[str, str]:
    """What a worker host copies (`cluster.env`): the cluster's settings without the head's
    DAGSTER_HOME, a path on the head host; each host sets its own, and a worker without one refuses
    to start."""
    return {key: value for key, value in env.items() if key != "DAGSTER_HOME"}


def process_env(state: ClusterState, extra: dict | None = None) -> dict[str, str]:
    env = {**os.environ, **cluster_env(state), **(extra or {})}
    env["PATH"] = (
        f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `celery`, `dagster-daemon`
    )
    return env


class LocalCluster:
    def __init__(
        self, state_dir: Path, data_dir: Path, bind: str = "127.0.0.1", allow: tuple[str, ...] = ()
    ):
        """`bind`, `allow`: where the services listen and which networks PostgreSQL admits besides
        `bind` itself; they apply from the next `start`."""
        self.state_dir, self.data_dir = Path(state_dir).resolve(), Path(data_dir).resolve()
        self.state = ClusterState.load(self.state_dir) or ClusterState(
            str(self.state_dir), str(self.data_dir)
        )
        self.bind, self.allow = bind, tuple(allow)

    @property
    def env(self) -> dict[str, str]:
        return cluster_env(self.state)

    def start(self, cpu_workers: int = 2, gpu_workers: int = 0, threads: int | None = None) -> None:
        """Services, daemon and workers (`cpu-1..`, `gpu-1..`); on any failure stop what started."""
        try:
            self.start_services()
            self.start_daemon()
            self.start_monitor()
            for i in range(cpu_workers):
                self.start_worker(f"cpu-{i + 1}", ("cpu",), threads=threads)
            for i in range(gpu_workers):
                self.start_worker(f"gpu-{i + 1}", ("gpu",), threads=threads)
        except BaseException:
            self.down()
            raise

    def start_services(self) -> None:
        """PostgreSQL and Redis, and the instance home with proj_cluster/dagster.yaml."""
        if self.state.postgres and services.pid_alive(self.state.postgres.pid):
            raise services.ServiceError(
                f"a cluster is already running from {self.state.path}; "
                "stop it first (python -m proj_cluster down)"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o755)  # the postgres user must reach its data folder
        self.state.bind, self.state.allow = self.bind, list(self.allow)
        # generated once: PostgreSQL's is set again at every start, Redis reads its own from redis.conf
        self.state.pg_password = self.state.pg_password or secrets.token_urlsafe(24)
        self.state.redis_password = self.state.redis_password or secrets.token_urlsafe(24)
        try:
            self.state.postgres = services.start_postgres(
                self.state_dir / "postgres",
                DATABASES,
                self.state.pg_password,
                self.bind,
                self.allow,
            )
            self.state.redis = services.start_redis(
                self.state_dir, self.state.redis_password, self.bind
            )
        finally:
            self.state.save()
        write_private(self.state_dir / "cluster.env", format_exports(host_settings(self.env)))
        prepare_home(Path(self.env["DAGSTER_HOME"]))
        self._create_instance_storage()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shared_root.publish(
            services.redis_client(self.env["PROJ_CLUSTER_BROKER_URL"], 5), self.data_dir
        )

    def _create_instance_storage(self) -> None:
        """Create the instance tables and pool slots once, before the daemon and workers race to."""
        with (
            environment(self.env),
            self.instance() as instance,
        ):  # dagster.yaml reads PROJ_CLUSTER_PG_*
            instance.get_runs(limit=1)
            # the pool's one slot, made once: left to the first claims, two processes can each
            # allocate one (count-then-insert) and write at the same time
            instance.event_log_storage.initialize_concurrency_limit_to_default(DUCKDB_POOL)

    def instance(self):
        """The cluster's Dagster instance (needs the PROJ_CLUSTER_PG_* variables in os.environ)."""
        import dagster as dg

        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def backfill(self, asset: str, partitions: list[str]) -> str:
        """Submit an asset backfill with `python -m proj_cluster backfill`, as a user does; its id."""
        self.run(
            [
                sys.executable,
                "-m",
                "proj_cluster",
                "backfill",
                asset,
                *[arg for partition in partitions for arg in ("--partition", partition)],
            ]
        )
        with self.instance() as instance:
            return instance.get_backfills(limit=1)[0].backfill_id

    def run(self, args: list[str], timeout: float = 300) -> str:
        """A command (e.g. `python -m proj_cluster backfill ...`) with the cluster's environment."""
        out = subprocess.run(
            args,
            cwd=PROJECT_ROOT,
            env=process_env(self.state),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode != 0:
            raise services.ServiceError(
                f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
        return out.stdout

    def start_daemon(self) -> Started:
        log = self.state_dir / "daemon.log"
        proc = services.spawn(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            log,
            env=process_env(self.state),
            cwd=PROJECT_ROOT,
        )
        self.state.daemon = Started("dagster-daemon", proc.pid, 0, str(log))
        self.state.save()
        return self.state.daemon

    def start_monitor(self) -> Started:
        """The watch over worker leases (host_monitor.py), next to the daemon."""
        log = self.state_dir / "monitor.log"
        proc = services.spawn(
            [sys.executable, "-m", "proj_cluster", "monitor"],
            log,
            env=process_env(self.state),
            cwd=PROJECT_ROOT,
        )
        self.state.monitor = Started("host-monitor", proc.pid, 0, str(log))
        self.state.save()
        return self.state.monitor

    def start_worker(
        self,
        name: str,
        queues: tuple[str, ...] = ("cpu",),
        extra_env: dict | None = None,
        threads: int | None = None,
        wrapper: tuple[str, ...] = (),
        env: dict | None = None,
    ) -> Started:
        """One Celery worker (one task at a time) serving `queues`, started like a remote host's;
        `wrapper` runs it elsewhere (the multi-host test: `ip netns exec <host>`) and `env`, when
        given, is its whole environment instead of this cluster's."""
        log = self.state_dir / f"worker-{name}.log"
        cmd = [*wrapper, sys.executable, "-m", "proj_cluster", "worker", "--name", name]
        for queue in queues:
            cmd += ["--queue", queue]
        if threads:
            cmd += ["--threads", str(threads)]
        proc = services.spawn(
            cmd,
            log,
            env=env if env is not None else process_env(self.state, extra_env),
            cwd=PROJECT_ROOT,
        )
        worker = Started(f"worker-{name}", proc.pid, 0, str(log))
        self.state.workers.append(worker)
        self.state.save()
        return worker

    def stop_worker(self, worker: Started) -> None:
        services.stop_group(worker.pid)
        self.state.workers = [w for w in self.state.workers if w.pid != worker.pid]
        self.state.save()

    def down(self) -> None:
        """Stop workers, daemon, Redis, PostgreSQL: each by the PID this cluster recorded."""
        for worker in list(self.state.workers):
            self.stop_worker(worker)
        for name in ("monitor", "daemon"):
            if getattr(self.state, name):
                services.stop_group(getattr(self.state, name).pid)
                setattr(self.state, name, None)
        if self.state.redis:
            services.stop_group(self.state.redis.pid)
            self.state.redis = None
        if self.state.postgres:
            services.stop_postgres(self.state_dir / "postgres", self.state.postgres.pid)
            self.state.postgres = None
        if self.state_dir.exists():
            self.state.save()
