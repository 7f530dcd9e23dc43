"""sft data assets: frozen test set, pilot generations, scale shards, critic scores, training set."""

import json

import dagster as dg
import polars as pl

from proj_assets.shared.conventions import DUCKDB_POOL, GATED, check_key, table_metadata
from proj_assets.partitions import sft_shard_partitions
from proj_assets.shared.gates import require_gates_passed
from proj_assets.sft.data_generation import PILOT_SEED_SLOT
from proj_assets.sft.keys import (BASE_MODEL, CRITIC, PILOT, RUNAWAY_CHECK, SFT_ASSET_KEYS, SHARDS, TEST_INSTRUCTIONS,
                                  TOKEN_LIMIT_CHECK, TRAINING_SET, seed_and_limit_threads, sft_settings)
from proj_assets.sft.lineage import latest_artifact_path, latest_metadata
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


def _generated(context, base_model, compute, provenance, n: int, slot: int, prefix: str, with_critic: bool = False):
    """Sampled examples with QC flags, per-row seeds and provenance (and critic margins for the
    pilot), plus their metadata; refuses clearly when no row is free of QC flags."""
    from proj_assets.sft.critic import auc_by_type, critic_scores
    from proj_assets.sft.data_generation import generate_examples
    from proj_assets.sft.prompts import PromptBuilder
    from proj_assets.sft.qc import clean

    cfg = sft_settings()
    builder = PromptBuilder(n_shots=cfg.prompt_shots, critic_shots=cfg.critic_shots)
    with compute.meter() as meter:
        seed_and_limit_threads(compute, slot)
        cm = _load_model(context, compute)
        df = generate_examples(cm.model, cm.tokenizer, n=n, data_seed=cfg.data_seed, slot=slot, id_prefix=prefix,
                               builder=builder, sampling=cfg.sampling, qc=cfg.qc, log=context.log.info)
        if with_critic:
            scores = critic_scores(cm.model, cm.tokenizer, builder, df["instruction"], df["completion"],
                                   cfg.sampling.batch_size, log=context.log.info)
            df = df.with_columns(pl.Series("critic_margin", scores.margins, dtype=pl.Float64))
    counts = {"generated": df.height, **{f: int(df[f].sum()) for f in ("runaway", "token_limit", "empty")},
              "clean": clean(df).height}
    if counts["clean"] == 0:
        raise dg.Failure(f"{prefix}: every generation is QC-flagged, nothing is usable: {counts}",
                         metadata=counts, allow_retries=False)
    model_id, revision = _model_identity(context, base_model)
    params = {"sampling": cfg.sampling.model_dump(), "qc": cfg.qc.model_dump(), "prompt_template": builder.template_hash(),
              "slot": slot, "data_seed": cfg.data_seed, "n": n, "critic": with_critic}
    df = provenance.stamp(df, context.run_id, None, params, model_id, revision)
    df = df.with_columns(pl.col("row_seed").alias("seed")).drop("row_seed")
    meta = {**counts, "runaway_rate": float(df["runaway"].mean()), "token_limit_rate": float(df["token_limit"].mean()),
            "program_accuracy": float(df["answer_correct"].mean()), "seconds_per_example": meter.seconds / n,
            **meter.metadata(), **provenance.metadata()}
    if with_critic:
        meta.update(critic_position_prior=scores.position_prior, critic_auc=dg.MetadataValue.json(
            auc_by_type(scores.margins, df["answer_correct"].to_list(), df["task_type"].to_list())))
    return df, meta


@dg.asset(key=TEST_INSTRUCTIONS, metadata=table_metadata(TEST_INSTRUCTIONS), **TABLE)
def test_instructions(context: dg.AssetExecutionContext, artifacts: ArtifactStore,
                      provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """Held-out test instructions (5 types x N), frozen on first build with a content hash; never trained on."""
    from proj_assets.sft.dataset import duplicate_instructions
    from proj_assets.sft.tasks import TASK_TYPES, make_instructions

    cfg = sft_settings()
    spec = {"per_type": cfg.test_per_type, "seed": cfg.test_seed, "types": TASK_TYPES}
    frozen = artifacts.path("sft_test_set", f"{canonical_hash(spec)}.json")
    fresh = [vars(i) for i in make_instructions(cfg.test_per_type * len(TASK_TYPES), cfg.test_seed)]
    rows = json.loads(frozen.read_text()) if frozen.exists() else fresh
    repeated = duplicate_instructions([r["instruction"] for r in rows])
    if repeated:  # a repeated item would be counted twice by the paired test
        raise dg.Failure(f"test set {frozen if frozen.exists() else spec} repeats {len(repeated)} instruction(s), "
                         f"e.g. {repeated[:3]}: every held-out item must be unique", allow_retries=False)
    if not frozen.exists():
        artifacts.write_bytes(str(frozen.relative_to(artifacts.path())), json.dumps(fresh).encode())
    df = pl.DataFrame(rows).with_row_index("item_id").with_columns(pl.col("item_id").cast(pl.Int64))
    content_hash = canonical_hash(rows)
    df = provenance.stamp(df.with_columns(pl.lit(content_hash).alias("content_hash")), context.run_id,
                          cfg.test_seed, spec)
    return dg.Output(df, metadata={"rows": df.height, "content_hash": content_hash, "frozen_file": str(frozen),
                                   "generator_matches_frozen": canonical_hash(fresh) == content_hash})


@dg.asset(key=PILOT, deps=[BASE_MODEL], metadata=table_metadata(PILOT), **TABLE)
def pilot_generations(context: dg.AssetExecutionContext, base_model: ModelSource, compute: Compute,
                      provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """A small pilot of base-model completions, with critic margins: its QC gates must pass before
    generation scales up, and its program-verified labels choose the critic threshold."""
    from proj_assets.sft.critic import choose_threshold

    cfg = sft_settings()
    df, meta = _generated(context, base_model, compute, provenance, cfg.pilot_size, PILOT_SEED_SLOT, "pilot",
                          with_critic=True)
    threshold = choose_threshold(df["critic_margin"].to_list(), df["answer_correct"].to_list())
    return dg.Output(df, metadata={**meta, "critic_threshold_chosen": threshold})


def _within_budget(context, compute: Compute, examples: int) -> dict:
    """Project the step's cost from the pilot's measured seconds per example; refuse (clear error
    with the numbers) when it exceeds the sft budget left, unless the run carries an override tag."""
    from proj_assets.profiles import load_profile
    from proj_assets.sft.budget_guard import (OVERRIDE_TAG, BudgetExceededError, domain_spent, projected_cost,
                                              refuse_over_budget)

    per_example = latest_metadata(context, PILOT).get("seconds_per_example")
    if per_example is None:
        raise dg.Failure("sft/data/pilot_generations has no measured seconds_per_example: re-materialize the pilot")
    rate = compute.cost_per_hour.get(compute.torch_device(), 0.0)
    override = context.run.tags.get(OVERRIDE_TAG)
    try:
        numbers = refuse_over_budget(f"{'/'.join(SHARDS)} {context.partition_key}",
                                     projected_cost(per_example, examples, rate),
                                     domain_spent(context.instance, SFT_ASSET_KEYS, compute.cost_per_hour),
                                     load_profile().platform.budgets.get("sft"), override)
    except BudgetExceededError as error:
        raise dg.Failure(str(error), allow_retries=False) from error
    if override:
        context.log.warning(f"budget projection overridden: {override!r} ({numbers})")
    return {k: v for k, v in numbers.items() if v is not None}


@dg.asset(key=SHARDS, deps=[PILOT], partitions_def=sft_shard_partitions, automation_condition=GATED,
          metadata=table_metadata(SHARDS, partition_expr="shard"), **TABLE)
def scale_shards(context: dg.AssetExecutionContext, base_model: ModelSource, compute: Compute,
                 provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """Scaled-up generated examples, one shard per partition; refuses while the pilot's gates fail or over budget."""
    require_gates_passed(context, [check_key(PILOT, RUNAWAY_CHECK), check_key(PILOT, TOKEN_LIMIT_CHECK)])
    cfg = sft_settings()
    budget = _within_budget(context, compute, cfg.examples_per_shard)
    shard = context.partition_key
    slot = PILOT_SEED_SLOT + 1 + sft_shard_partitions.get_partition_keys().index(shard)
    df, meta = _generated(context, base_model, compute, provenance, cfg.examples_per_shard, slot, shard)
    return dg.Output(df.with_columns(pl.lit(shard).alias("shard")), metadata={**meta, **budget})


@dg.asset(key=CRITIC, deps=[BASE_MODEL], partitions_def=sft_shard_partitions, automation_condition=GATED,
          ins={"scale_shards": dg.AssetIn(key=SHARDS), "pilot_generations": dg.AssetIn(key=PILOT)},
          metadata=table_metadata(CRITIC, partition_expr="shard"), **TABLE)
def critic_scores(context: dg.AssetExecutionContext, scale_shards: pl.DataFrame, pilot_generations: pl.DataFrame,
                  base_model: ModelSource, compute: Compute, provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """Order-debiased A/B critic margin per shard example, kept when above the threshold chosen on the pilot."""
    from proj_assets.sft.critic import auc_by_type, choose_threshold, critic_scores as score
    from proj_assets.sft.prompts import PromptBuilder

    shard = context.partition_key
    require_gates_passed(context, [check_key(SHARDS, RUNAWAY_CHECK), check_key(SHARDS, TOKEN_LIMIT_CHECK)], [shard])
    cfg = sft_settings()
    chosen = choose_threshold(pilot_generations["critic_margin"].to_list(), pilot_generations["answer_correct"].to_list())
    threshold, source = (chosen, "pilot (Youden's J)") if chosen is not None else (
        cfg.critic_margin_threshold, "profile (the pilot's labels hold one class)")
    builder = PromptBuilder(critic_shots=cfg.critic_shots)
    with compute.meter() as meter:
        cm = _load_model(context, compute)
        scores = score(cm.model, cm.tokenizer, builder, scale_shards["instruction"], scale_shards["completion"],
                       cfg.sampling.batch_size, log=context.log.info)
    df = scale_shards.select("example_id", "shard", "task_type", "answer_correct").with_columns(
        pl.Series("critic_margin", scores.margins, dtype=pl.Float64), pl.lit(threshold).alias("critic_threshold"))
    df = df.with_columns((pl.col("critic_margin") >= pl.col("critic_threshold")).alias("critic_keep"))
    model_id, revision = _model_identity(context, base_model)
    df = provenance.stamp(df, context.run_id, None, {"critic": builder.template_hash(), "threshold": threshold},
                          model_id, revision)
    auc = auc_by_type(scores.margins, df["answer_correct"].to_list(), df["task_type"].to_list())
    return dg.Output(df, metadata={"rows": df.height, "keep_rate": float(df["critic_keep"].mean()),
                                   "threshold": threshold, "threshold_source": source,
                                   "critic_auc": dg.MetadataValue.json(auc), "critic_auc_overall": auc["overall"],
                                   "critic_position_prior": scores.position_prior, **meter.metadata()})


@dg.asset(key=TRAINING_SET, automation_condition=GATED, metadata=table_metadata(TRAINING_SET),
          ins={"scale_shards": dg.AssetIn(key=SHARDS), "critic_scores": dg.AssetIn(key=CRITIC),
               "test_instructions": dg.AssetIn(key=TEST_INSTRUCTIONS)}, **TABLE)
def training_set(context: dg.AssetExecutionContext, scale_shards: pl.DataFrame, critic_scores: pl.DataFrame,
                 test_instructions: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """Shard examples kept by QC and the critic, deduplicated and decontaminated against the test set."""
    from proj_assets.sft.dataset import TooFewRowsError, build_training_set

    require_gates_passed(context, [check_key(SHARDS, RUNAWAY_CHECK), check_key(SHARDS, TOKEN_LIMIT_CHECK)],
                         sft_shard_partitions.get_partition_keys())
    cfg = sft_settings()
    critic = critic_scores.select("example_id", "critic_margin", "critic_threshold", "critic_keep")
    candidates = scale_shards.join(critic, on="example_id", how="inner")
    try:
        df, report = build_training_set(candidates, test_instructions["instruction"].to_list(),
                                        cfg.decontamination_ngram, cfg.min_training_rows)
    except TooFewRowsError as error:
        raise dg.Failure(str(error), metadata=error.report, allow_retries=False) from error
    meta = {**report, "critic_precision": float(df["answer_correct"].mean()),
            "candidate_accuracy": float(candidates["answer_correct"].mean())}
    return dg.Output(df, metadata=meta)
