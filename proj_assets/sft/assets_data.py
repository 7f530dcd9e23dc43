"""sft data assets: frozen test set, pilot generations, scale shards, critic scores, training set."""

import json

import dagster as dg
import polars as pl

from proj_assets.shared.conventions import DUCKDB_POOL, GATED, check_key, table_metadata
from proj_assets.partitions import sft_shard_partitions
from proj_assets.shared.gates import require_gates_passed
from proj_assets.sft.data_generation import PILOT_SEED_SLOT
from proj_assets.sft.keys import (BASE_MODEL, CRITIC, PILOT, RUNAWAY_CHECK, SHARDS, TEST_INSTRUCTIONS,
                                  TOKEN_LIMIT_CHECK, TRAINING_SET, seed_and_limit_threads, sft_settings)
from proj_assets.sft.lineage import latest_artifact_path
from proj_resources import ArtifactStore, Compute, Provenance
from proj_resources.hashing import canonical_hash
from proj_resources.models import ModelSource

TABLE = {"group_name": "sft", "kinds": {"polars", "duckdb"}, "pool": DUCKDB_POOL}


def _load_model(context, compute: Compute):
    from proj_assets.sft.completion_model import load_completion_model

    require_gates_passed(context, [check_key(BASE_MODEL, "completion_mode_only")])
    return load_completion_model(latest_artifact_path(context, BASE_MODEL), compute.torch_device())


def _model_identity(context, base_model: ModelSource) -> tuple[str, str]:
    path = latest_artifact_path(context, BASE_MODEL)
    return base_model.path or f"demo:{path.name}", base_model.resolved_revision(str(path))


def _generated(context, base_model, compute, provenance, n: int, slot: int, prefix: str):
    from proj_assets.sft.data_generation import generate_examples
    from proj_assets.sft.prompts import PromptBuilder

    cfg = sft_settings()
    builder = PromptBuilder(n_shots=cfg.prompt_shots)
    with compute.meter() as meter:
        seed = seed_and_limit_threads(compute, slot)
        cm = _load_model(context, compute)
        df = generate_examples(cm.model, cm.tokenizer, n=n, data_seed=cfg.data_seed, slot=slot, id_prefix=prefix,
                               builder=builder, sampling=cfg.sampling, qc=cfg.qc, log=context.log.info)
    model_id, revision = _model_identity(context, base_model)
    params = {"sampling": cfg.sampling.model_dump(), "prompt_template": builder.template_hash(), "slot": slot}
    df = provenance.stamp(df, context.run_id, seed, params, model_id, revision)
    return df, {"rows": df.height, "runaway_rate": float(df["runaway"].mean()),
                "token_limit_rate": float(df["token_limit"].mean()),
                "program_accuracy": float(df["answer_correct"].mean()), **meter.metadata()}


@dg.asset(key=TEST_INSTRUCTIONS, metadata=table_metadata(TEST_INSTRUCTIONS), **TABLE)
def test_instructions(context: dg.AssetExecutionContext, artifacts: ArtifactStore,
                      provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """Held-out test instructions (5 types x N), frozen on first build with a content hash; never trained on."""
    from proj_assets.sft.tasks import TASK_TYPES, make_instructions

    cfg = sft_settings()
    spec = {"per_type": cfg.test_per_type, "seed": cfg.test_seed, "types": TASK_TYPES}
    frozen = artifacts.path("sft_test_set", f"{canonical_hash(spec)}.json")
    fresh = [vars(i) for i in make_instructions(cfg.test_per_type * len(TASK_TYPES), cfg.test_seed)]
    if not frozen.exists():
        artifacts.write_bytes(str(frozen.relative_to(artifacts.path())), json.dumps(fresh).encode())
    rows = json.loads(frozen.read_text())
    df = pl.DataFrame(rows).with_row_index("item_id").with_columns(pl.col("item_id").cast(pl.Int64))
    content_hash = canonical_hash(rows)
    df = provenance.stamp(df.with_columns(pl.lit(content_hash).alias("content_hash")), context.run_id,
                          cfg.test_seed, spec)
    return dg.Output(df, metadata={"rows": df.height, "content_hash": content_hash, "frozen_file": str(frozen),
                                   "generator_matches_frozen": canonical_hash(fresh) == content_hash})


@dg.asset(key=PILOT, deps=[BASE_MODEL], metadata=table_metadata(PILOT), **TABLE)
def pilot_generations(context: dg.AssetExecutionContext, base_model: ModelSource, compute: Compute,
                      provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """A small pilot of base-model completions whose QC gates must pass before generation scales up."""
    cfg = sft_settings()
    df, meta = _generated(context, base_model, compute, provenance, cfg.pilot_size, PILOT_SEED_SLOT, "pilot")
    return dg.Output(df, metadata=meta)


@dg.asset(key=SHARDS, deps=[PILOT], partitions_def=sft_shard_partitions, automation_condition=GATED,
          metadata=table_metadata(SHARDS, partition_expr="shard"), **TABLE)
def scale_shards(context: dg.AssetExecutionContext, base_model: ModelSource, compute: Compute,
                 provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """Scaled-up generated examples, one shard per partition; refuses to run while the pilot's gates fail."""
    require_gates_passed(context, [check_key(PILOT, RUNAWAY_CHECK), check_key(PILOT, TOKEN_LIMIT_CHECK)])
    cfg = sft_settings()
    shard = context.partition_key
    slot = PILOT_SEED_SLOT + 1 + sft_shard_partitions.get_partition_keys().index(shard)
    df, meta = _generated(context, base_model, compute, provenance, cfg.examples_per_shard, slot, shard)
    return dg.Output(df.with_columns(pl.lit(shard).alias("shard")), metadata=meta)


@dg.asset(key=CRITIC, deps=[BASE_MODEL], partitions_def=sft_shard_partitions, automation_condition=GATED,
          ins={"scale_shards": dg.AssetIn(key=SHARDS)}, metadata=table_metadata(CRITIC, partition_expr="shard"),
          **TABLE)
def critic_scores(context: dg.AssetExecutionContext, scale_shards: pl.DataFrame, base_model: ModelSource,
                  compute: Compute, provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """Single-token A/B log-prob critic margin per shard example, with the threshold used."""
    from proj_assets.sft.critic import critic_margins
    from proj_assets.sft.prompts import PromptBuilder

    shard = context.partition_key
    require_gates_passed(context, [check_key(SHARDS, RUNAWAY_CHECK), check_key(SHARDS, TOKEN_LIMIT_CHECK)], [shard])
    cfg = sft_settings()
    builder = PromptBuilder(critic_shots=cfg.critic_shots)
    with compute.meter() as meter:
        cm = _load_model(context, compute)
        prompts = [builder.critic_prompt(i, c) for i, c in zip(scale_shards["instruction"], scale_shards["completion"])]
        margins = critic_margins(cm.model, cm.tokenizer, prompts, cfg.sampling.batch_size, log=context.log.info)
    df = scale_shards.select("example_id", "shard").with_columns(
        pl.Series("critic_margin", margins, dtype=pl.Float64),
        pl.lit(cfg.critic_margin_threshold).alias("critic_threshold"))
    df = df.with_columns((pl.col("critic_margin") > pl.col("critic_threshold")).alias("critic_keep"))
    model_id, revision = _model_identity(context, base_model)
    df = provenance.stamp(df, context.run_id, None, {"critic": builder.template_hash()}, model_id, revision)
    return dg.Output(df, metadata={"rows": df.height, "keep_rate": float(df["critic_keep"].mean()),
                                   "threshold": cfg.critic_margin_threshold, **meter.metadata()})


@dg.asset(key=TRAINING_SET, automation_condition=GATED, metadata=table_metadata(TRAINING_SET),
          ins={"scale_shards": dg.AssetIn(key=SHARDS), "critic_scores": dg.AssetIn(key=CRITIC),
               "test_instructions": dg.AssetIn(key=TEST_INSTRUCTIONS)}, **TABLE)
def training_set(context: dg.AssetExecutionContext, scale_shards: pl.DataFrame, critic_scores: pl.DataFrame,
                 test_instructions: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """Shard examples kept by QC and the critic, deduplicated and decontaminated against the test set."""
    from proj_assets.sft.dataset import build_training_set

    require_gates_passed(context, [check_key(SHARDS, RUNAWAY_CHECK), check_key(SHARDS, TOKEN_LIMIT_CHECK)],
                         sft_shard_partitions.get_partition_keys())
    cfg = sft_settings()
    critic = critic_scores.select("example_id", "critic_margin", "critic_threshold", "critic_keep")
    candidates = scale_shards.join(critic, on="example_id", how="inner")
    df, report = build_training_set(candidates, test_instructions["instruction"].to_list(), cfg.decontamination_ngram)
    meta = {**report, "critic_precision": float(df["answer_correct"].mean()) if df.height else 0.0,
            "candidate_accuracy": float(candidates["answer_correct"].mean()) if candidates.height else 0.0}
    return dg.Output(df, metadata=meta)
