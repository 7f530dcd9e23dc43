"""Imported by every Celery worker before its pool starts (`-i proj_cluster.worker_boot`).

It loads the code location (imports it and builds its `defs` for the active profile), so a worker
that cannot (missing package, broken profile, wrong working directory) stops at start with one clear line instead of failing each step it is sent.
Imported once here, the code is shared by the pool's forked children. Then it installs the
worker's lease (heartbeat.py): renewed from the main process, each received task recorded.
"""

import importlib
import os
import sys
import traceback

CODE_LOCATION = "proj_assets.definitions"

try:
    importlib.import_module(CODE_LOCATION).defs()  # the profile is read when the location loads
except BaseException as exc:
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    sys.stderr.write(
        f"proj_cluster worker cannot load the code location {CODE_LOCATION} "
        f"(cwd {os.getcwd()}): {detail}\n"
    )
    sys.stderr.flush()
    os._exit(3)  # celery would otherwise catch the error and keep a worker that fails every step

from proj_cluster.heartbeat import install  # noqa: E402 - only once the code location imported

install()
