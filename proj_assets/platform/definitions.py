"""The platform layer's surface: the status note (asset, budget check, job and refresh sensor),
the gate review job, and the gated automation sensor over every domain's assets."""

import dagster as dg

from proj_assets.platform.assets import status_asset
from proj_assets.platform.checks import budget_check
from proj_assets.platform.review_job import gate_review_job
from proj_assets.platform.sensors import gated_automation_sensor
from proj_assets.platform.status_note import status_job, status_note_sensor
from proj_assets.profiles import Profile


def build_platform(profile: Profile) -> dg.Definitions:
    return dg.Definitions(
        assets=[status_asset(profile)],
        asset_checks=[budget_check(profile)],
        jobs=[gate_review_job, status_job],
        sensors=[gated_automation_sensor, status_note_sensor],
    )
