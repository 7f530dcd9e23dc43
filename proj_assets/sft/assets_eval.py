"""sft evaluation assets: paired greedy answers of base vs base+adapter, and their statistics."""

import dagster as dg
import polars as pl

from proj_assets.shared.conventions import DUCKDB_POOL, GATED, check_key, table_metadata
from proj_assets.shared.gates import require_gates_passed
from proj_assets.sft.evaluation import GATE_JUDGE
from proj_assets.sft.keys import ADAPTER, BASE_MODEL, PAIRED, STATS, TEST_INSTRUCTIONS, sft_settings
from proj_assets.sft.lineage import latest_artifact_path, latest_metadata
from proj_resources import Compute, Provenance
from proj_resources.models import ModelSource

TABLE = {"group_name": "sft", "kinds": {"polars", "duckdb"}, "pool": DUCKDB_POOL}


@dg.asset(key=PAIRED, deps=[BASE_MODEL, ADAPTER], ins={"test_instructions": dg.AssetIn(key=TEST_INSTRUCTIONS)},
          automation_condition=GATED, metadata=table_metadata(PAIRED), **TABLE)
def paired_results(context: dg.AssetExecutionContext, test_instructions: pl.DataFrame, base_model: ModelSource,
                   compute: Compute, provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """Greedy answers of base and base+adapter on every test item: strict and lenient judgements, runaway and token-limit flags."""
    from proj_assets.sft.evaluation import answer_columns
    from proj_assets.sft.generation import generate
    import torch

    from proj_assets.sft.lora_training import bitsandbytes_available, choose_method, load_adapter_model
    from proj_assets.sft.prompts import STOP_SEQUENCE, PromptBuilder
    from proj_assets.sft.tokenizer import load_sft_tokenizer

    require_gates_passed(context, [check_key(ADAPTER, "prompt_tokens_masked")])
    cfg = sft_settings()
    base_path, adapter_path = latest_artifact_path(context, BASE_MODEL), latest_artifact_path(context, ADAPTER)
    method = latest_metadata(context, ADAPTER).get("method", "lora")
    builder = PromptBuilder(n_shots=cfg.sft_prompt_shots)
    prompts = [builder.answer_prompt(i) for i in test_instructions["instruction"]]
    refs = test_instructions["reference"].to_list()
    with compute.meter() as meter:
        if method == "qlora":  # evaluated on the same 4-bit base it was trained on: a clear error without CUDA
            choose_method("qlora", torch.cuda.is_available(), bitsandbytes_available())
        tokenizer = load_sft_tokenizer(base_path)
        model = load_adapter_model(base_path, adapter_path, compute.torch_device(), method)
        greedy = {"max_new_tokens": cfg.eval_max_new_tokens, "stop": [STOP_SEQUENCE], "do_sample": False}
        with model.disable_adapter():
            base_out = generate(model, tokenizer, prompts, **greedy, log=context.log.info)
        tuned_out = generate(model, tokenizer, prompts, **greedy, log=context.log.info)
    columns = answer_columns({"base": base_out, "sft": tuned_out}, refs, cfg.qc)
    df = test_instructions.select("item_id", "task_type", "instruction", "reference").with_columns(
        [pl.Series(name, values) for name, values in columns.items()])
    revision = base_model.resolved_revision(str(base_path))
    df = provenance.stamp(df, context.run_id, None, {"adapter": adapter_path.name, "prompt": builder.template_hash(),
                                                     "greedy": greedy, "method": method},
                          base_model.path or f"demo:{base_path.name}", revision)
    rates = {f"{m}_{c}_rate": float(df[f"{m}_{c}"].mean()) for m in ("base", "sft")
             for c in ("strict", "lenient", "runaway", "token_limit")}
    return dg.Output(df, metadata={"rows": df.height, **rates, "gate_judge": GATE_JUDGE, "adapter": adapter_path.name,
                                   "adapter_method": method, **meter.metadata()})


@dg.asset(key=STATS, ins={"paired_results": dg.AssetIn(key=PAIRED)}, automation_condition=GATED,
          metadata=table_metadata(STATS), **TABLE)
def stats(context: dg.AssetExecutionContext, paired_results: pl.DataFrame, compute: Compute,
          provenance: Provenance) -> dg.Output[pl.DataFrame]:
    """McNemar exact test (strict exact match), Wilson 95% CIs, Cohen's h, BH-corrected per-type p, lenient and QC rates."""
    from proj_assets.sft.evaluation import paired_stats, stage_gate

    cfg = sft_settings()
    with compute.meter() as meter:
        df = paired_stats(paired_results)
    passed, overall = stage_gate(df, cfg.stage_gate_alpha)
    df = provenance.stamp(df, context.run_id, None, {"alpha": cfg.stage_gate_alpha, "judge": GATE_JUDGE,
                                                     "paired_run": paired_results["run_id"][0]})
    shown = {k: overall[k] for k in ("base_accuracy", "sft_accuracy", "mcnemar_p", "cohens_h", "base_lenient_accuracy",
                                     "sft_lenient_accuracy", "base_runaway_rate", "sft_runaway_rate")}
    return dg.Output(df, metadata={**shown, "gate_judge": GATE_JUDGE, "stage_gate_would_pass": passed,
                                   **meter.metadata()})
