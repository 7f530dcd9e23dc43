"""probes domain assets, the sweep: config × fold results → aggregates → staged screening →
report. Logic lives in the pure modules beside this file."""

import io
from pathlib import Path
from typing import cast

import dagster as dg
import polars as pl

from proj_assets.partitions import (
    probe_config_fold_partitions,
    probe_config_partitions,
)
from proj_assets.probes.assets import (
    ACTIVATIONS,
    AGGREGATE,
    CORPUS,
    FOLD_RESULTS,
    MANIFEST,
    SCREENING,
    SUMMARY,
)
from proj_assets.probes.corpus import corpus_hash, with_sentence_uid
from proj_assets.probes.results_store import QUALIFIED as RESULTS_TABLE
from proj_assets.probes.results_store import predictions_relpath, replace_partitions
from proj_assets.probes.settings import ProbesSettings
from proj_assets.probes.sweep_spec import (
    CONFIG_FIELDS,
    group_key,
    resolve_config,
    stage1_id,
    stage2_id,
)
from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.compute_write import (
    Handoff,
    compute_op,
    load_handoff,
    remove_handoff,
    save_handoff,
    write_op,
)
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse


def run_partitions(context) -> list[dict[str, str]]:
    """The run's partitions as {"config": ..., "fold": ...}: one, or every key of its range."""
    return [
        dict(probe_config_fold_partitions.get_partition_key_from_str(k).keys_by_dimension)
        for k in context.partition_keys
    ]


def partition_row(config: dict, fold: str, metrics: pl.DataFrame, data) -> dict:
    """One partition's settings and headline numbers, for the run's metadata."""
    cand = metrics.filter(pl.col("role") == "candidate")

    def mean(role: str) -> float:
        # polars types a mean as any scalar; of a float column it is a float
        return round(cast(float, metrics.filter(pl.col("role") == role)["pr_auc"].mean()), 4)

    return {
        "config_id": config["config_id"],
        "fold": fold,
        **{field: config[field] for field in CONFIG_FIELDS},
        "seeds": int(config["n_seeds"]),
        "candidate_pr_auc_mean": mean("candidate"),
        "baseline_pr_auc": mean("baseline"),
        "control_pr_auc_mean": mean("control"),
        "epochs_run_mean": round(cast(float, cand["epochs_run"].mean()), 1),
        "n_train": int(data.y_train.size),
        "n_test": int(data.y_test.size),
    }


def current_results(warehouse: Warehouse, manifest: pl.DataFrame) -> pl.DataFrame:
    """Fold result rows of the configs in the current manifest (stage 1 and their stage 2)."""
    results = warehouse.query(f"select * from {RESULTS_TABLE}")
    current = manifest["config_id"].to_list()
    results = results.filter(
        pl.col("config_id").map_elements(stage1_id, return_dtype=pl.Utf8).is_in(current)
    )
    if results.height == 0:
        raise dg.Failure(
            "no fold results for the configs of the current manifest: materialize probes/sweep/fold_results first"
        )
    return results


def stored_predictions(artifacts: ArtifactStore):
    """(config_id, fold) -> that partition's stored predictions, for release.chance_corrected."""
    return lambda config_id, fold: pl.read_parquet(
        artifacts.path(predictions_relpath(config_id, fold))
    )


def sweep_assets(
    settings: ProbesSettings, device_tags: dict, warehouse: Warehouse
) -> list[dg.AssetsDefinition]:
    """Fold results, aggregates, screening and the report for `settings`; fold training on the
    Celery queue of `device_tags`; `warehouse` holds the gate reviews (and the fold results)."""

    @compute_op(
        device_tags,
        name="probes_sweep_fold_results_compute",
        ins={"activations": dg.In(dg.Nothing)},
    )
    @gated(FOLD_RESULTS, warehouse)
    def fold_results_compute(
        context: dg.OpExecutionContext,
        corpus: pl.DataFrame,
        manifest: pl.DataFrame,
        artifacts: ArtifactStore,
        compute: Compute,
        provenance: Provenance,
    ) -> Handoff:
        """Train the run's config × held-out group partitions outside the warehouse pool. A run holds
        one partition, or a range of them (a multi-run backfill): configs of the range that share probe
        type, layer and fold train together, every (config, seed) replica in one batched computation."""
        from proj_assets.probes.activation_cache import open_cache
        from proj_assets.probes.fold_run import cached_references, fold_inputs, run_group_fold
        from proj_assets.probes.probe_models import matmul_dtype

        stage1 = {r["config_id"]: r for r in manifest.iter_rows(named=True)}
        groups: dict[tuple, list[dict]] = {}
        for keys in run_partitions(context):
            config = resolve_config(keys["config"], stage1)
            groups.setdefault(
                (keys["fold"], config["activations_path"], group_key(config)), []
            ).append(config)
        seed = compute.seed_everything(threads=settings.train_threads)
        sentences, all_metrics, rows = with_sentence_uid(corpus), [], []
        # each layer's cache verified (checksummed) once per run, however many folds the run holds
        caches = {path: open_cache(Path(path)) for path in {path for _fold, path, _key in groups}}
        device = compute.torch_device()
        dtype = matmul_dtype(settings.matmul_dtype, device)
        with compute.meter() as meter:
            for (fold, activations_path, _key), configs in groups.items():
                folder = Path(activations_path)  # resolved (weights hashed) once, by the manifest
                array, index, _meta = caches[activations_path]
                data = fold_inputs(configs[0], sentences, array, index, fold)
                context.log.info(
                    f"training {len(configs)} {configs[0]['probe_type']} config(s) x their seeds together "
                    f"on {data.y_train.size} sentences (validation {data.val_groups}), testing on {fold}"
                )
                refs = cached_references(
                    data,
                    seed,
                    artifacts.path("probes", "references"),
                    corpus_hash(corpus),
                    fold,
                    folder.name,
                )
                metrics, predictions = run_group_fold(
                    configs, data, fold, seed, refs, device, dtype
                )
                for config in configs:
                    own = predictions.filter(pl.col("config_id") == config["config_id"])
                    buffer = io.BytesIO()
                    own.write_parquet(buffer)
                    artifacts.write_bytes(
                        predictions_relpath(config["config_id"], fold), buffer.getvalue()
                    )
                    mine = metrics.filter(pl.col("config_id") == config["config_id"])
                    all_metrics.append(
                        provenance.stamp(
                            mine,
                            context.run_id,
                            seed,
                            config,
                            config["model_id"],
                            config["model_revision"],
                        )
                    )
                    rows.append(partition_row(config, fold, mine, data))
        stamped = pl.concat(all_metrics)
        table = pl.DataFrame(rows)
        return save_handoff(
            context,
            artifacts,
            stamped,
            {
                "table": f"{RESULTS_TABLE}",
                "rows": stamped.height,
                "partitions": table.height,
                "trained_together": len(groups),
                **(
                    table.row(0, named=True)
                    if table.height == 1
                    else {"results": markdown_table(table)}
                ),
                "fits_per_second": round(stamped.height / max(meter.seconds, 1e-9), 2),
                **meter.metadata(),
                "token_matmul_dtype": str(dtype).removeprefix("torch."),
            },
        )

    @write_op(name="probes_sweep_fold_results_write", out=dg.Out(dg.Nothing))
    def fold_results_write(
        context: dg.OpExecutionContext, handoff: Handoff, warehouse: Warehouse
    ) -> None:
        """Replace the run's partitions' rows in one short transaction (the only part in the `duckdb` pool)."""
        with warehouse.get_connection() as conn:
            replace_partitions(
                conn,
                load_handoff(handoff),
                [(k["config"], k["fold"]) for k in run_partitions(context)],
            )
        context.add_output_metadata(handoff.metadata)
        remove_handoff(handoff)

    @dg.graph_asset(
        key=FOLD_RESULTS,
        group_name="probes",
        kinds={"torch", "polars", "duckdb"},
        partitions_def=probe_config_fold_partitions,
        automation_condition=GATED,
        backfill_policy=dg.BackfillPolicy.multi_run(settings.partitions_per_run),
        ins={
            "corpus": dg.AssetIn(CORPUS),
            "manifest": dg.AssetIn(MANIFEST),
            "activations": dg.AssetIn(ACTIVATIONS, dagster_type=dg.Nothing),
        },
        metadata={
            "table": RESULTS_TABLE,
            "partition_expr": {"config": "config_id", "fold": "fold"},
        },
    )
    def fold_results(corpus, manifest, activations):
        """Metrics per seed and probe for config × held-out group partitions; a backfill runs up to
        `probes.partitions_per_run` of them per run (configs of one fold), trained in one batch."""
        return fold_results_write(fold_results_compute(corpus, manifest, activations=activations))

    @dg.asset(
        key=AGGREGATE,
        group_name="probes",
        kinds={"polars", "duckdb"},
        ins={"manifest": dg.AssetIn(MANIFEST)},
        deps=[FOLD_RESULTS],
        metadata=table_metadata(AGGREGATE),
        pool=DUCKDB_POOL,
        automation_condition=GATED,
    )
    @gated(AGGREGATE, warehouse)
    def aggregate_metrics(
        context: dg.AssetExecutionContext, manifest: pl.DataFrame, warehouse: Warehouse
    ) -> pl.DataFrame:
        """Per config and probe role: mean, spread and 95% CI of PR-AUC over folds × seeds."""
        from proj_assets.probes.evaluation import aggregate

        table = aggregate(results := current_results(warehouse, manifest))
        context.add_output_metadata(
            {"configs": table["config_id"].n_unique(), "fits": results.height}
        )
        return table

    @dg.asset(
        key=SCREENING,
        group_name="probes",
        kinds={"polars", "duckdb"},
        pool=DUCKDB_POOL,
        ins={"aggregate_metrics": dg.AssetIn(AGGREGATE), "manifest": dg.AssetIn(MANIFEST)},
        metadata=table_metadata(SCREENING),
        automation_condition=GATED,
    )
    @gated(SCREENING, warehouse)
    def screening(
        context: dg.AssetExecutionContext, aggregate_metrics: pl.DataFrame, manifest: pl.DataFrame
    ) -> pl.DataFrame:
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
        return table

    @dg.asset(
        key=SUMMARY,
        group_name="probes",
        kinds={"polars", "duckdb"},
        pool=DUCKDB_POOL,
        ins={
            "aggregate_metrics": dg.AssetIn(AGGREGATE),
            "screening": dg.AssetIn(SCREENING),
            "manifest": dg.AssetIn(MANIFEST),
        },
        metadata=table_metadata(SUMMARY),
        automation_condition=GATED,
    )
    @gated(SUMMARY, warehouse)
    def summary(
        context: dg.AssetExecutionContext,
        aggregate_metrics: pl.DataFrame,
        screening: pl.DataFrame,
        manifest: pl.DataFrame,
        warehouse: Warehouse,
        artifacts: ArtifactStore,
    ) -> pl.DataFrame:
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
        results = current_results(warehouse, manifest)
        confirmed = chance_corrected(
            nested_confirmation(results, stage1_id), stored_predictions(artifacts)
        )
        decision = release_decision(confirmed, settings.release_margin)
        context.add_output_metadata(
            ui_metadata(summary_metadata(finals, confirmed, decision, results, stage1_id))
        )
        return finals.join(
            screening.select("config_id", "rank", "promoted"),
            left_on="base_id",
            right_on="config_id",
            how="left",
        )

    return [fold_results, aggregate_metrics, screening, summary]
