"""sft evaluation assets: paired greedy answers of three arms on the test set (graph-backed: the
answering runs outside the `duckdb` pool, see shared/compute_write.py), and their statistics.

Arms (evaluation.py): `base` (zero-shot by default), `few_shot` (the base on the generation
prompt) and `sft` (base + adapter). Rows carry the input versions they were computed from
(`lineage.eval_inputs`); `stats` and the checks read only the rows of the versions current now."""

from contextlib import nullcontext

import dagster as dg
import polars as pl

from proj_assets.sft.assets_sampling import TableArgs
from proj_assets.sft.budget_guard import guard_step
from proj_assets.sft.evaluation import ARMS, EVAL_CODE_VERSION, GATE_JUDGE, OVERALL
from proj_assets.sft.keys import ADAPTER, BASE_MODEL, PAIRED, STATS, TEST_INSTRUCTIONS
from proj_assets.sft.lineage import eval_inputs
from proj_assets.sft.settings import SftSettings
from proj_assets.shared.compute_write import Handoff, compute_op, frame_write_op, save_handoff
from proj_assets.shared.conventions import DUCKDB_POOL, GATED, table_metadata
from proj_assets.shared.gates import gated
from proj_assets.shared.metadata import ui_metadata
from proj_resources import ArtifactStore, Compute, Provenance, Warehouse
from proj_resources.fingerprints import current_rows, staleness, table_version
from proj_resources.models import ModelSource

TABLE: TableArgs = {"group_name": "sft", "kinds": {"polars", "duckdb"}, "pool": DUCKDB_POOL}
ANSWER_KINDS = ("answer", "strict", "lenient", "correct", "runaway", "token_limit")


def current_eval_rows(df: pl.DataFrame, versions: dict[str, str], table: str) -> pl.DataFrame:
    """The rows of `df` computed from `versions`; a failure naming the inputs that changed when
    there are none (the table must be re-materialized first)."""
    rows = current_rows(df, versions)
    if rows.height == 0:
        state = staleness(df, versions)
        raise dg.Failure(
            f"{table} holds no rows of the current inputs ({state['superseded_rows']} rows of "
            f"older ones; changed: {', '.join(state['changed_inputs'])}): re-materialize it",
            metadata={"changed_inputs": state["changed_inputs"]},
        )
    return rows


def eval_assets(
    cfg: SftSettings, budget: float | None, device_tags: dict, warehouse: Warehouse
) -> list[dg.AssetsDefinition]:
    """Paired answers of the three arms on the test set, and their statistics, for `cfg`."""

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
        """Each arm answers every test item greedily (no pool); judged and flagged."""
        from proj_assets.sft.evaluation import answer_columns, greedy_settings, prompt_builders
        from proj_assets.sft.generation import generate
        from proj_assets.sft.lora_training import load_adapter_model
        from proj_assets.sft.tokenizer import load_sft_tokenizer

        inputs = eval_inputs(context, cfg)
        if test_instructions["content_hash"][0] != inputs.versions["test_set"]:
            raise dg.Failure(
                f"{'/'.join(TEST_INSTRUCTIONS)}: the rows loaded (content_hash "
                f"{test_instructions['content_hash'][0]}) are not its latest materialization's "
                f"({inputs.versions['test_set']}): re-materialize it"
            )
        builders, greedy = prompt_builders(cfg), greedy_settings(cfg)
        prompts = {
            arm: [b.answer_prompt(i) for i in test_instructions["instruction"]]
            for arm, b in builders.items()
        }
        spend = guard_step(context, "evaluation", PAIRED, cfg, budget, compute)
        outputs = {}
        with compute.meter() as meter:
            tokenizer = load_sft_tokenizer(inputs.base_path)
            model = load_adapter_model(
                inputs.base_path, inputs.adapter_path, compute.torch_device(), inputs.method
            )
            for arm in ARMS:  # base and few_shot: the same weights with the adapter off
                context.log.info(f"arm {arm}: {len(prompts[arm])} greedy answers")
                adapter_off = nullcontext() if arm == "sft" else model.disable_adapter()
                with adapter_off:
                    outputs[arm] = generate(
                        model, tokenizer, prompts[arm], **greedy, log=context.log.info
                    )
        refs = test_instructions["reference"].to_list()
        columns = answer_columns(outputs, refs, cfg.qc)
        df = test_instructions.select(
            "item_id", "task_type", "instruction", "reference"
        ).with_columns([pl.Series(name, values) for name, values in columns.items()])
        df = provenance.stamp(
            df,
            context.run_id,
            None,
            {"greedy": greedy, "method": inputs.method},
            base_model.path or f"demo:{inputs.base_path.name}",
            inputs.versions["base_model_revision"],
            inputs=inputs.versions,
        )
        rates = {
            f"{arm}_{c}_rate": float(df[f"{arm}_{c}"].mean())
            for arm in ARMS
            for c in ("strict", "lenient", "runaway", "token_limit")
        }
        judged = ["item_id", *(f"{arm}_{kind}" for arm in ARMS for kind in ANSWER_KINDS)]
        return save_handoff(
            context,
            artifacts,
            df,
            {
                "rows": df.height,
                **ui_metadata(rates),
                "gate_judge": GATE_JUDGE,
                "adapter": inputs.adapter_path.name,
                "adapter_method": inputs.method,
                "input_versions": dg.MetadataValue.json(inputs.versions),
                **meter.metadata(),
                **spend,
            },
            data_version=table_version(df, judged),
        )

    write_paired = frame_write_op("sft_eval_paired_results_write")

    @dg.graph_asset(
        key=PAIRED,
        group_name="sft",
        kinds={"polars", "duckdb"},
        automation_condition=GATED,
        code_version=EVAL_CODE_VERSION,
        ins={
            "test_instructions": dg.AssetIn(key=TEST_INSTRUCTIONS),
            "base": dg.AssetIn(key=BASE_MODEL, dagster_type=dg.Nothing),
            "adapter": dg.AssetIn(key=ADAPTER, dagster_type=dg.Nothing),
        },
        metadata=table_metadata(PAIRED),
    )
    def paired_results(test_instructions, base, adapter):
        """Greedy answers of base zero-shot, base few-shot (generation prompt) and base+adapter per test item, judged and QC-flagged."""
        return write_paired(paired_compute(test_instructions, base=base, adapter=adapter))

    @dg.asset(
        key=STATS,
        ins={"paired_results": dg.AssetIn(key=PAIRED)},
        automation_condition=GATED,
        code_version=EVAL_CODE_VERSION,
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
        """Per arm accuracy (Wilson 95% CI); SFT vs zero-shot and vs few-shot base: exact McNemar, Cohen's h, BH per-type p; QC rates."""
        from proj_assets.sft.evaluation import beats, paired_stats

        versions = eval_inputs(context, cfg).versions
        rows = current_eval_rows(paired_results, versions, "/".join(PAIRED))
        with compute.meter() as meter:
            df = paired_stats(rows)
        version = dg.DataVersion(table_version(df, df.columns))  # before the provenance stamp
        overall = df.filter(pl.col("scope") == OVERALL).row(0, named=True)
        verdicts = {
            f"beats_{baseline}": beats(df, cfg.stage_gate_alpha, baseline)[0]
            for baseline in ("base", "few_shot")
        }
        df = provenance.stamp(
            df,
            context.run_id,
            None,
            {"judge": GATE_JUDGE, "paired_run": rows["run_id"][0]},
            inputs=versions,
        )
        shown = {
            k: v
            for k, v in overall.items()
            if k.endswith(("_accuracy", "_rate")) or ("_vs_" in k and not k.startswith("p_bh"))
        }
        return dg.Output(
            df,
            metadata={
                **ui_metadata(shown),
                "gate_judge": GATE_JUDGE,
                "stage_gate_would_pass": verdicts["beats_base"],
                "beats_few_shot_would_pass": verdicts["beats_few_shot"],
                "paired_rows_superseded": paired_results.height - rows.height,
                "input_versions": dg.MetadataValue.json(versions),
                **meter.metadata(),
            },
            data_version=version,
        )

    return [paired_results, stats]
