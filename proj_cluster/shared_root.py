"""The shared data folder (PROJ_DATA_DIR): every host reads and writes the same tree, at the same path.

A step's handoff may be written on one host and read on another, so a worker whose data folder is
not the cluster's (the share not mounted, mounted elsewhere, or read-only) would fail every step
it takes, or worse, write results nobody reads. The head (`python -m proj_cluster up`) writes a
marker with a random token into the folder and publishes the folder's path and the token in
Redis; a worker checks all three at start and refuses, naming the path.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path

MARKER = ".proj_cluster_root"
ROOT_KEY = "proj_cluster:data_root"


class SharedRootError(RuntimeError):
    """The worker's data folder is not the cluster's shared one; the message names the path."""


def publish(client, data_dir: Path) -> None:
    """Mark `data_dir` as this cluster's shared folder (a new token per start of the services)."""
    token = secrets.token_hex(16)
    (data_dir / MARKER).write_text(token)
    client.set(ROOT_KEY, json.dumps({"path": str(data_dir), "token": token}))


def check(client, data_dir: Path) -> None:
    """Refuse a data folder that is another path, another tree, or not writable by this worker."""
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
