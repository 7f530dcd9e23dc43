"""One data dir holds everything: the Dagster instance lives in `<data dir>/dagster/<profile>`
unless DAGSTER_HOME is exported, so two data dirs (or profiles) keep separate run histories, and
`make` no longer overrides an exported DAGSTER_HOME."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from proj_assets.platform.instance_home import (
    GENERATED_MARK,
    TEMPLATE,
    ensure_instance_home,
    write_instance_yaml,
)

PROJECT = Path(__file__).parents[2]


@dg.asset
def one() -> int:
    return 1


@pytest.fixture
def unset_home(monkeypatch):
    """No DAGSTER_HOME exported (as for a person running `make demo`); restored afterwards."""
    monkeypatch.delenv("DAGSTER_HOME")
    return monkeypatch


def _home_for(monkeypatch, data: Path, profile: str = "demo") -> Path:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("PROJ_DATA_DIR", str(data))
    monkeypatch.setenv("PROJ_PROFILE", profile)
    return ensure_instance_home()


def test_two_data_dirs_have_two_instances_with_separate_histories(unset_home, tmp_path):
    home_a = _home_for(unset_home, tmp_path / "a")
    assert home_a == (tmp_path / "a" / "dagster" / "demo").resolve()
    assert os.environ["DAGSTER_HOME"] == str(home_a)
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([one], instance=instance).success
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"  # project's yaml
    home_b = _home_for(unset_home, tmp_path / "b")
    with dg.DagsterInstance.get() as instance:
        assert len(instance.get_runs()) == 0
        assert dg.materialize([one], instance=instance).success
        assert dg.materialize([one], instance=instance).success
    with dg.DagsterInstance.from_config(str(home_a)) as instance:
        assert len(instance.get_runs()) == 1
    with dg.DagsterInstance.from_config(str(home_b)) as instance:
        assert len(instance.get_runs()) == 2
    # every store (runs, events, compute logs) lies inside its data dir
    assert {p.name for p in home_a.iterdir()} >= {"dagster.yaml", "history", "storage"}


def test_two_profiles_in_one_data_dir_do_not_share_an_instance(unset_home, tmp_path):
    research = PROJECT / "data" / "profiles" / "research.yaml"
    assert _home_for(unset_home, tmp_path, "demo") != _home_for(unset_home, tmp_path, str(research))


def test_exported_home_wins_and_its_own_yaml_is_kept(monkeypatch, tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(own))
    assert ensure_instance_home() == own
    assert (own / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"

    generated, template = tmp_path / "generated", tmp_path / "template.yaml"
    template.write_text("telemetry:\n  enabled: false\n")
    write_instance_yaml(generated, template)
    template.write_text("telemetry:\n  enabled: true\n")  # the project's file changed
    write_instance_yaml(generated, template)
    assert (generated / "dagster.yaml").read_text() == GENERATED_MARK + template.read_text()
    assert "base_dir" not in TEMPLATE.read_text()  # the project's settings name no path


def test_make_and_the_cli_honour_an_exported_dagster_home(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "exported")}
    shown = subprocess.run(
        ["make", "-s", "--eval", "show-home: ; @echo $$DAGSTER_HOME", "show-home"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == env["DAGSTER_HOME"]
    printed = subprocess.run(
        [sys.executable, "-m", "proj_assets.entrypoints.cli", "instance-home"],
        cwd=PROJECT,
        env={**env, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == env["DAGSTER_HOME"]
    assert (tmp_path / "exported" / "dagster.yaml").read_text().startswith(GENERATED_MARK)
