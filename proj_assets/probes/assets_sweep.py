"""probes domain assets, the sweep: config × fold results (assets_folds.py) → aggregates → staged
screening → report, each reading only the fold rows of the current inputs. Logic lives in the pure
modules beside this file."""

import dagster as dg
import polars as pl

from proj_assets.partitions import (
    probe_config_partitions,
)
from proj_assets.probes.assets import (
    AGGREGATE,
    CODE_VERSIONS,
    CORPUS,
    FOLD_RESULTS,
    MANIFEST,
    SCREENING,
    SUMMARY,
)
from proj_assets.probes.assets_folds import current_results, fold_assets
from proj_assets.probes.assets_sources import CORPUS_SOURCE, MODEL_SOURCE
from proj_assets.probes.results_store import predictions_relpath
from proj_assets.probes.settings import ProbesSettings
from proj_assets.probes.sweep_spec import (
    CONFIG_FIELDS,
    stage1_id,
    stage2_id,
)
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_resources import ArtifactStore, Warehouse
from proj_resources.fingerprints import FINGERPRINT, table_version


def stored_predictions(artifacts: ArtifactStore, results: pl.DataFrame):
    """(config_id, fold) -> the predictions that partition stored with the current inputs (the
    fingerprint of its rows in `results`, the current fold results), for release.chance_corrected."""
    fingerprints = {
        (row["config_id"], row["fold"]): row[FINGERPRINT]
        for row in results.select("config_id", "fold", FINGERPRINT).unique().iter_rows(named=True)
    }
    return lambda config_id, fold: pl.read_parquet(
        artifacts.path(predictions_relpath(config_id, fold, fingerprints[(config_id, fold)]))
    )


def sweep_assets(
    settings: ProbesSettings, device_tags: dict, warehouse: Warehouse
) -> list[dg.AssetsDefinition]:
    """Fold results, aggregates, screening and the report for `settings`; fold training on the
    Celery queue of `device_tags`; `warehouse` holds the gate reviews (and the fold results)."""

    fold_results = fold_assets(settings, device_tags, warehouse)

    @dg.asset(
        key=AGGREGATE,
        group_name="probes",
        kinds={"polars", "duckdb"},
        ins={"manifest": dg.AssetIn(MANIFEST), "corpus": dg.AssetIn(CORPUS)},
        deps=[FOLD_RESULTS, MODEL_SOURCE, CORPUS_SOURCE],
        metadata=table_metadata(AGGREGATE),
        pool=DUCKDB_POOL,
        automation_condition=GATED,
        code_version=CODE_VERSIONS[tuple(AGGREGATE)],
    )
    @gated(AGGREGATE, warehouse)
    def aggregate_metrics(
        context: dg.AssetExecutionContext,
        manifest: pl.DataFrame,
        corpus: pl.DataFrame,
        warehouse: Warehouse,
    ) -> dg.Output[pl.DataFrame]:
        """Per config and probe role: mean, spread and 95% CI of PR-AUC over folds × seeds."""
        from proj_assets.probes.evaluation import aggregate

        results, stale = current_results(warehouse, manifest, corpus)
        table = aggregate(results)
        context.add_output_metadata(
            {
                "configs": table["config_id"].n_unique(),
                "fits": results.height,
                "staleness": dg.MetadataValue.json(stale),
            }
        )
        return dg.Output(table, data_version=dg.DataVersion(table_version(table)))

    @dg.asset(
        key=SCREENING,
        group_name="probes",
        kinds={"polars", "duckdb"},
        pool=DUCKDB_POOL,
        ins={"aggregate_metrics": dg.AssetIn(AGGREGATE), "manifest": dg.AssetIn(MANIFEST)},
        metadata=table_metadata(SCREENING),
        automation_condition=GATED,
        code_version=CODE_VERSIONS[tuple(SCREENING)],
    )
    @gated(SCREENING, warehouse)
    def screening(
        context: dg.AssetExecutionContext, aggregate_metrics: pl.DataFrame, manifest: pl.DataFrame
    ) -> dg.Output[pl.DataFrame]:
        """Stage-1 configs ranked by PR-AUC lower CI bound; the top k become stage-2 partitions."""
        from proj_assets.probes.evaluation import screen

        first = manifest.row(0, named=True)
        table = screen(
            aggregate_metrics,
            first["n_folds"],
            first["promote_top_k"],
            first["stage2_seeds"],
            stage2_id,
        )
        waiting = manifest.height - table.filter(pl.col("complete")).height
        if waiting:  # promoting before every stage-1 config is done could promote the wrong ones
            table = table.with_columns(
                promoted=pl.lit(False), stage2_config_id=pl.lit(None, dtype=pl.Utf8)
            )
            context.log.info(f"{waiting} stage-1 configs still incomplete: nothing promoted yet")
        promoted = table.filter(pl.col("promoted"))["stage2_config_id"].to_list()
        if promoted:
            context.instance.add_dynamic_partitions(probe_config_partitions.name, promoted)
        context.add_output_metadata(
            {
                "promoted": dg.MetadataValue.json(promoted),
                "incomplete_configs": waiting,
                "twin_configs": table.filter(pl.col("twin_of").is_not_null()).height,
            }
        )
        return dg.Output(table, data_version=dg.DataVersion(table_version(table)))

    @dg.asset(
        key=SUMMARY,
        group_name="probes",
        kinds={"polars", "duckdb"},
        pool=DUCKDB_POOL,
        ins={
            "aggregate_metrics": dg.AssetIn(AGGREGATE),
            "screening": dg.AssetIn(SCREENING),
            "manifest": dg.AssetIn(MANIFEST),
            "corpus": dg.AssetIn(CORPUS),
        },
        deps=[FOLD_RESULTS, MODEL_SOURCE, CORPUS_SOURCE],
        metadata=table_metadata(SUMMARY),
        automation_condition=GATED,
        code_version=CODE_VERSIONS[tuple(SUMMARY)],
    )
    @gated(SUMMARY, warehouse)
    def summary(
        context: dg.AssetExecutionContext,
        aggregate_metrics: pl.DataFrame,
        screening: pl.DataFrame,
        manifest: pl.DataFrame,
        corpus: pl.DataFrame,
        warehouse: Warehouse,
        artifacts: ArtifactStore,
    ) -> dg.Output[pl.DataFrame]:
        """Final result per config (stage 2 where promoted) with its settings, and the nested-LOPO
        confirmation of the winner against baseline and control, as tables and plots."""
        from proj_assets.probes.evaluation import final_candidates, nested_confirmation
        from proj_assets.probes.release import chance_corrected, release_decision
        from proj_assets.probes.report import summary_metadata
        from proj_assets.shared.metadata import ui_metadata

        finals = final_candidates(aggregate_metrics, stage1_id).join(
            manifest.select("config_id", *CONFIG_FIELDS),
            left_on="base_id",
            right_on="config_id",
            how="left",
        )
        results, stale = current_results(warehouse, manifest, corpus)
        confirmed = chance_corrected(
            nested_confirmation(results, stage1_id), stored_predictions(artifacts, results)
        )
        decision = release_decision(confirmed, settings.release_margin)
        context.add_output_metadata(
            {
                **ui_metadata(summary_metadata(finals, confirmed, decision, results, stage1_id)),
                "staleness": dg.MetadataValue.json(stale),
            }
        )
        table = finals.join(
            screening.select("config_id", "rank", "promoted"),
            left_on="base_id",
            right_on="config_id",
            how="left",
        )
        return dg.Output(table, data_version=dg.DataVersion(table_version(table)))

    return [fold_results, aggregate_metrics, screening, summary]
