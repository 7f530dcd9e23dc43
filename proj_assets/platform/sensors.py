"""Declarative automation that respects gates. Ships STOPPED (turn on in the UI, Automation tab,
or `dagster sensor start gated_automation_sensor`): it launches every eligible asset, which is
what a researcher wants on the research profile but not when opening the demo UI.

Eligible assets are requested only when their deps' blocking checks passed (assets that need it
carry `all_deps_blocking_checks_passed()` in their own condition), so a failed gate also stops
automated runs in later ticks.
"""

import dagster as dg

gated_automation_sensor = dg.AutomationConditionSensorDefinition(
    "gated_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Declarative automation for every asset (eager + blocking checks passed where declared).",
)
