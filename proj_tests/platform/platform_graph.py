"""A tiny gated graph for platform tests: a source with a blocking check and a gated downstream asset."""

import dagster as dg

from proj_assets.shared import gates
from proj_resources import Warehouse

GATE = dg.AssetCheckKey(dg.AssetKey(["ops_test", "raw", "source"]), "value_non_negative")


@dg.asset(key=["ops_test", "raw", "source"], group_name="ops_test", config_schema={"value": int})
def source(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """A number chosen by run config; negative is bad data."""
    value = context.op_execution_context.op_config["value"]
    return dg.MaterializeResult(
        metadata={"value": value, "compute_seconds": 36.0, "compute_device": "cpu"}
    )


@dg.asset_check(asset=source, name="value_non_negative", blocking=True)
def value_non_negative(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(
        dg.AssetKey(["ops_test", "raw", "source"])
    )
    value = event.asset_materialization.metadata["value"].value
    return dg.AssetCheckResult(
        passed=value >= 0,
        metadata={"measured": value, "threshold": 0},
        description=f"value {value}",
    )


@dg.asset(key=["ops_test", "processed", "gated"], group_name="ops_test", deps=[source])
@gates.gated(["ops_test", "processed", "gated"])
def gated(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Built only when the source's gate passed (or a reviewer overrode that result)."""
    return dg.MaterializeResult(metadata={"built": True})


CELLS = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])


@dg.asset(
    key=["ops_test", "raw", "cells"],
    group_name="ops_test",
    partitions_def=CELLS,
    config_schema={"broken": dg.Field([str], default_value=[])},
)
def cells(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One cell per partition; partitions listed in `broken` fail."""
    if context.partition_key in context.op_execution_context.op_config["broken"]:
        raise ValueError(f"cell {context.partition_key} is broken")
    return dg.MaterializeResult(metadata={"compute_seconds": 1.0, "compute_device": "cpu"})


cells_job = dg.define_asset_job("ops_cells_job", selection=[cells], partitions_def=CELLS)


def gated_with_warehouse(warehouse: Warehouse) -> dg.AssetsDefinition:
    """Gated like `gated`, but without a warehouse resource: reviews come from the warehouse its
    builder handed to the gate (as a domain builder does)."""
    key = ["ops_test", "processed", "gated_builder_warehouse"]

    @dg.asset(key=key, group_name="ops_test", deps=[source])
    @gates.gated(key, warehouse)
    def gated_builder_warehouse(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Built only when the source's gate passed (or a reviewer overrode that result)."""
        return dg.MaterializeResult(metadata={"built": True})

    return gated_builder_warehouse
