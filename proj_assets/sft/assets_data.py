"""sft data assets: the frozen test set and the training set (generation: assets_generation.py)."""

import json
from pathlib import Path
from typing import cast

import dagster as dg
import polars as pl

from proj_assets.sft.assets_sampling import TableArgs, model_revision_of
from proj_assets.sft.input_versions import data_code_version
from proj_assets.sft.iterations import selected_iteration
from proj_assets.sft.keys import CRITIC, SHARDS, TEST_INSTRUCTIONS, TRAINING_SET
from proj_assets.sft.settings import SftSettings
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_assets.shared.metadata import ui_metadata
from proj_resources import ArtifactStore, Provenance, Warehouse
from proj_resources.hashing import canonical_hash

TABLE: TableArgs = {"group_name": "sft", "kinds": {"polars", "duckdb"}, "pool": DUCKDB_POOL}


def held_out_items(cfg: SftSettings, artifacts: ArtifactStore) -> tuple[dict, Path, list, list]:
    """(spec, frozen file, freshly generated rows, the test set's rows): the rows are the frozen
    file's once it exists, else the fresh ones (the base model's corpus is decontaminated
    against them before the test set is first built)."""
    from proj_assets.sft.tasks import TASK_TYPES, make_instructions

    spec = {"per_type": cfg.test_per_type, "seed": cfg.test_seed, "types": TASK_TYPES}
    frozen = artifacts.path("sft_test_set", f"{canonical_hash(spec)}.json")
    fresh = [vars(i) for i in make_instructions(cfg.test_per_type * len(TASK_TYPES), cfg.test_seed)]
    rows = json.loads(frozen.read_text()) if frozen.exists() else fresh
    return spec, frozen, fresh, rows


def data_assets(
    cfg: SftSettings, shards: dg.PartitionsDefinition, warehouse: Warehouse
) -> list[dg.AssetsDefinition]:
    """The frozen test set and the training set for `cfg`; the training set needs every one of
    the profile's `shards` past its QC gates."""

    code_version = data_code_version()

    @dg.asset(
        key=TEST_INSTRUCTIONS,
        metadata=table_metadata(TEST_INSTRUCTIONS),
        code_version=code_version,
        **TABLE,
    )
    def test_instructions(
        context: dg.AssetExecutionContext, artifacts: ArtifactStore, provenance: Provenance
    ) -> dg.Output[pl.DataFrame]:
        """Held-out test instructions (5 types x N), frozen on first build with a content hash; never trained on."""
        from proj_assets.sft.dataset import duplicate_instructions

        spec, frozen, fresh, rows = held_out_items(cfg, artifacts)
        repeated = duplicate_instructions([r["instruction"] for r in rows])
        if repeated:  # a repeated item would be counted twice by the paired test
            raise dg.Failure(
                f"test set {frozen if frozen.exists() else spec} repeats {len(repeated)} instruction(s), "
                f"e.g. {repeated[:3]}: every held-out item must be unique",
                allow_retries=False,
            )
        if not frozen.exists():
            artifacts.write_bytes(
                str(frozen.relative_to(artifacts.path())), json.dumps(fresh).encode()
            )
        df = (
            pl.DataFrame(rows)
            .with_row_index("item_id")
            .with_columns(pl.col("item_id").cast(pl.Int64))
        )
        content_hash = canonical_hash(rows)
        df = provenance.stamp(
            df.with_columns(pl.lit(content_hash).alias("content_hash")),
            context.run_id,
            cfg.test_seed,
            spec,
        )
        return dg.Output(
            df,
            metadata={
                "rows": df.height,
                "content_hash": content_hash,
                "frozen_file": str(frozen),
                "generator_matches_frozen": canonical_hash(fresh) == content_hash,
            },
        )

    @dg.asset(
        key=TRAINING_SET,
        automation_condition=GATED,
        metadata=table_metadata(TRAINING_SET),
        code_version=code_version,
        ins={
            "scale_shards": dg.AssetIn(key=SHARDS),
            "critic_scores": dg.AssetIn(key=CRITIC),
            "test_instructions": dg.AssetIn(key=TEST_INSTRUCTIONS),
        },
        **TABLE,
    )
    @gated(TRAINING_SET, warehouse, {tuple(SHARDS): lambda _context: shards.get_partition_keys()})
    def training_set(
        context: dg.AssetExecutionContext,
        scale_shards: pl.DataFrame,
        critic_scores: pl.DataFrame,
        test_instructions: pl.DataFrame,
        provenance: Provenance,
    ) -> dg.Output[pl.DataFrame]:
        """Shard examples kept by QC and the critic, deduplicated and decontaminated against the test set."""
        from proj_assets.sft.dataset import TooFewRowsError, build_training_set
        from proj_assets.sft.input_versions import critic_inputs, shard_inputs, training_inputs
        from proj_resources.fingerprints import current_rows, staleness

        revision, pilot = model_revision_of(context), selected_iteration(cfg)
        test_texts = test_instructions["instruction"].to_list()
        # only rows of the inputs in force now: a shard generated from an older base model,
        # prompt or setting is superseded history, never mixed in
        now = {"shards": shard_inputs(cfg, revision), "critic": critic_inputs(cfg, revision, pilot)}
        stale = {
            "superseded_shard_rows": staleness(scale_shards, now["shards"]),
            "superseded_critic_rows": staleness(critic_scores, now["critic"]),
        }
        critic = current_rows(critic_scores, now["critic"]).select(
            "example_id", "critic_margin", "critic_threshold", "critic_keep"
        )
        shard_rows = current_rows(scale_shards, now["shards"])
        candidates = shard_rows.join(critic, on="example_id", how="inner")
        try:
            df, report = build_training_set(
                candidates, test_texts, cfg.decontamination_ngram, cfg.min_training_rows
            )
        except TooFewRowsError as error:
            raise dg.Failure(
                f"{error}; inputs: {stale}", metadata=error.report, allow_retries=False
            ) from error
        inputs = training_inputs(cfg, revision, pilot, canonical_hash(test_texts))
        df = provenance.stamp(df, context.run_id, None, inputs, None, revision, inputs=inputs)
        meta = {
            **report,
            "critic_precision": float(cast(float, df["answer_correct"].mean())),
            "candidate_accuracy": float(cast(float, candidates["answer_correct"].mean())),
            **{k: dg.MetadataValue.json(v) for k, v in stale.items()},
        }
        return dg.Output(df, metadata=ui_metadata(meta))

    return [test_instructions, training_set]
