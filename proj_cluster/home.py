"""Where the package lives and the instance home every process of the cluster reads.

Below both `local_cluster` (the head host's services) and `worker` (any host), so neither imports
the other.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent


def prepare_home(home: Path) -> None:
    """DAGSTER_HOME with the cluster's dagster.yaml (a host that joins has none yet). Private to
    its owner (0700): dagster-celery writes the worker's broker URL, password included, below it."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PACKAGE_DIR / "dagster.yaml", home / "dagster.yaml")
