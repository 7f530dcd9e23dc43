"""Cluster settings in a file private to its owner (mode 0600), never on a command line.

The head host's `python -m proj_cluster up` writes `<state dir>/cluster.env` (the same
`export KEY=VALUE` lines `python -m proj_cluster env` prints, less the head's DAGSTER_HOME); a
worker host copies it and points `PROJ_CLUSTER_ENV_FILE` at it. A file that group or others may read is refused: it holds the
PostgreSQL and Redis passwords.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

ENV_FILE_VARIABLE = "PROJ_CLUSTER_ENV_FILE"


class EnvFileError(ValueError):
    """The settings file is missing, readable by others or malformed; the message names it."""


def format_exports(values: dict[str, str]) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in values.items())


def write_private(path: Path, text: str) -> None:
    """Create (or replace) `path` with mode 0600 before any secret is written into it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of an `export KEY=VALUE` file that only its owner can read."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text()
    except OSError as exc:
        raise EnvFileError(f"{ENV_FILE_VARIABLE} {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise EnvFileError(
            f"{ENV_FILE_VARIABLE} {path} is readable by others (mode {mode:04o}); it holds "
            f"passwords: chmod 600 {path}"
        )
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            words = words[1:]
        if not words:
            continue
        if len(words) != 1 or "=" not in words[0]:
            raise EnvFileError(f"{ENV_FILE_VARIABLE} {path}:{number}: expected KEY=VALUE")
        key, value = words[0].split("=", 1)
        values[key] = value
    return values


def load_env_file(environ=os.environ) -> None:
    """Fill `environ` from the file named by PROJ_CLUSTER_ENV_FILE, if set; a variable already in
    the environment wins (a host sets its own DAGSTER_HOME, for one)."""
    if environ.get(ENV_FILE_VARIABLE):
        for key, value in read_env_file(Path(environ[ENV_FILE_VARIABLE])).items():
            environ.setdefault(key, value)
