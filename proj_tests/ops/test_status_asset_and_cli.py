"""The platform/report/status asset, its compute_within_budget check, and the status CLI, over
the real code location's definitions."""

import dagster as dg
import pytest

from proj_assets.ops import assets as platform_assets
from proj_assets.ops import checks as platform_checks
from proj_assets.profiles import load_profile

OHLCV = dg.AssetKey(["market", "raw", "ohlcv"])


def _spend(instance, seconds: float):
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=OHLCV, partition="SP500", metadata={"compute_seconds": seconds, "compute_device": "cpu"}))


def _materialize_status(instance, resources):
    result = dg.materialize([platform_assets.status, platform_checks.compute_within_budget], instance=instance,
                            resources=resources, raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    return result, evaluation


def test_status_asset_writes_the_report_and_budget_check_escalates(instance, resources, tmp_path):
    result, evaluation = _materialize_status(instance, resources)
    assert result.success and evaluation.passed
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    report = meta["report"].value
    for domain in ("market", "platform"):
        assert f"### {domain}" in report
    assert "`market/raw/ohlcv`" in report and "Compute spent against budget" in report
    path = meta["path"].value
    assert path.startswith(str(tmp_path)) and (tmp_path / "artifacts/reports/status/latest.md").read_text() == report

    profile = load_profile()
    budget = profile.platform.budgets["market"]
    per_second = profile.compute.cost_per_hour["cpu"] / 3600
    _spend(instance, 0.85 * budget / per_second)  # 85%: warn
    _, warn = _materialize_status(instance, resources)
    assert (warn.passed, warn.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert warn.metadata["measured"].value == pytest.approx(0.85, rel=1e-3)
    assert "market" in warn.metadata["offending_sample"].value
    _spend(instance, 0.2 * budget / per_second)  # 105%: fail
    _, over = _materialize_status(instance, resources)
    assert (over.passed, over.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "over budget: ['market']" in over.description


def test_cli_prints_the_report_from_the_instance_at_dagster_home(tmp_path, monkeypatch, capsys):
    from proj_assets.ops import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        _spend(instance, 12.0)
    out_file = tmp_path / "status.md"
    assert cli.main(["status", "--output", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# Status: profile `demo`") and "| market | 1 | 12.0 |" in printed
    assert out_file.read_text() in printed
