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

from proj_assets.sft.step_costs import BudgetExceededError, projected_cost, refuse_over_budget  # noqa: F401

OVERRIDE_TAG = "proj/budget_override"  # step_costs.refuse_over_budget names it in its message


def domain_spent(instance: dg.DagsterInstance, keys: Sequence[list[str]], rates_per_hour: dict[str, float]) -> float:
    """Cost of every recorded materialization of `keys` (compute_seconds x the rate of its device)."""
    total = 0.0
    for key in keys:
        cursor = None
        while True:
            page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(key)), limit=1000,
                                                   cursor=cursor)
            for record in page.records:
                meta = record.asset_materialization.metadata if record.asset_materialization else {}
                seconds = getattr(meta.get("compute_seconds"), "value", None)
                device = str(getattr(meta.get("compute_device"), "value", "cpu"))
                if isinstance(seconds, int | float):
                    total += seconds / 3600.0 * rates_per_hour.get(device, 0.0)
            if not page.has_more:
                break
            cursor = page.cursor
    return total
