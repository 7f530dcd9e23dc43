"""Before a long step starts: project its cost and refuse when the projection exceeds what is
left of the domain's compute budget (`platform.budgets.sft`). The pure part (projections per
step, the refusal) is step_costs.py; this module reads the spend from the instance.

Projection = measured seconds per example on the pilot (generation and critic, `seconds_per_example`
in its metadata) x planned examples x the profile's rate for the device. Spent = every recorded
materialization of the domain's assets, priced at the profile's rate (as the status report does).
A run tagged `proj/budget_override=<reason>` starts anyway; the reason is logged and recorded in the
step's metadata.
"""

from collections.abc import Sequence

import dagster as dg

from proj_assets.sft.iterations import selected_iteration
from proj_assets.sft.keys import PILOT, SFT_ASSET_KEYS
from proj_assets.sft.lineage import latest_metadata
from proj_assets.sft.settings import SftSettings
from proj_assets.sft.step_costs import (
    BudgetExceededError,
    planned_units,
    projected_step_cost,
    refuse_over_budget,
)
from proj_assets.shared.instance_reads import materializations

OVERRIDE_TAG = "proj/budget_override"  # step_costs.refuse_over_budget names it in its message
UNITS = "budget_units"  # metadata: the units a guarded step planned, so its next run knows seconds per unit


def domain_spent(
    instance: dg.DagsterInstance, keys: Sequence[list[str]], rates_per_hour: dict[str, float]
) -> float:
    """Cost of every recorded materialization of `keys` (compute_seconds x the rate of its device)."""
    total = 0.0
    for key in keys:
        for record in materializations(instance, dg.AssetKey(key)):
            meta = record.asset_materialization.metadata if record.asset_materialization else {}
            seconds = getattr(meta.get("compute_seconds"), "value", None)
            device = str(getattr(meta.get("compute_device"), "value", "cpu"))
            if isinstance(seconds, int | float):
                total += seconds / 3600.0 * rates_per_hour.get(device, 0.0)
    return total


def guard_step(
    context,
    step: str,
    key: list[str],
    cfg: SftSettings,
    budget: float | None,
    compute,
    training_rows: int = 0,
) -> dict:
    """Before spending step `step` of asset `key`: project its cost (its own last seconds per unit,
    else the selected pilot's seconds per example) and refuse with the numbers when it exceeds the
    sft budget left, unless the run carries an override tag. Returns the numbers as metadata."""
    units = planned_units(step, cfg, training_rows)
    last = latest_metadata(
        context, key, context.partition_key if context.has_partition_key else None
    )
    own = (
        last["compute_seconds"] / last[UNITS]
        if last.get(UNITS) and "compute_seconds" in last
        else None
    )
    pilot = latest_metadata(context, PILOT, selected_iteration(cfg)).get("seconds_per_example")
    rate = compute.cost_per_hour.get(compute.torch_device(), 0.0)
    override = context.run.tags.get(OVERRIDE_TAG)
    where = (
        f"{'/'.join(key)} {context.partition_key}" if context.has_partition_key else "/".join(key)
    )
    try:
        numbers = refuse_over_budget(
            f"{where} ({step})",
            projected_step_cost(step, cfg, rate, own, pilot, training_rows),
            domain_spent(context.instance, SFT_ASSET_KEYS, compute.cost_per_hour),
            budget,
            override,
            OVERRIDE_TAG,
        )
    except BudgetExceededError as error:
        raise dg.Failure(str(error), allow_retries=False) from error
    if override:
        context.log.warning(f"budget projection overridden: {override!r} ({numbers})")
    return {**{k: v for k, v in numbers.items() if v is not None}, UNITS: units}
