"""sft evaluation assets: paired greedy answers of base vs base+adapter (graph-backed: the answering
runs outside the `duckdb` pool, see shared/compute_write.py), and their statistics."""

import dagster as dg
import polars as pl

from proj_assets.sft.budget_guard import guard_step
from proj_assets.sft.evaluation import GATE_JUDGE
from proj_assets.sft.keys import ADAPTER, BASE_MODEL, PAIRED, STATS, TEST_INSTRUCTIONS
from proj_assets.sft.lineage import latest_artifact_path, latest_metadata
from proj_assets.sft.settings import SftSettings
from proj_assets.shared.compute_write import Handoff, compute_op, frame_write_op, save_handoff
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse
from proj_resources.models import ModelSource

TABLE = {"group_name": "sft", "kinds": {"polars", "duckdb"}, "pool": DUCKDB_POOL}


def eval_assets(
    cfg: SftSettings, budget: float | None, device_tags: dict, warehouse: Warehouse
) -> list[dg.AssetsDefinition]:
    """Paired answers of base and adapter on the test set, and their statistics, for `cfg`."""

    @compute_op(
        device_tags,
        name="sft_eval_paired_results_compute",
        ins={"base": dg.In(dg.Nothing), "adapter": dg.In(dg.Nothing)},
    )
    @gated(PAIRED, warehouse)
    def paired_compute(
        context: dg.OpExecutionContext,
        test_instructions: pl.DataFrame,
        base_model: ModelSource,
        compute: Compute,
        provenance: Provenance,
        artifacts: ArtifactStore,
    ) -> Handoff:
        """Both models answer every test item greedily (no pool); judged and flagged."""
        from proj_assets.sft.evaluation import answer_columns
        from proj_assets.sft.generation import generate
        from proj_assets.sft.lora_training import load_adapter_model
        from proj_assets.sft.prompts import STOP_SEQUENCE, PromptBuilder
        from proj_assets.sft.tokenizer import load_sft_tokenizer

        base_path, adapter_path = (
            latest_artifact_path(context, BASE_MODEL),
            latest_artifact_path(context, ADAPTER),
        )
        method = latest_metadata(context, ADAPTER).get("method", "lora")
        builder = PromptBuilder(n_shots=cfg.sft_prompt_shots)
        prompts = [builder.answer_prompt(i) for i in test_instructions["instruction"]]
        refs = test_instructions["reference"].to_list()
        spend = guard_step(context, "evaluation", PAIRED, cfg, budget, compute)
        with compute.meter() as meter:
            tokenizer = load_sft_tokenizer(base_path)
            model = load_adapter_model(base_path, adapter_path, compute.torch_device(), method)
            greedy = {
                "max_new_tokens": cfg.eval_max_new_tokens,
                "stop": [STOP_SEQUENCE],
                "do_sample": False,
            }
            with model.disable_adapter():
                base_out = generate(model, tokenizer, prompts, **greedy, log=context.log.info)
            tuned_out = generate(model, tokenizer, prompts, **greedy, log=context.log.info)
        columns = answer_columns({"base": base_out, "sft": tuned_out}, refs, cfg.qc)
        df = test_instructions.select(
            "item_id", "task_type", "instruction", "reference"
        ).with_columns([pl.Series(name, values) for name, values in columns.items()])
        revision = base_model.resolved_revision(str(base_path))
        df = provenance.stamp(
            df,
            context.run_id,
            None,
            {
                "adapter": adapter_path.name,
                "prompt": builder.template_hash(),
                "greedy": greedy,
                "method": method,
            },
            base_model.path or f"demo:{base_path.name}",
            revision,
        )
        rates = {
            f"{m}_{c}_rate": float(df[f"{m}_{c}"].mean())
            for m in ("base", "sft")
            for c in ("strict", "lenient", "runaway", "token_limit")
        }
        return save_handoff(
            context,
            artifacts,
            df,
            {
                "rows": df.height,
                **rates,
                "gate_judge": GATE_JUDGE,
                "adapter": adapter_path.name,
                "adapter_method": method,
                **meter.metadata(),
                **spend,
            },
        )

    write_paired = frame_write_op("sft_eval_paired_results_write")

    @dg.graph_asset(
        key=PAIRED,
        group_name="sft",
        kinds={"polars", "duckdb"},
        automation_condition=GATED,
        ins={
            "test_instructions": dg.AssetIn(key=TEST_INSTRUCTIONS),
            "base": dg.AssetIn(key=BASE_MODEL, dagster_type=dg.Nothing),
            "adapter": dg.AssetIn(key=ADAPTER, dagster_type=dg.Nothing),
        },
        metadata=table_metadata(PAIRED),
    )
    def paired_results(test_instructions, base, adapter):
        """Greedy answers of base and base+adapter on every test item: strict and lenient judgements, runaway and token-limit flags."""
        return write_paired(paired_compute(test_instructions, base=base, adapter=adapter))

    @dg.asset(
        key=STATS,
        ins={"paired_results": dg.AssetIn(key=PAIRED)},
        automation_condition=GATED,
        metadata=table_metadata(STATS),
        **TABLE,
    )
    @gated(STATS, warehouse)
    def stats(
        context: dg.AssetExecutionContext,
        paired_results: pl.DataFrame,
        compute: Compute,
        provenance: Provenance,
    ) -> dg.Output[pl.DataFrame]:
        """McNemar exact test (strict exact match), Wilson 95% CIs, Cohen's h, BH-corrected per-type p, lenient and QC rates."""
        from proj_assets.sft.evaluation import paired_stats, stage_gate

        with compute.meter() as meter:
            df = paired_stats(paired_results)
        passed, overall = stage_gate(df, cfg.stage_gate_alpha)
        df = provenance.stamp(
            df,
            context.run_id,
            None,
            {
                "alpha": cfg.stage_gate_alpha,
                "judge": GATE_JUDGE,
                "paired_run": paired_results["run_id"][0],
            },
        )
        shown = {
            k: overall[k]
            for k in (
                "base_accuracy",
                "sft_accuracy",
                "mcnemar_p",
                "cohens_h",
                "base_lenient_accuracy",
                "sft_lenient_accuracy",
                "base_runaway_rate",
                "sft_runaway_rate",
            )
        }
        return dg.Output(
            df,
            metadata={
                **shown,
                "gate_judge": GATE_JUDGE,
                "stage_gate_would_pass": passed,
                **meter.metadata(),
            },
        )

    return [paired_results, stats]
