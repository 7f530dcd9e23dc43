"""A small code location shaped like the demo's probe sweep, with the real status note.

`ops_test/sweep/manifest` registers two configs; `fold_results` runs per config; `screening`
promotes a third config (like stage 2), so `make demo`'s second pass runs one more partition after
the first pass's stages. `ops_other/raw/idle` and its check are never run. The status asset, its
budget check and `platform_status_job` are the real ones (`proj_assets.platform`).
"""

import dagster as dg

from proj_assets.platform.assets import status_asset
from proj_assets.platform.checks import budget_check
from proj_assets.platform.status_note import status_job
from proj_assets.profiles import data_dir, load_profile
from proj_resources import ArtifactStore, Compute, Warehouse

CONFIGS = dg.DynamicPartitionsDefinition(name="ops_config")
STAGE_ONE, PROMOTED = ["c1", "c2"], "c3"
METERED = {"compute_seconds": 2.0, "compute_device": "cpu"}


@dg.asset(key=["ops_test", "sweep", "manifest"], group_name="ops_test")
def manifest(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Registers the stage-1 configs."""
    context.instance.add_dynamic_partitions(CONFIGS.name, STAGE_ONE)
    return dg.MaterializeResult(metadata=METERED)


@dg.asset(
    key=["ops_test", "sweep", "fold_results"],
    group_name="ops_test",
    partitions_def=CONFIGS,
    deps=[manifest],
)
def fold_results(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One config's folds."""
    return dg.MaterializeResult(metadata={**METERED, "config": context.partition_key})


@dg.asset_check(asset=fold_results, name="metrics_finite", blocking=True)
def metrics_finite() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset(key=["ops_test", "sweep", "screening"], group_name="ops_test", deps=[fold_results])
def screening(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Promotes one more config to a second stage (a new partition of fold_results)."""
    context.instance.add_dynamic_partitions(CONFIGS.name, [PROMOTED])
    return dg.MaterializeResult(metadata=METERED)


@dg.asset_check(asset=screening, name="enough_promoted")
def enough_promoted() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.WARN, description="only one promoted"
    )


@dg.asset(key=["ops_other", "raw", "idle"], group_name="ops_other")
def idle() -> dg.MaterializeResult:
    """Never materialized in the test."""
    return dg.MaterializeResult()


@dg.asset_check(asset=idle, name="idle_ok")
def idle_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


_root = data_dir() / "demo_like"
_profile = load_profile("demo")
defs = dg.Definitions(
    assets=[manifest, fold_results, screening, idle, status_asset(_profile)],
    asset_checks=[metrics_finite, enough_promoted, idle_ok, budget_check(_profile)],
    jobs=[status_job],
    resources={
        "warehouse": Warehouse(database=str(_root / "warehouse.duckdb")),
        "artifacts": ArtifactStore(root=str(_root / "artifacts")),
        "compute": Compute(),
    },
)
