"""Cluster settings and bad input, without services: the embedded default, a cluster setting
without its URLs failing at definitions load, an unreachable PostgreSQL or Redis named by
host:port within seconds (definitions, instance, worker start), and the executor config."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from proj_assets.cluster_settings import (
    ClusterSettingsError,
    ServiceUnreachable,
    celery_config,
    device_queue_tags,
    load_cluster_settings,
    require_reachable,
)
from proj_cluster.env_file import (
    EnvFileError,
    format_exports,
    load_env_file,
    read_env_file,
    write_private,
)
from proj_cluster.home import PACKAGE_DIR
from proj_cluster.local_cluster import host_settings
from proj_cluster.services import allowed_networks, free_port
from proj_cluster.worker import worker_celery_config

PROJECT = Path(__file__).resolve().parents[2]


def _cluster_env(pg_port: int, redis_port: int) -> dict[str, str]:
    return {
        "PROJ_CLUSTER": "1",
        "PROJ_CLUSTER_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "PROJ_CLUSTER_BACKEND_URL": f"redis://127.0.0.1:{redis_port}/1",
        "PROJ_CLUSTER_PG_HOST": "127.0.0.1",
        "PROJ_CLUSTER_PG_PORT": str(pg_port),
        "PROJ_CLUSTER_PG_USER": "postgres",
        "PROJ_CLUSTER_PG_PASSWORD": "",
        "PROJ_CLUSTER_PG_DB": "dagster",
    }


def _set(monkeypatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_embedded_default_needs_no_service(monkeypatch, tmp_path):
    from proj_assets.definitions import build_definitions
    from proj_assets.profiles import load_profile

    monkeypatch.delenv("PROJ_CLUSTER", raising=False)
    assert load_cluster_settings() is None
    defs = build_definitions(load_profile("demo"), tmp_path)
    assert (
        defs.resolve_job_def("probes_sweep_job").executor_def.name == "in_process"
    )  # the default executor


@pytest.mark.parametrize("missing", ["PROJ_CLUSTER_BROKER_URL", "PROJ_CLUSTER_PG_PORT"])
def test_cluster_setting_without_its_urls_fails_at_definitions_load(monkeypatch, tmp_path, missing):
    from proj_assets.definitions import build_definitions
    from proj_assets.profiles import load_profile

    _set(monkeypatch, _cluster_env(free_port(), free_port()))
    monkeypatch.delenv(missing)
    with pytest.raises(ClusterSettingsError, match=missing) as err:
        build_definitions(load_profile("demo"), tmp_path)
    assert "PROJ_CLUSTER_BACKEND_URL" not in str(err.value)  # only what is missing is named


def test_malformed_settings_are_named():
    base = _cluster_env(5432, 6379)
    with pytest.raises(ClusterSettingsError, match="PROJ_CLUSTER_PG_PORT must be a port number"):
        load_cluster_settings({**base, "PROJ_CLUSTER_PG_PORT": "five"})
    with pytest.raises(
        ClusterSettingsError, match="PROJ_CLUSTER_BROKER_URL must be a redis:// URL"
    ):
        load_cluster_settings({**base, "PROJ_CLUSTER_BROKER_URL": "amqp://127.0.0.1//"})


def test_unreachable_services_fail_definitions_load_naming_host_and_port(monkeypatch, tmp_path):
    from proj_assets.definitions import build_definitions
    from proj_assets.profiles import load_profile

    pg_port = free_port()  # nothing listens there
    _set(monkeypatch, _cluster_env(pg_port, free_port()))
    started = time.monotonic()
    with pytest.raises(
        ServiceUnreachable, match=f"PostgreSQL at 127.0.0.1:{pg_port} is unreachable"
    ):
        build_definitions(load_profile("demo"), tmp_path)
    assert time.monotonic() - started < 10


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never says a word (a hung or wrong service)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


def test_ports_that_never_answer_fail_in_seconds_each_named(silent_port):
    refused = free_port()
    settings = load_cluster_settings(
        _cluster_env(silent_port, silent_port)
        | {"PROJ_CLUSTER_BACKEND_URL": f"redis://127.0.0.1:{refused}/1"}
    )
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable) as err:
        require_reachable(settings, timeout=2)
    assert time.monotonic() - started < 12  # three checks, 2 s each at most, never a hang
    message = str(err.value)
    assert f"PostgreSQL at 127.0.0.1:{silent_port} is unreachable" in message
    assert f"Redis broker at 127.0.0.1:{silent_port} is unreachable" in message
    assert f"Redis result backend at 127.0.0.1:{refused} is unreachable" in message


def test_instance_on_an_unreachable_postgres_fails_in_seconds(monkeypatch, tmp_path):
    """Dagster's own message is generic ("too many retries"); the cause it chains names host:port.
    The project's entry points (definitions load, workers, `make cluster-up`) check first, above."""
    pg_port = free_port()
    _set(monkeypatch, _cluster_env(pg_port, free_port()))
    (tmp_path / "dagster.yaml").write_text((PACKAGE_DIR / "dagster.yaml").read_text())
    started = time.monotonic()
    with pytest.raises(Exception) as err:
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            instance.get_runs(limit=1)
    assert time.monotonic() - started < 20
    causes, exc = [], err.value
    while exc is not None:
        causes.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any(f'"127.0.0.1", port {pg_port} failed: Connection refused' in c for c in causes), (
        causes
    )


def test_worker_refuses_to_start_against_unreachable_services(tmp_path):
    redis_port = free_port()
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "DAGSTER_HOME": str(tmp_path),
        **_cluster_env(free_port(), redis_port),
    }
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "proj_cluster", "worker", "--name", "w"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert (
        f"proj_cluster worker w: cluster mode (3 s timeout): PostgreSQL at 127.0.0.1:{env['PROJ_CLUSTER_PG_PORT']} is unreachable"
        in out.stderr
    ), out.stderr
    assert f"Redis broker at 127.0.0.1:{redis_port} is unreachable" in out.stderr
    assert time.monotonic() - started < 30


def test_worker_without_its_own_dagster_home_refuses_before_any_connection(tmp_path):
    """The settings file a host copies carries no DAGSTER_HOME (the head's path means nothing
    there): a host that sets none is told so, before the worker tries the services."""
    out = subprocess.run(
        [sys.executable, "-m", "proj_cluster", "worker", "--name", "w"],
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", **_cluster_env(free_port(), free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "proj_cluster worker w: DAGSTER_HOME is not set (this host's instance home" in out.stderr
    assert "unreachable" not in out.stderr, out.stderr
    assert host_settings({"DAGSTER_HOME": "/head/home", "PROJ_CLUSTER": "1"}) == {
        "PROJ_CLUSTER": "1"
    }


def test_allow_flags_replace_the_environments_networks():
    environ = {"PROJ_CLUSTER_ALLOW": "10.0.0.0/24, 10.0.1.0/24"}
    assert allowed_networks(None, environ) == ("10.0.0.0/24", "10.0.1.0/24")
    assert allowed_networks(["192.168.5.0/24"], environ) == ("192.168.5.0/24",)
    assert allowed_networks(None, {}) == ()


def test_worker_config_validates_against_dagster_celery_and_routes_by_device_tag(tmp_path):
    import yaml
    from dagster_celery.cli import get_validated_config

    settings = load_cluster_settings(_cluster_env(5432, 6379))
    config = worker_celery_config(settings)
    (tmp_path / "celery.yaml").write_text(
        yaml.safe_dump({"execution": {"config": config}})
    )  # as the worker writes it
    validated = get_validated_config(str(tmp_path / "celery.yaml"))
    assert (
        validated["broker"] == "redis://127.0.0.1:6379/0"
        and validated["backend"] == "redis://127.0.0.1:6379/1"
    )
    assert validated["config_source"]["task_default_queue"] == "cpu"
    assert (
        validated["config_source"]["worker_disable_prefetch"] is True
    )  # a lost host holds only its running task
    assert config["config_source"].items() - celery_config(settings)["config_source"].items() == {
        ("worker_disable_prefetch", True)
    }  # otherwise the executor's config
    assert device_queue_tags("gpu") == {"dagster-celery/queue": "gpu"}
    with pytest.raises(ValueError, match="device queue must be one of"):
        device_queue_tags("tpu")


def test_training_steps_go_to_the_queue_of_the_profiles_compute_device(tmp_path):
    """Every long training step (compute ops, HPO trial workers, SFT pretraining and LoRA) carries
    the queue tag of `compute.device`: the demo's cpu, a cuda profile's gpu; other steps none."""
    from definitions_helpers import demo_profile, with_settings

    from proj_assets.definitions import build_definitions

    def queues(profile) -> dict[str, str | None]:
        ops = {
            op.name: op
            for asset in build_definitions(profile, tmp_path).assets
            for op in asset.node_def.iterate_op_defs()
        }
        training = [n for n in ops if n.endswith("_compute") or "_trials_worker_" in n] + [
            "sft__model__base_model",
            "sft__model__adapter",
        ]
        assert (
            "probes_sweep_fold_results_compute" in training
            and "scaling_hpo_trials_worker_0" in training
        )
        return {name: ops[name].tags.get("dagster-celery/queue") for name in training} | {
            "market__raw__ohlcv": ops["market__raw__ohlcv"].tags.get("dagster-celery/queue")
        }

    cpu = queues(demo_profile())
    gpu = queues(with_settings(demo_profile(), compute={"device": "cuda"}))
    assert set(cpu.values()) == {"cpu", None} and cpu.pop("market__raw__ohlcv") is None
    assert set(cpu.values()) == {"cpu"}
    assert gpu.pop("market__raw__ohlcv") is None and set(gpu.values()) == {"gpu"}


def test_a_settings_file_others_can_read_is_refused(tmp_path):
    """The worker's settings file holds the passwords: mode 0600 or nothing."""
    path = tmp_path / "cluster.env"
    write_private(
        path, format_exports({"PROJ_CLUSTER_PG_PASSWORD": "it's secret", "PROJ_CLUSTER": "1"})
    )
    assert read_env_file(path) == {"PROJ_CLUSTER_PG_PASSWORD": "it's secret", "PROJ_CLUSTER": "1"}
    environ = {"PROJ_CLUSTER": "0", "PROJ_CLUSTER_ENV_FILE": str(path)}
    load_env_file(environ)
    assert (
        environ["PROJ_CLUSTER"] == "0" and environ["PROJ_CLUSTER_PG_PASSWORD"] == "it's secret"
    )  # set ones win
    path.chmod(0o644)
    with pytest.raises(
        EnvFileError, match=f"{path} is readable by others \\(mode 0644\\).*chmod 600 {path}"
    ):
        read_env_file(path)
