"""probes domain assets, the fold results: config × fold partitions trained outside the warehouse
pool and written in one transaction, each row stamped with the fingerprint of its inputs; and how
readers get the rows of the current inputs (`current_results`)."""

import io
from pathlib import Path
from typing import cast

import dagster as dg
import polars as pl

from proj_assets.partitions import (
    probe_config_fold_partitions,
)
from proj_assets.probes.assets import (
    ACTIVATIONS,
    CODE_VERSIONS,
    CORPUS,
    FOLD_RESULTS,
    MANIFEST,
)
from proj_assets.probes.assets_sources import CORPUS_SOURCE, MODEL_SOURCE
from proj_assets.probes.corpus import corpus_hash, with_sentence_uid
from proj_assets.probes.folds import fold_definition, lopo_folds
from proj_assets.probes.results_store import QUALIFIED as RESULTS_TABLE
from proj_assets.probes.results_store import (
    Partition,
    partition_inputs,
    predictions_relpath,
    replace_partitions,
    select_current,
)
from proj_assets.probes.settings import ProbesSettings
from proj_assets.probes.sweep_spec import (
    CONFIG_FIELDS,
    group_key,
    resolve_config,
    stage1_id,
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
from proj_assets.shared.conventions import GATED
from proj_assets.shared.gates import gated
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse
from proj_resources.fingerprints import FINGERPRINT, fingerprint
from proj_resources.hashing import canonical_hash


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


def expected_inputs(
    manifest: pl.DataFrame, corpus: pl.DataFrame, partitions: list[Partition]
) -> dict[Partition, dict[str, str]]:
    """The current inputs (`results_store.partition_inputs`) of every partition that belongs to the
    study now: its stage-1 config is in the manifest and its fold is a group of the corpus."""
    stage1 = {r["config_id"]: r for r in manifest.iter_rows(named=True)}
    folds, chash = set(lopo_folds(corpus)), corpus_hash(corpus)
    definitions = {fold: fold_definition(corpus, fold) for fold in folds}
    return {
        (config_id, fold): partition_inputs(
            resolve_config(config_id, stage1), chash, definitions[fold]
        )
        for config_id, fold in partitions
        if fold in folds and stage1_id(config_id) in stage1
    }


def current_results(
    warehouse: Warehouse, manifest: pl.DataFrame, corpus: pl.DataFrame
) -> tuple[pl.DataFrame, dict]:
    """(fold result rows produced by the current inputs of the manifest's configs, stage 1 and
    their stage 2, on the corpus's folds; the staleness report of the rest, for metadata). Rows of
    another model, corpus, cache, fold membership or code version stay in the table as history."""
    results = warehouse.query(f"select * from {RESULTS_TABLE}")
    stage1 = manifest["config_id"].to_list()
    ids = [c for c in results["config_id"].unique().to_list() if stage1_id(c) in stage1]
    wanted = [(c, f) for c in sorted(set(ids) | set(stage1)) for f in lopo_folds(corpus)]
    rows, report = select_current(results, expected_inputs(manifest, corpus, wanted))
    if rows.height == 0:
        raise dg.Failure(
            "no fold results from the current inputs for the configs of the current manifest "
            f"(stored rows: {report}): materialize probes/sweep/fold_results first",
            metadata={"staleness": dg.MetadataValue.json(report)},
        )
    return rows, report


def fold_assets(
    settings: ProbesSettings, device_tags: dict, warehouse: Warehouse
) -> dg.AssetsDefinition:
    """`probes/sweep/fold_results` for `settings`: fold training on the Celery queue of
    `device_tags`; `warehouse` holds the gate reviews and the fold results."""

    @compute_op(
        device_tags,
        name="probes_sweep_fold_results_compute",
        ins={"activations": dg.In(dg.Nothing), "sources": dg.In(dg.Nothing)},
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
        expected = expected_inputs(
            manifest, corpus, [(k["config"], k["fold"]) for k in run_partitions(context)]
        )
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
                    inputs = expected[(config["config_id"], fold)]
                    own = predictions.filter(pl.col("config_id") == config["config_id"])
                    buffer = io.BytesIO()
                    own.write_parquet(buffer)
                    artifacts.write_bytes(
                        predictions_relpath(config["config_id"], fold, fingerprint(inputs)),
                        buffer.getvalue(),
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
                            inputs=inputs,
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
    def fold_results_write(context: dg.OpExecutionContext, handoff: Handoff, warehouse: Warehouse):
        """Replace the run's partitions' rows in one short transaction (the only part in the `duckdb`
        pool). The data version is the hash of the rows' input fingerprints: rows are a
        deterministic function of their inputs, so an unchanged partition keeps its version."""
        rows = load_handoff(handoff)
        with warehouse.get_connection() as conn:
            replace_partitions(
                conn, rows, [(k["config"], k["fold"]) for k in run_partitions(context)]
            )
        version = canonical_hash(sorted(rows[FINGERPRINT].unique().to_list()))
        remove_handoff(handoff)
        return dg.Output(None, metadata=handoff.metadata, data_version=dg.DataVersion(version))

    @dg.graph_asset(
        key=FOLD_RESULTS,
        group_name="probes",
        kinds={"torch", "polars", "duckdb"},
        partitions_def=probe_config_fold_partitions,
        automation_condition=GATED,
        backfill_policy=dg.BackfillPolicy.multi_run(settings.partitions_per_run),
        code_version=CODE_VERSIONS[tuple(FOLD_RESULTS)],
        ins={
            "corpus": dg.AssetIn(CORPUS),
            "manifest": dg.AssetIn(MANIFEST),
            "activations": dg.AssetIn(ACTIVATIONS, dagster_type=dg.Nothing),
            "model_source": dg.AssetIn(MODEL_SOURCE, dagster_type=dg.Nothing),
            "corpus_source": dg.AssetIn(CORPUS_SOURCE, dagster_type=dg.Nothing),
        },
        metadata={
            "table": RESULTS_TABLE,
            "partition_expr": {"config": "config_id", "fold": "fold"},
        },
    )
    def fold_results(corpus, manifest, activations, model_source, corpus_source):
        """Metrics per seed and probe for config × held-out group partitions; a backfill runs up to
        `probes.partitions_per_run` of them per run (configs of one fold), trained in one batch."""
        return fold_results_write(
            fold_results_compute(
                corpus, manifest, activations=activations, sources=[model_source, corpus_source]
            )
        )

    return fold_results
