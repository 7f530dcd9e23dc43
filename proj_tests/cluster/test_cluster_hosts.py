"""More than one host: worker "hosts" as Linux network namespaces (netns.py), each with its own
address on a bridge, the services in the root namespace bound to the bridge's address with
passwords and a `pg_hba.conf` that admits only the bridge's network. A host's link is cut in the
middle of a fold backfill; the services refuse an outside network and a wrong password; a worker
whose data folder is not the cluster's refuses to start (these last with the single-host cluster
of conftest.py and a private mount namespace)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from proj_assets.shared.conventions import DUCKDB_POOL
from proj_cluster.env_file import format_exports, read_env_file, write_private
from proj_cluster.heartbeat import LEASE_PREFIX, LEASE_VARIABLE, TASKS_KEY
from proj_cluster.home import PROJECT_ROOT
from proj_cluster.local_cluster import LocalCluster, environment, process_env
from proj_cluster.services import group_alive, log_tail, redis_client, wait_until
from proj_tests.cluster.conftest import pointed_at, state_folder
from proj_tests.cluster.folds import (
    COMPUTE_OP,
    FOLD_RESULTS,
    UPSTREAM,
    WRITE_OP,
    assert_written_once_and_equal,
    backfill_done,
    celery_workers,
    fold_partitions,
    location,
    materialize,
    partitions_of,
    steps,
    warehouse_rows,
)
from proj_tests.cluster.netns import Lan, unavailable_reason

LEASE_S = (
    6  # the workers' lease here (30 s by default): a lost host is failed within LEASE_S + one poll
)
# the daemon's run retry launches the retry within this of the failure (3-6 s measured): its
# loop, the queued-run coordinator's and the launch (docs/scaling-out.md)
RETRY_LAUNCH_S = 30
needs_namespaces = pytest.mark.skipif(
    unavailable_reason() is not None, reason=str(unavailable_reason())
)


@pytest.fixture(scope="module")
def lan_cluster(cluster_profile):
    """Services on the bridge's address, admitting its network only; no worker of its own."""
    lan = Lan(("a", "b"))
    state = state_folder()
    local = LocalCluster(state / "cluster", state / "data", bind=lan.head, allow=(lan.network,))
    try:
        with environment(
            {"PROJ_PROFILE": str(cluster_profile), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        ):
            local.start(cpu_workers=0)
        yield lan, local, cluster_profile
    finally:
        local.down()
        lan.close()
        shutil.rmtree(state, ignore_errors=True)


def host_env(
    local: LocalCluster, profile: Path, home: Path, env_file: Path | None = None
) -> dict[str, str]:
    """What a worker host sets (docs/scaling-out.md): the cluster's settings file, its own instance
    home, and nothing else of the cluster's."""
    inherited = {
        k: os.environ[k] for k in ("PATH", "PYTHONPATH", "HOME", "LANG") if k in os.environ
    }
    return {
        **inherited,
        "PROJ_CLUSTER_ENV_FILE": str(env_file or local.state_dir / "cluster.env"),
        "DAGSTER_HOME": str(home),
        "PROJ_PROFILE": str(profile),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        LEASE_VARIABLE: str(LEASE_S),
    }


def _compute_running_on(instance, tasks, worker: str):
    """The run whose compute step runs on `worker` now: found from the task the worker recorded in
    Redis (heartbeat.py), then its step events, so that the cut follows the step's start closely."""
    for raw in tasks.hvals(TASKS_KEY):
        record = json.loads(raw)
        if (
            record["worker"].startswith(f"{worker}@")
            and any(s.endswith(COMPUTE_OP) for s in record["steps"])
            and list(steps(instance, record["run_id"], COMPUTE_OP))
            == [dg.DagsterEventType.STEP_START]
        ):
            return record["run_id"]
    return None


@needs_namespaces
def test_a_host_cut_off_mid_backfill_costs_a_bounded_delay_and_nothing_else(
    lan_cluster, embedded_fold_rows, tmp_path
):
    lan, local, profile = lan_cluster
    workers = {
        host: local.start_worker(
            f"{host}-1",
            env=host_env(local, profile, tmp_path / host),
            wrapper=lan.exec_prefix(host),
        )
        for host in ("a", "b")
    }
    leases = redis_client(local.env["PROJ_CLUSTER_BROKER_URL"], 5)
    wait_until(
        lambda: len(leases.keys(LEASE_PREFIX + "*")) == 2, 120, "both worker hosts to hold a lease"
    )
    with pointed_at(local, profile), local.instance() as instance:
        materialize(instance, location(profile, local.data_dir), UPSTREAM)
        partitions = [str(p) for p in fold_partitions(instance)]
        backfill_id = local.backfill(FOLD_RESULTS, partitions)
        victim = wait_until(
            lambda: _compute_running_on(instance, leases, "a-1"),
            240,
            "a compute step on host a",
            interval=0.1,
        )
        lan.cut("a")
        cut_at = time.time()
        runs = wait_until(
            lambda: backfill_done(instance, backfill_id, len(partitions)),
            300,
            "every partition to succeed",
        )

        failed = [r for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
        assert [r.run_id for r in failed] == [victim], [(r.run_id, r.status) for r in failed]
        detected = instance.all_logs(victim, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
        (retry,) = [r for r in runs if r.tags.get("dagster/parent_run_id") == victim]
        retried = instance.get_run_record_by_id(retry.run_id).create_timestamp.timestamp()
        print(
            f"host a cut; its run failed after {detected.timestamp - cut_at:.1f} s, "
            f"retried {retried - detected.timestamp:.1f} s later"
        )
        assert (
            detected.timestamp - cut_at <= LEASE_S + 8
        )  # the lease, one monitor poll, the orchestrator's tick
        assert retried - detected.timestamp <= RETRY_LAUNCH_S
        monitor_says = [
            e.message
            for e in instance.all_logs(victim, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if "stopped answering" in (e.message or "")
        ]
        assert monitor_says and lan.address("a") in monitor_says[0] and "a-1@" in monitor_says[0], (
            monitor_says
        )
        assert lan.address("a") in str(
            detected.dagster_event.event_specific_data.error
        )  # the run's failure names it
        assert retry.status == dg.DagsterRunStatus.SUCCESS
        assert list(steps(instance, victim, COMPUTE_OP)) == [
            dg.DagsterEventType.STEP_START
        ]  # cut mid-step
        assert not steps(instance, victim, WRITE_OP)  # the lost run never reached its write step

        succeeded = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
        assert sorted(p for r in succeeded for p in partitions_of(instance, r)) == sorted(
            partitions
        )  # each once
        materialized = [
            e.dagster_event.partition
            for r in runs
            for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if e.dagster_event.asset_key == dg.AssetKey(FOLD_RESULTS.split("/"))
        ]
        assert sorted(materialized) == sorted(partitions)  # one materialization each, over all runs
        after_cut = [
            r
            for r in succeeded
            if steps(instance, r.run_id, COMPUTE_OP)[dg.DagsterEventType.STEP_START][0] > cut_at
        ]
        assert retry in after_cut and {
            w.split("@")[0] for r in after_cut for w in celery_workers(instance, r.run_id)
        } == {"b-1"}  # the live host took over, the cut one took nothing more
        pool = instance.event_log_storage.get_concurrency_info(DUCKDB_POOL)
        assert pool.active_slot_count == 0 and pool.pending_step_count == 0  # no slot left claimed

    assert group_alive(workers["b"].pid) and leases.keys(
        LEASE_PREFIX + "b-1@*"
    )  # host b never stopped
    assert "lease not renewed" not in Path(workers["b"].log).read_text()  # nor lost its lease
    assert "lease not renewed" in log_tail(workers["a"].log, 60)  # host a fenced its own step
    assert_written_once_and_equal(
        warehouse_rows(local.data_dir), embedded_fold_rows, len(partitions)
    )


def _in_namespace(lan: Lan, host: str, code: str, env: dict[str, str]) -> str:
    """Run Python `code` on a host (secrets in `env`, never in argv); its stdout."""
    out = subprocess.run(
        [*lan.exec_prefix(host), sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout + out.stderr


PG_PROBE = """import os, psycopg2
try:
    psycopg2.connect(host=os.environ["H"], port=os.environ["P"], user="postgres", password=os.environ["PW"],
                     dbname="dagster", connect_timeout=3).close()
    print("admitted")
except psycopg2.OperationalError as exc:
    print(exc)
"""
REDIS_PROBE = """import os, socket
with socket.create_connection((os.environ["H"], int(os.environ["P"])), timeout=3) as sock:
    sock.sendall(b"PING\\r\\n")
    print(sock.recv(200).decode())
"""


@needs_namespaces
def test_services_refuse_an_outside_network_and_a_wrong_password(lan_cluster, tmp_path):
    lan, local, profile = lan_cluster
    pg = {"H": lan.head, "P": str(local.state.postgres.port), "PW": local.state.pg_password}
    assert "admitted" in _in_namespace(
        lan, "b", PG_PROBE, pg
    )  # a host of the cluster's network, right password
    refused = _in_namespace(
        lan, "outsider", PG_PROBE, pg
    )  # the right password, from another network
    assert f'no pg_hba.conf entry for host "{lan.outsider_address}"' in refused, refused
    # Redis has no filter by source address: it binds the cluster's address only and wants the password
    redis_says = _in_namespace(
        lan, "outsider", REDIS_PROBE, {"H": lan.head, "P": str(local.state.redis.port)}
    )
    assert redis_says.startswith("-NOAUTH Authentication required"), redis_says

    settings = read_env_file(local.state_dir / "cluster.env")
    assert "DAGSTER_HOME" not in settings  # a host sets its own (host_env)
    wrong = {
        k: v.replace(local.state.pg_password, "wrong").replace(local.state.redis_password, "wrong")
        for k, v in settings.items()
    }
    write_private(tmp_path / "wrong.env", format_exports(wrong))
    out = subprocess.run(
        [*lan.exec_prefix("b"), sys.executable, "-m", "proj_cluster", "worker", "--name", "w"],
        cwd=PROJECT_ROOT,
        env=host_env(local, profile, tmp_path / "home", tmp_path / "wrong.env"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    port = local.state.postgres.port
    assert (
        f'PostgreSQL at {lan.head}:{port} is unreachable (connection to server at "{lan.head}", port {port} '
        'failed: FATAL:  password authentication failed for user "postgres")' in out.stderr
    ), out.stderr
    assert (
        f"Redis broker at {lan.head}:{local.state.redis.port} is unreachable (invalid username-password pair"
        in out.stderr
    ), out.stderr


def _worker_with_data_dir(
    cluster: LocalCluster, mount: str = "", data_dir: Path | None = None
) -> str:
    """`python -m proj_cluster worker` in a private mount namespace after the shell `mount`
    commands (nothing leaks to this machine); its stderr."""
    env = process_env(cluster.state, {"PROJ_DATA_DIR": str(data_dir or cluster.data_dir)})
    worker = f"exec {sys.executable} -m proj_cluster worker --name w"
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"{mount}{worker}"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    return out.stderr


@needs_namespaces
def test_a_worker_refuses_a_data_folder_that_is_not_the_clusters(cluster, tmp_path):
    data = cluster.data_dir
    assert (
        f"PROJ_DATA_DIR is {tmp_path}, the cluster's shared data folder is {data}"
        in _worker_with_data_dir(cluster, data_dir=tmp_path)
    )
    unmounted = _worker_with_data_dir(
        cluster, f"mount --bind {tmp_path} {data} && "
    )  # the share not mounted
    assert (
        f"{data} is not the cluster's shared data folder as this host sees it (.proj_cluster_root is missing)"
        in unmounted
    ), unmounted
    read_only = _worker_with_data_dir(
        cluster, f"mount --bind {data} {data} && mount -o remount,bind,ro {data} && "
    )
    assert f"cannot write the shared data folder {data}: Read-only file system" in read_only, (
        read_only
    )
