"""A real cluster for the integration tests: PostgreSQL 15, Redis, the dagster-daemon and two
Celery workers, started by the project's own `LocalCluster` (what `make cluster-up` runs) and
always stopped, by PID, when the session ends, pass or fail.

The state folder is made with `tempfile.mkdtemp` (mode 755): pytest's tmp folders are private
to root, and PostgreSQL runs as the `postgres` user, which must reach its data folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from proj_assets.profiles import PROFILES_DIR
from proj_cluster.local_cluster import LocalCluster, environment

# 2 configs x 4 problems = 8 fold partitions; epochs so that a step runs long enough to be killed
SPEC = {"name": "cluster", "factors": {"probe_type": ["linear_probe"], "layer": [2], "learning_rate": [0.05, 0.1],
                                       "epochs": [400]},
        "stages": {"stage1_seeds": 2, "stage2_seeds": 3, "promote_top_k": 1}}


def write_profile(folder: Path) -> Path:
    """The demo profile with a small probe sweep (8 fold partitions) and a shared HPO study."""
    raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    raw["probes"] = {"sweep_spec": str(folder / "spec.yaml"), "corpus": {"n_groups": 4, "traces_per_group": 2, "seed": 3},
                     "model": {"max_tokens": 8, "batch_size": 32}, "train_threads": 1,
                     "partitions_per_run": 2}  # a backfill runs ranges of 2 partitions: 4 runs for 2 workers
    # one HPO cell served by two trial-worker ops; heartbeats fail a dead worker's trial in seconds
    raw["scaling"].update({"n_trials": 10, "study_workers": 2, "study_heartbeat_s": 1, "study_grace_s": 4})
    path = folder / "cluster_profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="session")
def running_cluster():
    """One cluster per test session (`make test` runs proj_tests/cluster in a pytest process of
    its own), stopped at the end of the session."""
    state = Path(tempfile.mkdtemp(prefix="proj_cluster_test_"))
    os.chmod(state, 0o755)
    (state / "data").mkdir()
    local = LocalCluster(state / "cluster", state / "data")
    profile = write_profile(state)
    try:
        with environment({"PROJ_PROFILE": str(profile), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}):
            local.start(cpu_workers=2)  # the processes keep this environment
        yield local, profile
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def cluster(running_cluster):
    """The cluster, with this test's process pointed at its instance, data folder and profile
    (but still embedded: no PROJ_CLUSTER), for this test only."""
    local, profile = running_cluster
    with environment({**{k: v for k, v in local.env.items() if k != "PROJ_CLUSTER"}, "PROJ_PROFILE": str(profile)}):
        yield local
