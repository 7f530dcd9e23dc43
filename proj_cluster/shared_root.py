"""The shared data folder (PROJ_DATA_DIR): every host reads and writes the same tree, at the same path.

A step's handoff may be written on one host and read on another, so a worker whose data folder is
not the cluster's (the share not mounted, mounted elsewhere, or read-only) would fail every step
it takes, or worse, write results nobody reads. The head (`python -m proj_cluster up`) writes a
marker with a random token into the folder and publishes the folder's path and the token in
Redis; a worker checks all three at start and refuses, naming the path.

It also refuses a folder on an NFS mount whose file locks stay on the host (`nolock`,
`local_lock=posix|all`): DuckDB's lock on the warehouse file is what keeps two writers apart
(Dagster's `duckdb` pool is not a strict mutex: docs/architecture.md, Storage), so on such a
mount two hosts could write the warehouse at once.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
from pathlib import Path

MARKER = ".proj_cluster_root"
MOUNTS = Path("/proc/self/mounts")
HOST_LOCAL_LOCKS = ("nolock", "local_lock=posix", "local_lock=all")
ROOT_KEY = "proj_cluster:data_root"


class SharedRootError(RuntimeError):
    """The worker's data folder is not the cluster's shared one; the message names the path."""


def publish(client, data_dir: Path) -> None:
    """Mark `data_dir` as this cluster's shared folder (a new token per start of the services)."""
    token = secrets.token_hex(16)
    (data_dir / MARKER).write_text(token)
    client.set(ROOT_KEY, json.dumps({"path": str(data_dir), "token": token}))


def host_local_lock_option(path: Path, mounts: str) -> str | None:
    """The option of the NFS mount holding `path` (the longest mount point above it in a
    /proc/mounts table) under which POSIX locks never reach the server, or None."""
    best: tuple[int, str, list[str]] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[1]))  # \040: space
        if path.is_relative_to(point) and (best is None or len(point.parts) >= best[0]):
            best = (len(point.parts), fields[2], fields[3].split(","))
    if best is None or not best[1].startswith("nfs"):
        return None
    return next((option for option in best[2] if option in HOST_LOCAL_LOCKS), None)


def check(client, data_dir: Path, mounts: str | None = None) -> None:
    """Refuse a data folder that is another path, another tree, not writable by this worker, or on
    a mount whose file locks stay on this host; `mounts` is a /proc/mounts table (this host's)."""
    raw = client.get(ROOT_KEY)
    if raw is None:
        raise SharedRootError(
            "the cluster has not published its shared data folder (start it with "
            "`python -m proj_cluster up`)"
        )
    published = json.loads(raw)
    if str(data_dir) != published["path"]:
        raise SharedRootError(
            f"PROJ_DATA_DIR is {data_dir}, the cluster's shared data folder is {published['path']}: "
            "mount the share at the same path on every host"
        )
    try:
        token = (data_dir / MARKER).read_text()
    except OSError:
        token = None
    if token != published["token"]:
        raise SharedRootError(
            f"{data_dir} is not the cluster's shared data folder as this host sees it ({MARKER} "
            f"{'differs' if token else 'is missing'}): is the share mounted there?"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise SharedRootError(
            f"this worker cannot write the shared data folder {data_dir}: {exc.strerror}"
        ) from None
    option = host_local_lock_option(data_dir, MOUNTS.read_text() if mounts is None else mounts)
    if option:
        raise SharedRootError(
            f"the shared data folder {data_dir} is on an NFS mount with `{option}`: its file locks "
            "stay on this host, so two hosts could write the warehouse at once (remount it with "
            "locking: NFSv4, or NFSv3 with lockd)"
        )
