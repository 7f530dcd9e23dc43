"""sft generation assets: scale shards and their critic scores.

Each is graph-backed (shared/compute_write.py): the long part (loading the model, sampling,
scoring) runs in a compute op that holds no pool and hands a Parquet file to a short write op in
the `duckdb` pool, so generating a shard never blocks other domains' warehouse writes. Keys,
partitions, checks and metadata are those of a plain asset. What they share with the pilot is in
assets_sampling.py.
"""

import dagster as dg
import polars as pl

from proj_assets.sft.assets_sampling import (
    AFTER,
    GRAPH,
    depends_on,
    load_model,
    model_identity,
    sampled_rows,
    selected_pilot_rows,
)
from proj_assets.sft.budget_guard import guard_step
from proj_assets.sft.data_generation import PILOT_SEED_SLOT
from proj_assets.sft.input_versions import critic_inputs, data_code_version
from proj_assets.sft.iterations import selected_iteration
from proj_assets.sft.keys import BASE_MODEL, CRITIC, PILOT, SHARDS
from proj_assets.sft.settings import SftSettings
from proj_assets.shared.compute_write import Handoff, compute_op, frame_write_op, save_handoff
from proj_assets.shared.conventions import GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse
from proj_resources.models import ModelSource


def generation_assets(
    cfg: SftSettings,
    shards: dg.PartitionsDefinition,
    budget: float | None,
    device_tags: dict,
    warehouse: Warehouse,
) -> list[dg.AssetsDefinition]:
    """Scale shards and their critic scores for `cfg`: one `shards` partition each, generated on
    the Celery queue of `device_tags` while the projection stays within the sft `budget`, past the
    gates of the selected pilot iteration."""

    def selected(_context) -> list[str]:
        return [selected_iteration(cfg)]

    code_version = data_code_version()

    @compute_op(
        device_tags, name="sft_data_scale_shards_compute", ins={"base": AFTER, "pilot": AFTER}
    )
    @gated(SHARDS, warehouse, {tuple(PILOT): selected})
    def shards_compute(
        context: dg.OpExecutionContext,
        base_model: ModelSource,
        compute: Compute,
        provenance: Provenance,
        artifacts: ArtifactStore,
    ) -> Handoff:
        """Generate one shard (no pool) with the selected pilot iteration's settings, after that
        iteration's gates and the budget projection allow it."""
        spend = guard_step(context, "shards", SHARDS, cfg, budget, compute)
        shard = context.partition_key
        slot = PILOT_SEED_SLOT + 1 + shards.get_partition_keys().index(shard)
        df, meta = sampled_rows(
            context,
            cfg,
            base_model,
            compute,
            provenance,
            cfg.examples_per_shard,
            slot,
            shard,
            cfg.sampling,
        )
        meta["pilot_iteration"] = selected_iteration(cfg)
        return save_handoff(
            context, artifacts, df.with_columns(pl.lit(shard).alias("shard")), {**meta, **spend}
        )

    write_shard = frame_write_op("sft_data_scale_shards_write")

    @dg.graph_asset(
        key=SHARDS,
        ins={"base": depends_on(BASE_MODEL), "pilot": depends_on(PILOT)},
        partitions_def=shards,
        automation_condition=GATED,
        metadata=table_metadata(SHARDS, partition_expr="shard"),
        code_version=code_version,
        **GRAPH,
    )
    def scale_shards(base, pilot):
        """Scaled-up generated examples, one shard per partition; refuses while the pilot's gates fail or over budget."""
        return write_shard(shards_compute(base=base, pilot=pilot))

    @compute_op(
        device_tags, name="sft_data_critic_scores_compute", ins={"base": AFTER, "pilot": AFTER}
    )
    @gated(CRITIC, warehouse, {tuple(PILOT): selected})
    def critic_compute(
        context: dg.OpExecutionContext,
        scale_shards: pl.DataFrame,
        base_model: ModelSource,
        compute: Compute,
        provenance: Provenance,
        artifacts: ArtifactStore,
        warehouse: Warehouse,
    ) -> Handoff:
        """Score one shard with the critic (no pool), with the threshold chosen on the selected
        pilot iteration; the keep flag applies only when the pilot shows the critic ranks answers
        within their type better than chance (critic_calibration.py), or the profile forces it."""
        from proj_assets.sft.critic import auc_by_type, choose_threshold
        from proj_assets.sft.critic import critic_scores as score
        from proj_assets.sft.critic_calibration import filter_decision, within_type_interval
        from proj_assets.sft.prompts import PromptBuilder

        pilot = selected_pilot_rows(context, warehouse, cfg)
        margins, labels = pilot["critic_margin"].to_list(), pilot["answer_correct"].to_list()
        chosen = choose_threshold(margins, labels)
        interval = within_type_interval(
            margins, labels, pilot["task_type"].to_list(), cfg.critic_auc_confidence
        )
        decision = filter_decision(interval, cfg.critic_force_filter)
        context.log.info(decision.reason)
        threshold, source = (
            (chosen, "pilot (Youden's J)")
            if chosen is not None
            else (cfg.critic_margin_threshold, "profile (the pilot's labels hold one class)")
        )
        builder = PromptBuilder(critic_shots=cfg.critic_shots)
        spend = guard_step(context, "critic", CRITIC, cfg, budget, compute)
        with compute.meter() as meter:
            cm = load_model(context, compute)
            scores = score(
                cm.model,
                cm.tokenizer,
                builder,
                scale_shards["instruction"],
                scale_shards["completion"],
                cfg.sampling.batch_size,
                log=context.log.info,
            )
        df = scale_shards.select("example_id", "shard", "task_type", "answer_correct").with_columns(
            pl.Series("critic_margin", scores.margins, dtype=pl.Float64),
            pl.lit(threshold).alias("critic_threshold"),
        )
        df = df.with_columns(
            (
                (pl.col("critic_margin") >= pl.col("critic_threshold"))
                | pl.lit(not decision.filtering)
            ).alias("critic_keep"),
            pl.lit(decision.filtering).alias("critic_filtering"),
            pl.lit(decision.reason).alias("critic_filter_reason"),
        )
        model_id, revision = model_identity(context, base_model)
        df = provenance.stamp(
            df,
            context.run_id,
            None,
            {"critic": builder.template_hash(), "threshold": threshold},
            model_id,
            revision,
            inputs=critic_inputs(cfg, revision, selected_iteration(cfg)),
        )
        auc = auc_by_type(scores.margins, df["answer_correct"].to_list(), df["task_type"].to_list())
        return save_handoff(
            context,
            artifacts,
            df,
            {
                "rows": df.height,
                "keep_rate": float(df["critic_keep"].mean()),
                "threshold": threshold,
                "threshold_source": source,
                "critic_filtering": decision.filtering,
                "critic_filter_reason": decision.reason,
                "critic_auc": dg.MetadataValue.json(auc),
                "critic_auc_overall": auc["overall"],
                "critic_position_prior": scores.position_prior,
                **meter.metadata(),
                **spend,
            },
        )

    write_critic = frame_write_op("sft_data_critic_scores_write")

    @dg.graph_asset(
        key=CRITIC,
        ins={
            "scale_shards": dg.AssetIn(key=SHARDS),
            "base": depends_on(BASE_MODEL),
            "pilot": depends_on(PILOT),
        },
        partitions_def=shards,
        automation_condition=GATED,
        metadata=table_metadata(CRITIC, partition_expr="shard"),
        code_version=code_version,
        **GRAPH,
    )
    def critic_scores(scale_shards, base, pilot):
        """Order-debiased A/B critic margin per shard example, kept when above the threshold chosen on the pilot."""
        return write_critic(critic_compute(scale_shards, base=base, pilot=pilot))

    return [scale_shards, critic_scores]
