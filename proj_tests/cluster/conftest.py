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
from proj_tests.cluster.folds import embedded_rows

# 2 configs x 4 problems = 8 fold partitions; epochs so that a step runs long enough to be killed
SPEC = {
    "name": "cluster",
    "factors": {
        "probe_type": ["linear_probe"],
        "layer": [2],
        "learning_rate": [0.05, 0.1],
        "epochs": [400],
    },
    "stages": {"stage1_seeds": 2, "stage2_seeds": 3, "promote_top_k": 1},
}


def write_profile(folder: Path) -> Path:
    """The demo profile with a small probe sweep (8 fold partitions) and a shared HPO study."""
    raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    raw["probes"] = {
        "sweep_spec": str(folder / "spec.yaml"),
        "corpus": {"n_groups": 4, "traces_per_group": 2, "seed": 3},
        "model": {"max_tokens": 8, "batch_size": 32},
        "train_threads": 1,
        "partitions_per_run": 2,
    }  # a backfill runs ranges of 2 partitions: 4 runs for 2 workers
    # one HPO cell served by two trial-worker ops; heartbeats fail a dead worker's trial in seconds
    raw["scaling"].update(
        {"n_trials": 10, "study_workers": 2, "study_heartbeat_s": 1, "study_grace_s": 4}
    )
    path = folder / "cluster_profile.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def state_folder() -> Path:
    state = Path(tempfile.mkdtemp(prefix="proj_cluster_test_"))
    os.chmod(state, 0o755)
    (state / "data").mkdir()
    return state


@pytest.fixture(scope="session")
def cluster_profile(tmp_path_factory) -> Path:
    return write_profile(tmp_path_factory.mktemp("profile"))


@pytest.fixture(scope="session")
def embedded_fold_rows(cluster_profile, tmp_path_factory):
    """The fold partitions of the cluster profile materialized embedded, once per session: what
    every cluster backfill must equal."""
    local = tmp_path_factory.mktemp("embedded")
    with environment({"PROJ_DATA_DIR": str(local), "PROJ_CLUSTER": ""}):
        return embedded_rows(cluster_profile, local)


@pytest.fixture(scope="session")
def running_cluster(cluster_profile):
    """One cluster per test session (`make test` runs proj_tests/cluster in a pytest process of
    its own), on 127.0.0.1, stopped at the end of the session."""
    state = state_folder()
    local = LocalCluster(state / "cluster", state / "data")
    profile = cluster_profile
    try:
        with environment(
            {"PROJ_PROFILE": str(profile), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        ):
            local.start(cpu_workers=2)  # the processes keep this environment
        yield local, profile
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


def pointed_at(local: LocalCluster, profile: Path):
    """This process's environment pointed at the cluster's instance, data folder and profile, as a
    user's shell is, but embedded (no PROJ_CLUSTER): what runs here runs in this process. The
    profile reaches processes (the commands a test runs) this way; in-process code is given it."""
    return environment(
        {
            **{k: v for k, v in local.env.items() if k != "PROJ_CLUSTER"},
            "PROJ_PROFILE": str(profile),
        }
    )


@pytest.fixture
def cluster(running_cluster):
    """The cluster, with this test's process pointed at it, for this test only."""
    local, profile = running_cluster
    with pointed_at(local, profile):
        yield local
