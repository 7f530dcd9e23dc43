"""The platform/report/status asset, its compute_within_budget check, and the status CLI, over
the real code location's definitions."""

import dagster as dg
import pytest

from proj_assets.platform import assets as platform_assets
from proj_assets.profiles import data_dir, load_profile

OHLCV = dg.AssetKey(["market", "raw", "ohlcv"])
STATUS = dg.AssetKey(platform_assets.STATUS)
BUDGET_CHECK = dg.AssetCheckKey(STATUS, "compute_within_budget")


def _spend(instance, seconds: float):
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=OHLCV,
            partition="SP500",
            metadata={"compute_seconds": seconds, "compute_device": "cpu"},
        )
    )


def _materialize_status(instance):
    """The note and its check as `make demo` writes them: `platform_status_job` run from the code
    location (the note reads the asset graph from its run's repository, not by importing `defs`)."""
    from proj_assets.entrypoints.demo import write_status_note
    from proj_assets.shared.gates import latest_check_results

    summary = write_status_note(instance)
    (record,) = latest_check_results(instance, BUDGET_CHECK).values()
    return summary, instance.get_latest_materialization_event(STATUS), record.evaluation


def test_status_asset_writes_the_report_and_budget_check_escalates(instance):
    summary, event, evaluation = _materialize_status(instance)
    assert summary.success and evaluation.passed
    meta = event.asset_materialization.metadata
    report = meta["report"].value
    for domain in ("market", "platform"):
        assert f"### {domain}" in report
    assert "`market/raw/ohlcv`" in report and "Compute spent against budget" in report
    path = meta["path"].value
    assert (
        path.startswith(str(data_dir()))
        and (data_dir() / "artifacts/reports/status/latest.md").read_text() == report
    )

    profile = load_profile("demo")
    budget = profile.platform.budgets["market"]
    per_second = profile.compute.cost_per_hour["cpu"] / 3600
    _spend(instance, 0.85 * budget / per_second)  # 85%: warn
    *_, warn = _materialize_status(instance)
    assert (warn.passed, warn.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert warn.metadata["measured"].value == pytest.approx(0.85, rel=1e-3)
    assert "market" in warn.metadata["offending_sample"].value
    _spend(instance, 0.2 * budget / per_second)  # 105%: fail
    *_, over = _materialize_status(instance)
    assert (over.passed, over.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "over budget: ['market']" in over.description


def test_cli_prints_the_report_from_the_instance_at_dagster_home(tmp_path, monkeypatch, capsys):
    from proj_assets.entrypoints import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        _spend(instance, 12.0)
    out_file = tmp_path / "status.md"
    assert cli.main(["status", "--output", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# Status: profile `demo`") and "| market | 1 | 12.0 |" in printed
    assert out_file.read_text() in printed
