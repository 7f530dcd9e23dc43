"""A real Dagster instance in a temporary DAGSTER_HOME, with `dagster-daemon run` or `dagster dev`
started in its own process group (signals reset to default) and stopped by that group only."""

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from proj_cluster.services import stop_group, wait_until  # noqa: F401  (wait_until: for the tests)

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

INSTANCE_YAML = """\
storage:
  sqlite:
    base_dir: {home}/storage
local_artifact_storage:
  module: dagster.core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {home}
compute_logs:
  module: dagster.core.storage.local_compute_log_manager
  class: LocalComputeLogManager
  config:
    base_dir: {home}/logs
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 120
  poll_interval_seconds: 5
  max_resume_run_attempts: 0
  # a killed run never releases its "duckdb" pool slot itself: the daemon frees it after the run ends
  free_slots_after_run_end_seconds: 5
"""


def write_home(home: Path) -> dict:
    """dagster.yaml (absolute paths) + workspace.yaml in `home`; the environment to run with."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML.format(home=home))
    (home / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: proj_assets.definitions\n"
        f"      location_name: proj_research\n      working_directory: {PROJECT}\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PROJ_DATA_DIR": str(home / "data"),
        "PROJ_PROFILE": "demo",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def dagster_process(home: Path, args: list[str]):
    """Run `args` (e.g. ["dagster-daemon", "run"]) with the temp home; stop its process group on exit."""
    env = write_home(home)
    with instance_at(
        home
    ) as instance:  # create the storage once, before processes race to migrate it
        instance.get_runs(limit=1)
    log = open(home / f"{args[0]}.log", "w")
    cmd = [str(BIN / args[0]), *args[1:], "-w", str(home / "workspace.yaml")]
    proc = subprocess.Popen(
        cmd,
        cwd=PROJECT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_signals,
    )
    try:
        yield proc, env
    finally:
        stop_group(proc.pid, grace=30)
        log.close()


def instance_at(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def submit_backfill(env: dict, home: Path, job: str, partitions: list[str]) -> str:
    out = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "backfill",
            "-w",
            str(home / "workspace.yaml"),
            "-j",
            job,
            "--partitions",
            ",".join(partitions),
            "--noprompt",
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout
