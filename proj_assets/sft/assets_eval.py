"""sft evaluation assets: paired greedy answers of base vs base+adapter, and their statistics."""

import dagster as dg
import polars as pl

from proj_assets.shared.conventions import DUCKDB_POOL, GATED, check_key, table_metadata
from proj_assets.shared.gates import require_gates_passed
from proj_assets.sft.keys import ADAPTER, BASE_MODEL, PAIRED, STATS, TEST_INSTRUCTIONS, sft_settings
from proj_assets.sft.lineage import latest_artifact_path
from proj_resources import Compute, Provenance
from proj_resources.models import ModelSource

TABLE = {"group_name": "sft", "kinds": {"polars", "duckdb"}, "pool": DUCKDB_POOL}


@dg.asset(key=PAIRED, deps=[BASE_MODEL, ADAPTER], ins={"test_instructions": dg.AssetIn(key=TEST_INSTRUCTIONS)},
          automation_condition=GATED, metadata=table_metadata(PAIRED), **TABLE)
def paired_results(context: dg.AssetExecutionContext, test_instructions: pl.DataFrame, base_model: ModelSource,
                   compute: Compute, provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """Greedy answers of base and base+adapter on every test item, each judged correct by program (or critic)."""
    from proj_assets.sft.evaluation import judge
    from proj_assets.sft.generation import generate
    from proj_assets.sft.lora_training import load_adapter_model
    from proj_assets.sft.prompts import STOP_SEQUENCE, PromptBuilder
    from proj_resources.models import load_tokenizer

    require_gates_passed(context, [check_key(ADAPTER, "prompt_tokens_masked")])
    cfg = sft_settings()
    base_path, adapter_path = latest_artifact_path(context, BASE_MODEL), latest_artifact_path(context, ADAPTER)
    builder = PromptBuilder(n_shots=cfg.sft_prompt_shots)
    prompts = [builder.answer_prompt(i) for i in test_instructions["instruction"]]
    refs = test_instructions["reference"].to_list()
    with compute.meter() as meter:
        tokenizer = load_tokenizer(base_path)
        model = load_adapter_model(base_path, adapter_path, compute.torch_device())
        greedy = {"max_new_tokens": cfg.eval_max_new_tokens, "stop": [STOP_SEQUENCE], "do_sample": False}
        with model.disable_adapter():
            base_out = generate(model, tokenizer, prompts, **greedy, log=context.log.info)
        tuned_out = generate(model, tokenizer, prompts, **greedy, log=context.log.info)
    base_ok, judged_by = judge([o.completion for o in base_out], refs)
    tuned_ok, _ = judge([o.completion for o in tuned_out], refs)
    df = test_instructions.select("item_id", "task_type", "instruction", "reference").with_columns(
        pl.Series("base_answer", [o.completion for o in base_out]), pl.Series("sft_answer", [o.completion for o in tuned_out]),
        pl.Series("base_correct", base_ok), pl.Series("sft_correct", tuned_ok), pl.Series("judged_by", judged_by))
    revision = base_model.resolved_revision(str(base_path))
    df = provenance.stamp(df, context.run_id, None, {"adapter": adapter_path.name, "prompt": builder.template_hash()},
                          base_model.path or f"demo:{base_path.name}", revision)
    return dg.Output(df, metadata={"rows": df.height, "base_accuracy": float(df["base_correct"].mean()),
                                   "sft_accuracy": float(df["sft_correct"].mean()), "adapter": adapter_path.name,
                                   **meter.metadata()})


@dg.asset(key=STATS, ins={"paired_results": dg.AssetIn(key=PAIRED)}, automation_condition=GATED,
          metadata=table_metadata(STATS), **TABLE)
def stats(context: dg.AssetExecutionContext, paired_results: pl.DataFrame, compute: Compute) -> dg.Output[pl.DataFrame]:
    """McNemar exact test, Wilson 95% CIs, Cohen's h and BH-corrected per-type p-values of the paired table."""
    from proj_assets.sft.evaluation import paired_stats, stage_gate

    with compute.meter() as meter:
        df = paired_stats(paired_results)
    passed, overall = stage_gate(df, sft_settings().stage_gate_alpha)
    shown = {k: overall[k] for k in ("base_accuracy", "sft_accuracy", "mcnemar_p", "cohens_h")}
    return dg.Output(df, metadata={**shown, "stage_gate_would_pass": passed, **meter.metadata()})
