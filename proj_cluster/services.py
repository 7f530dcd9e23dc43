"""PostgreSQL and Redis for cluster mode, started from the machine's own binaries.

Every service binds one address (127.0.0.1 by default; the head host's private address when
worker hosts join) on a free port, runs in its own process group and is stopped by that PID/PGID
only. Both require a password: PostgreSQL scram-sha-256 with a `pg_hba.conf` that admits TCP only
from the cluster's networks, Redis `requirepass` from a config file of mode 0600 (never argv,
which `ps` shows). PostgreSQL 15 comes with the machine image; `initdb` and `pg_ctl` refuse to
run as root, so as root they run as the `postgres` user on a data folder that user owns.
Redis is Debian's `redis-server` package (`make cluster-up` installs it when missing).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from proj_cluster.env_file import write_private

PG_BIN = Path(os.environ.get("PROJ_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_SUPERUSER = "postgres"


class ServiceError(RuntimeError):
    """A service failed to start; the message carries the tail of its log."""


@dataclass(frozen=True)
class Started:
    """A started service: the PID (and process group) to stop, where it listens, its log."""

    name: str
    pid: int
    port: int
    log: str
    host: str = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen | None = None
) -> bool:
    """True once host:port accepts connections; False after `timeout` or when `proc` exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def wait_until(predicate, timeout: float, what: str, interval: float = 1.0):
    """Poll `predicate` until it returns something truthy; TimeoutError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def log_tail(path: str | Path, lines: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _reset_signals() -> None:
    """A child started from a non-interactive shell may inherit ignored SIGINT/SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn(
    cmd: list[str], log: Path, env: dict | None = None, cwd: str | Path | None = None
) -> subprocess.Popen:
    """Start `cmd` in its own session (so its PGID is its PID), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_reset_signals,
        )


def _stat(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name: [state, ppid, pgrp, ...]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    """The live (non-zombie) child processes of `pid`."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and (fields := _stat(entry.name)) is not None
        and fields[0] != "Z"
        and int(fields[1]) == pid
    ]


def group_alive(pgid: int) -> list[int]:
    """The live (non-zombie) processes of process group `pgid`."""
    live = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
                live.append(int(entry.name))
    return live


def stop_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group `pgid`, then SIGKILL what is left after `grace` seconds.

    Waits for every member, not just the leader: a daemon's code server outlives it briefly."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.waitpid(pgid, os.WNOHANG)  # reap the leader when it is our child
            except ChildProcessError:
                pass
            if not group_alive(pgid):
                return
            time.sleep(0.1)


# --- PostgreSQL ---------------------------------------------------------------------------------


def _as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", PG_SUPERUSER, "--", *cmd] if os.geteuid() == 0 else cmd


def _own_for_pg(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, PG_SUPERUSER, PG_SUPERUSER)


def allowed_networks(flags: list[str] | None, environ=os.environ) -> tuple[str, ...]:
    """The `--allow` networks if any were given, else PROJ_CLUSTER_ALLOW's: flags replace the
    environment's list rather than add to it, so what a command line says is what PostgreSQL admits."""
    if flags is not None:
        return tuple(flags)
    return tuple(
        net.strip() for net in environ.get("PROJ_CLUSTER_ALLOW", "").split(",") if net.strip()
    )


def cluster_networks(bind: str, allow: tuple[str, ...] = ()) -> list[str]:
    """The networks PostgreSQL admits: the bind address itself (the head's own processes) and
    `allow` (CIDRs such as 10.0.0.0/24, the worker hosts). A malformed one is a ServiceError."""
    try:
        return list(
            dict.fromkeys(str(ipaddress.ip_network(net, strict=False)) for net in (bind, *allow))
        )
    except ValueError as exc:
        raise ServiceError(f"cluster network: {exc}") from None


def _pg_hba(networks: list[str]) -> str:
    lines = [
        "# written by proj_cluster at every start (services.py): the local socket is in the data",
        "# folder (mode 0700), so only its owner reaches it; TCP only from the cluster's networks,",
        "# with a password; anything else has no entry and is refused",
        "local all all trust",
    ]
    return "\n".join(lines + [f"host all all {net} scram-sha-256" for net in networks]) + "\n"


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def start_postgres(
    data_dir: Path,
    databases: tuple[str, ...],
    password: str,
    bind: str = "127.0.0.1",
    allow: tuple[str, ...] = (),
    port: int | None = None,
) -> Started:
    """initdb (once) and start a PostgreSQL 15 server on bind:port; set the superuser's password
    and create `databases` over the local socket (SQL on stdin, not argv).

    `max_connections` is raised: every Dagster process opens a pool."""
    if not (PG_BIN / "initdb").exists():
        raise ServiceError(f"PostgreSQL binaries not found in {PG_BIN} (set PROJ_PG_BIN)")
    networks = cluster_networks(bind, allow)
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    _own_for_pg(data_dir)
    os.chmod(data_dir, 0o700)
    log = data_dir.parent / "postgres.log"
    log.touch()
    _own_for_pg(log)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            _as_pg_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    PG_SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            ),
            check=True,
            capture_output=True,
        )
    (data_dir / "pg_hba.conf").write_text(_pg_hba(networks))
    _own_for_pg(data_dir / "pg_hba.conf")
    options = f"-h {bind} -p {port} -k {data_dir} -c max_connections=300 -c fsync=off"
    proc = subprocess.run(
        _as_pg_user(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        ),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not wait_for_port(bind, port, 30):
        raise ServiceError(
            f"PostgreSQL did not start on {bind}:{port}: {proc.stderr.strip()}\n{log_tail(log)}"
        )
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    names = ", ".join(_sql_literal(name) for name in databases)
    _psql(
        data_dir,
        port,
        f"ALTER ROLE {PG_SUPERUSER} PASSWORD {_sql_literal(password)};\n"
        f"SELECT format('CREATE DATABASE %I', d) FROM unnest(ARRAY[{names}]) AS d\n"
        "WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d)\\gexec\n",
    )
    return Started("postgres", pid, port, str(log), bind)


def _psql(data_dir: Path, port: int, sql: str) -> None:
    """Run `sql` as the superuser over the server's local socket."""
    proc = subprocess.run(
        _as_pg_user(
            [
                str(PG_BIN / "psql"),
                "-h",
                str(data_dir),
                "-p",
                str(port),
                "-U",
                PG_SUPERUSER,
                "-d",
                "postgres",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
            ]
        ),
        input=sql,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ServiceError(f"PostgreSQL setup failed: {proc.stderr.strip()}")


def stop_postgres(data_dir: Path, pid: int) -> None:
    """pg_ctl stop (fast); if the server is still there after that, stop its PID."""
    if not pid_alive(pid):
        return
    subprocess.run(
        _as_pg_user(
            [str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "-t", "30", "stop"]
        ),
        capture_output=True,
    )
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


# --- Redis --------------------------------------------------------------------------------------


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServiceError(
            "redis-server not found: install Debian's package (`apt-get install redis-server`, "
            "which `make cluster-up` does when run as root)"
        )
    return found


def start_redis(
    state_dir: Path, password: str, bind: str = "127.0.0.1", port: int | None = None
) -> Started:
    """A Redis server for the Celery broker and result backend; no persistence. Its settings,
    the password among them, are in `<state_dir>/redis.conf` (mode 0600), not on its command line."""
    port = port or free_port()
    log = state_dir / "redis.log"
    conf = state_dir / "redis.conf"
    write_private(
        conf,
        f'port {port}\nbind {bind}\nrequirepass "{password}"\nsave ""\nappendonly no\n'
        f"dir {state_dir}\ndaemonize no\nprotected-mode yes\n",
    )
    proc = spawn([redis_binary(), str(conf)], log)
    if not wait_for_port(bind, port, 20, proc):
        stop_group(proc.pid)
        raise ServiceError(f"Redis did not start on {bind}:{port}:\n{log_tail(log)}")
    return Started("redis", proc.pid, port, str(log), bind)


def redis_client(url: str, timeout: float):
    """A Redis client that gives up after `timeout` seconds instead of waiting on a lost peer."""
    import redis

    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
    )
