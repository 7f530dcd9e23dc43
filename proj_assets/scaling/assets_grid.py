"""The architecture grid asset: every architecture of the search space within tolerance of each
budget, with its batch plan and time estimate, stamped with the settings it was built from
(versions.grid_inputs) so readers can refuse a grid the active profile would not build."""

import dagster as dg
import polars as pl

from proj_assets.scaling.assets import ARCH_GRID, N_FEATURES
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.scaling.versions import GRID_CODE_VERSION
from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.conventions import DUCKDB_POOL, table_metadata
from proj_resources import Compute, Provenance


def arch_grid_asset(settings: ScalingSettings) -> dg.AssetsDefinition:
    """`scaling/design/arch_grid` for `settings`."""

    @dg.asset(
        key=ARCH_GRID,
        group_name="scaling",
        kinds={"pytorch", "polars", "duckdb"},
        metadata=table_metadata(ARCH_GRID),
        pool=DUCKDB_POOL,
        code_version=GRID_CODE_VERSION,
    )
    def arch_grid(
        context: dg.AssetExecutionContext, compute: Compute, provenance: Provenance
    ) -> dg.Output[pl.DataFrame]:
        """Every architecture of the search space within tolerance of each budget, with its batch plan."""
        from proj_assets.scaling.arch_grid import (
            enumerate_grid,
            limits_table,
            verify_on_meta,
            with_batch_plans,
        )
        from proj_assets.scaling.versions import grid_inputs, time_model
        from proj_resources.fingerprints import table_version

        s = settings
        with compute.meter() as meter:
            grid = with_batch_plans(
                enumerate_grid(s.budgets, s.arch, N_FEATURES),
                N_FEATURES,
                max(s.search.context_lengths),
                s.trainer.effective_batch,
                compute.memory_budget_mb,
                s.arch.ffn_mult,
                time_model=time_model(s),
            )
            limits = limits_table(s.budgets, grid, s.arch)
            unfit = limits.filter(pl.col("n_archs_fit_memory") == 0)["budget"].to_list()
            if unfit:  # profile validation already refused budgets with no architecture at all
                raise dg.Failure(
                    f"no architecture of budget(s) {unfit} fits compute.memory_budget_mb="
                    f"{compute.memory_budget_mb} even at one sample per micro-batch; raise it or lower "
                    "scaling.search.context_lengths",
                    metadata={"limits": markdown_table(limits, limit=100)},
                )
            largest = max(s.budgets, key=lambda budget: s.budgets[budget])
            mismatches = verify_on_meta(
                grid.filter(pl.col("budget") == largest), N_FEATURES, s.arch.ffn_mult
            )
        if mismatches.height:
            raise dg.Failure(
                "analytic parameter count differs from the model built on the meta device",
                metadata={"mismatches": markdown_table(mismatches)},
            )
        inputs = grid_inputs(s, compute.memory_budget_mb)
        context.add_output_metadata(
            {
                "n_archs": grid.height,
                "input_versions": dg.MetadataValue.json(inputs),
                "limits": markdown_table(limits, limit=100),
                "meta_verified_budget": largest,
                "meta_verified_widths": grid.filter(pl.col("budget") == largest)[
                    "d_model"
                ].n_unique(),
                "infeasible_at_memory_budget": grid.filter(pl.col("micro_batch") == 0).height,
                **meter.metadata(),
            }
        )
        stamped = provenance.stamp(
            grid, context.run_id, seed=None, params=s.model_dump(), inputs=inputs
        )
        return dg.Output(stamped, data_version=dg.DataVersion(table_version(stamped, [])))

    return arch_grid
