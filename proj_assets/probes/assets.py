"""probes domain assets, inputs of the sweep: the model folder and corpus source (observed, outside
the graph) → corpus → cached token activations → sweep manifest (the sweep itself:
assets_sweep.py). Logic lives in the pure modules beside this file.

Staleness is Dagster's: every asset declares a `code_version` and reports a content-based
`DataVersion`, and the two sources report the content hash of the model (id and weights revision)
and of the corpus when observed, so a changed model or corpus shows its readers Unsynced."""

import time
from pathlib import Path
from typing import cast

import dagster as dg
import polars as pl

from proj_assets.partitions import (
    probe_config_partitions,
    probe_fold_partitions,
)
from proj_assets.probes.activation_cache import cache_is_valid, cache_spec
from proj_assets.probes.assets_sources import (
    CORPUS_SOURCE,
    MODEL_SOURCE,
    model_identity,
)
from proj_assets.probes.corpus import corpus_hash, load_configured_corpus, with_sentence_uid
from proj_assets.probes.extraction import read_model_config, resolve_context
from proj_assets.probes.folds import lopo_folds
from proj_assets.probes.results_store import FOLD_RESULTS_CODE_VERSION
from proj_assets.probes.settings import ProbesSettings
from proj_assets.probes.sweep_spec import (
    CONFIG_FIELDS,
    SHARED_FIELDS,
    expand,
    load_spec,
)
from proj_assets.probes.token_spans import EXTRACTION_VERSION, tokenizer_hash
from proj_assets.shared.check_results import markdown_table
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse
from proj_resources.fingerprints import table_version
from proj_resources.hashing import canonical_hash
from proj_resources.models import ModelSource, check_model_dir

CORPUS = ["probes", "raw", "corpus"]
ACTIVATIONS = ["probes", "features", "token_activations"]
MANIFEST = ["probes", "sweep", "manifest"]
FOLD_RESULTS = ["probes", "sweep", "fold_results"]
AGGREGATE = ["probes", "sweep", "aggregate_metrics"]
SCREENING = ["probes", "sweep", "screening"]
SUMMARY = ["probes", "report", "summary"]

# Dagster code versions: bump an asset's when a change to its code changes what it writes, so its
# partitions show Unsynced ("has a new code version") and a backfill of stale ones redoes them.
CODE_VERSIONS = {
    tuple(CORPUS): "corpus-1",
    tuple(ACTIVATIONS): EXTRACTION_VERSION,
    tuple(MANIFEST): "manifest-2",
    tuple(FOLD_RESULTS): FOLD_RESULTS_CODE_VERSION,
    tuple(AGGREGATE): "aggregate-2",
    tuple(SCREENING): "screening-1",
    tuple(SUMMARY): "summary-2",
}


def activation_folders(
    settings: ProbesSettings, corpus: pl.DataFrame, artifacts: ArtifactStore, model: ModelSource
) -> dict[int, tuple[dict, Path]]:
    """Layer → (cache spec, content-addressed folder) for every layer the sweep spec uses."""
    layers = sorted(set(load_spec(settings.sweep_spec_path()).factors.layer))
    path = model.path
    assert path is not None  # the probes' model resource always has one (definitions.py)
    context = resolve_context(read_model_config(str(check_model_dir(path))), settings.model.context)
    model_id, revision = model_identity(model)
    chash, tok_hash = corpus_hash(corpus), tokenizer_hash(path)
    m = settings.model
    specs = {
        layer: cache_spec(
            model_id,
            revision,
            layer,
            chash,
            m.max_tokens,
            context,
            tok_hash,
            EXTRACTION_VERSION,
            m.max_context_tokens,
        )
        for layer in layers
    }
    return {
        layer: (spec, artifacts.content_path("probes/activations", spec))
        for layer, spec in specs.items()
    }


def progress_logger(context: dg.AssetExecutionContext, what: str):
    """A callback `(done, total)` that logs n of N, rate and ETA."""
    started = time.perf_counter()

    def log(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - started, 1e-9)
        context.log.info(
            f"{what}: {done} of {total} ({rate:.1f}/s, ETA {(total - done) / max(rate, 1e-9):.0f}s)"
        )

    return log


def input_assets(settings: ProbesSettings, warehouse: Warehouse) -> list[dg.AssetsDefinition]:
    """The corpus, its activation caches and the sweep manifest for `settings`; `warehouse` holds
    the gate reviews."""

    @dg.asset(
        key=CORPUS,
        group_name="probes",
        kinds={"polars", "duckdb"},
        metadata=table_metadata(CORPUS),
        pool=DUCKDB_POOL,
        deps=[CORPUS_SOURCE],
        code_version=CODE_VERSIONS[tuple(CORPUS)],
    )
    def corpus(
        context: dg.AssetExecutionContext, compute: Compute, provenance: Provenance
    ) -> dg.Output[pl.DataFrame]:
        """Sentences of reasoning traces with their problem (group), position and anchor label."""
        corpus_settings = settings.corpus
        with compute.meter() as meter:
            df = load_configured_corpus(corpus_settings)
        context.add_output_metadata(
            {
                "rows": df.height,
                "groups": df["group_id"].n_unique(),
                "traces": df["trace_id"].n_unique(),
                "positive_rate": round(float(cast(float, df["label"].mean())), 4),
                "corpus_hash": corpus_hash(df),
                "source": corpus_settings.path or "generated",
                **meter.metadata(),
                **provenance.metadata(),
            }
        )
        return dg.Output(
            provenance.stamp(
                df, context.run_id, corpus_settings.seed, corpus_settings.model_dump()
            ),
            data_version=dg.DataVersion(corpus_hash(df)),
        )

    @dg.asset(
        key=ACTIVATIONS,
        group_name="probes",
        kinds={"torch", "numpy"},
        ins={"corpus": dg.AssetIn(CORPUS)},
        deps=[MODEL_SOURCE],
        automation_condition=GATED,
        code_version=CODE_VERSIONS[tuple(ACTIVATIONS)],
    )
    @gated(ACTIVATIONS, warehouse)
    def token_activations(
        context: dg.AssetExecutionContext,
        corpus: pl.DataFrame,
        artifacts: ArtifactStore,
        compute: Compute,
        probe_model: ModelSource,
    ) -> dg.MaterializeResult:
        """Per-token float16 activations of every sentence, one shared content-addressed cache per layer."""
        from contextlib import ExitStack

        from proj_assets.probes.extraction import extract_into_caches
        from proj_resources.models import load_encoder, load_tokenizer

        model_settings = settings.model
        folders = activation_folders(settings, corpus, artifacts, probe_model)
        missing = {
            layer: pair for layer, pair in folders.items() if not cache_is_valid(pair[1])
        }  # absent or broken
        with compute.meter() as meter:
            if missing:
                device = compute.torch_device()
                path = probe_model.path
                assert path is not None  # checked by activation_folders above
                model, tokenizer = load_encoder(path, device), load_tokenizer(path)
                with ExitStack() as stack:  # every layer's folder appears at once, or none does
                    tmp = {
                        layer: stack.enter_context(artifacts.atomic_dir(folder))
                        for layer, (_s, folder) in missing.items()
                    }
                    extract_into_caches(
                        model,
                        tokenizer,
                        with_sentence_uid(corpus),
                        tmp,
                        {k: v[0] for k, v in missing.items()},
                        model_settings.max_tokens,
                        next(iter(missing.values()))[0]["context"],
                        model_settings.max_context_tokens,
                        model_settings.batch_size,
                        device,
                        progress=progress_logger(context, "encoded model inputs"),
                    )
        per_layer = {
            str(layer): {
                "path": str(folder),
                "hash": folder.name,
                "cache_hit": layer not in missing,
                **{k: v for k, v in artifacts.describe(folder).items() if k == "bytes"},
            }
            for layer, (_spec, folder) in folders.items()
        }
        total = sum(v["bytes"] for v in per_layer.values())
        return dg.MaterializeResult(
            data_version=dg.DataVersion(
                canonical_hash(sorted(f.name for _s, f in folders.values()))
            ),
            metadata={
                "layers": dg.MetadataValue.json(per_layer),
                "bytes": total,
                "cache_hits": len(folders) - len(missing),
                "path": dg.MetadataValue.path(str(next(iter(folders.values()))[1].parent)),
                "model_revision": probe_model.resolved_revision(),
                **meter.metadata(),
            },
        )

    @dg.asset(
        key=MANIFEST,
        group_name="probes",
        kinds={"polars", "duckdb"},
        ins={"corpus": dg.AssetIn(CORPUS)},
        deps=[ACTIVATIONS, MODEL_SOURCE],
        metadata=table_metadata(MANIFEST),
        pool=DUCKDB_POOL,
        code_version=CODE_VERSIONS[tuple(MANIFEST)],
    )
    @gated(MANIFEST, warehouse)
    def manifest(
        context: dg.AssetExecutionContext,
        corpus: pl.DataFrame,
        provenance: Provenance,
        artifacts: ArtifactStore,
        probe_model: ModelSource,
    ) -> dg.Output[pl.DataFrame]:
        """Stage-1 probe configs of the sweep spec (settings, stable ids, their activation cache);
        registers config and fold partitions (and removes folds no longer in the corpus). Model
        weights are hashed here, once per sweep."""
        spec = load_spec(settings.sweep_spec_path())
        caches = activation_folders(settings, corpus, artifacts, probe_model)
        # configs that train together are registered next to each other, so a backfill's run (a range
        # of one fold's configs) holds whole groups
        configs = (
            pl.DataFrame(expand(spec, canonical_hash))
            .sort(list(SHARED_FIELDS), maintain_order=True)
            .with_columns(
                activations_path=pl.col("layer").replace_strict(
                    {k: str(v[1]) for k, v in caches.items()}, return_dtype=pl.Utf8
                )
            )
        )
        model = next(iter(caches.values()))[0]
        folds = lopo_folds(corpus)
        context.instance.add_dynamic_partitions(
            probe_config_partitions.name, configs["config_id"].to_list()
        )
        context.instance.add_dynamic_partitions(probe_fold_partitions.name, folds)
        gone = set(context.instance.get_dynamic_partitions(probe_fold_partitions.name)) - set(folds)
        for fold in sorted(gone):  # their rows stay in the warehouse as history
            context.instance.delete_dynamic_partition(probe_fold_partitions.name, fold)
        context.log.info(
            f"registered {configs.height} configs x {len(folds)} folds; removed folds {sorted(gone)}"
        )
        table = configs.with_columns(
            spec_name=pl.lit(spec.name),
            n_folds=pl.lit(len(folds)),
            stage2_seeds=pl.lit(spec.stages.stage2_seeds),
            promote_top_k=pl.lit(spec.stages.promote_top_k),
        )
        context.add_output_metadata(
            {
                "configs": configs.height,
                "folds": len(folds),
                "partitions": configs.height * len(folds),
                "removed_folds": dg.MetadataValue.json(sorted(gone)),
                "spec": str(settings.sweep_spec_path()),
                "config_settings": markdown_table(
                    configs.select("config_id", *CONFIG_FIELDS), limit=100
                ),
            }
        )
        chash = corpus_hash(corpus)
        stamped = pl.concat(
            provenance.stamp(
                rows,
                context.run_id,
                None,
                spec.model_dump(),
                model["model_id"],
                model["revision"],
                inputs={
                    "model": f"{model['model_id']}@{model['revision']}",
                    "corpus": chash,
                    "activations": Path(path).name,  # the cache key
                    "spec": canonical_hash(spec.model_dump()),
                    "code": CODE_VERSIONS[tuple(MANIFEST)],
                },
            )
            for (path,), rows in table.group_by("activations_path", maintain_order=True)
        )
        return dg.Output(stamped, data_version=dg.DataVersion(table_version(table)))

    return [corpus, token_activations, manifest]
