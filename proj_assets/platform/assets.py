"""Platform assets: the status report, generated from the Dagster instance."""

from datetime import UTC, datetime

import dagster as dg

from proj_assets.profiles import Profile
from proj_assets.shared.gates import recorded_reviews
from proj_resources import ArtifactStore, Compute, Warehouse

STATUS = ["platform", "report", "status"]


def status_asset(profile: Profile) -> dg.AssetsDefinition:
    """The status note of `profile`'s code location."""

    @dg.asset(key=STATUS, group_name="platform", kinds={"markdown"})
    def status(
        context: dg.AssetExecutionContext,
        warehouse: Warehouse,
        artifacts: ArtifactStore,
        compute: Compute,
    ) -> dg.MaterializeResult:
        """Handoff note from the instance: partitions, gates, reviews, stale assets, runs, compute vs budget."""
        from proj_assets.platform.snapshot import build_snapshot
        from proj_assets.platform.status import next_actions, open_gates, render_markdown
        from proj_assets.platform.status_model import failed_warnings

        with compute.meter() as meter:
            snapshot = build_snapshot(
                context.instance,
                context.repository_def,
                profile,
                recorded_reviews(warehouse),
                current_run_id=context.run_id,
                writing=context.asset_key,
            )
            text = render_markdown(snapshot)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = artifacts.write_bytes(f"reports/status/status_{stamp}.md", text.encode())
        artifacts.write_bytes("reports/status/latest.md", text.encode())
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(text),
                **artifacts.describe(path),
                "open_gates": len(open_gates(snapshot)),
                "warnings": len(failed_warnings(snapshot)),
                "next_actions": len(next_actions(snapshot)),
                "missing_partitions": sum(len(a.missing) for a in snapshot.assets),
                "failed_partitions": sum(len(a.failed) for a in snapshot.assets),
                "stale_assets": len(snapshot.stale),
                "dead_runs": sum(r.died for r in snapshot.failures),
                **meter.metadata(),
            }
        )

    return status
