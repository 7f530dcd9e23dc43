"""sft asset checks: completion mode, pilot/shard QC gates, decontamination, prompt masking, stage
gate and whether SFT beats the few-shot base."""

from functools import partial

import dagster as dg
import polars as pl

from proj_assets.partitions import sft_pilot_partitions
from proj_assets.sft.assets_check_results import auc_result, on_current_rows, rate_result
from proj_assets.sft.assets_sampling import model_revision_of
from proj_assets.sft.input_versions import critic_inputs, pilot_inputs, shard_inputs
from proj_assets.sft.iterations import iterations, selected_iteration
from proj_assets.sft.keys import (
    ADAPTER,
    BASE_MODEL,
    CRITIC,
    CRITIC_AUC_CHECK,
    PILOT,
    RUNAWAY_CHECK,
    SHARDS,
    STATS,
    TEST_INSTRUCTIONS,
    TOKEN_LIMIT_CHECK,
    TRAINING_SET,
)
from proj_assets.sft.lineage import eval_inputs, latest_artifact_path
from proj_assets.sft.settings import SftSettings
from proj_assets.shared.check_results import offending_rows_result, threshold_result
from proj_assets.shared.metadata import ui_metadata
from proj_resources import Compute


def beats_result(
    context: dg.AssetCheckExecutionContext,
    stats: pl.DataFrame,
    cfg: SftSettings,
    baseline: str,
    severity: dg.AssetCheckSeverity,
) -> dg.AssetCheckResult:
    """Whether SFT beats `baseline` on the stats rows of the current input versions, with all
    three arms' accuracies in the metadata."""
    from proj_assets.sft.assets_eval import current_eval_rows
    from proj_assets.sft.evaluation import ARM_LABELS, ARMS, GATE_JUDGE, beats

    alpha = cfg.stage_gate_alpha
    rows = current_eval_rows(stats, eval_inputs(context, cfg).versions, "/".join(STATS))
    passed, overall = beats(rows, alpha, baseline)
    sft, ref, p = (
        overall["sft_accuracy"],
        overall[f"{baseline}_accuracy"],
        overall[f"mcnemar_p_vs_{baseline}"],
    )
    verdict = "better" if sft > ref else "not better"
    arms = {
        f"{arm}_{what}": overall[f"{arm}_{what}"]
        for arm in ARMS
        for what in ("accuracy", "lenient_accuracy", "runaway_rate", "token_limit_rate")
        if f"{arm}_{what}" in overall
    }
    return threshold_result(
        passed,
        p,
        alpha,
        quantity=f"mcnemar_p_vs_{baseline}",
        threshold_name="alpha",
        must_be="below",
        severity=severity,
        description=(
            f"by {GATE_JUDGE}: SFT {sft:.1%} vs {ARM_LABELS[baseline]} {ref:.1%} "
            f"({verdict}), McNemar p={p:.3g} (needs < {alpha}); arms: "
            + ", ".join(
                f"{arm} {overall[f'{arm}_accuracy']:.1%}"
                for arm in ARMS
                if f"{arm}_accuracy" in overall
            )
        ),
        judge=GATE_JUDGE,
        baseline=baseline,
        **ui_metadata(
            {
                **arms,
                "cohens_h": overall[f"cohens_h_vs_{baseline}"],
                "only_sft_correct": overall[f"only_sft_correct_vs_{baseline}"],
                "only_baseline_correct": overall[f"only_baseline_correct_vs_{baseline}"],
            }
        ),
    )


def sft_checks(cfg: SftSettings, shards: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """The sft checks for `cfg` (shard checks per `shards` partition)."""

    def pilot_now(context, rows: pl.DataFrame) -> dict[str, str] | None:
        """The inputs a pilot iteration's rows would carry now; None when the iteration's settings
        are no longer in the profile."""
        sampling = iterations(cfg).get(rows["pilot_iteration"][0]) if rows.height else None
        return pilot_inputs(cfg, model_revision_of(context), sampling) if sampling else None

    def pilot_rate(context, rows: pl.DataFrame, flag: str, threshold: float):
        judge = partial(rate_result, flag=flag, threshold=threshold)
        return on_current_rows(rows, pilot_now(context, rows), judge)

    def shard_rate(context, rows: pl.DataFrame, flag: str, threshold: float):
        judge = partial(rate_result, flag=flag, threshold=threshold)
        return on_current_rows(rows, shard_inputs(cfg, model_revision_of(context)), judge)

    @dg.asset_check(asset=BASE_MODEL, name="completion_mode_only", blocking=True)
    def completion_mode_only(
        context: dg.AssetCheckExecutionContext, compute: Compute
    ) -> dg.AssetCheckResult:
        """No chat template is applied and sentinel prompts come back as plain continuation."""
        from proj_assets.sft.completion_model import (
            SENTINEL_INSTRUCTIONS,
            load_completion_model,
            sentinel_failures,
        )
        from proj_assets.sft.prompts import PromptBuilder

        cm = load_completion_model(
            latest_artifact_path(context, BASE_MODEL), compute.torch_device()
        )
        failures = pl.DataFrame(
            sentinel_failures(cm, PromptBuilder(n_shots=cfg.prompt_shots)),
            schema={"sentinel": pl.Utf8, "continuation": pl.Utf8, "reason": pl.Utf8},
        )
        return threshold_result(
            failures.height == 0,
            failures.height,
            0,
            offending=failures,
            description=f"{failures.height} of {len(SENTINEL_INSTRUCTIONS)} sentinels not plain continuation",
            shipped_chat_template_removed=cm.shipped_chat_template,
            quantity="sentinels_not_continued",
        )

    @dg.asset_check(
        asset=PILOT, name=RUNAWAY_CHECK, blocking=True, partitions_def=sft_pilot_partitions
    )
    def pilot_runaway_rate_below_max(
        context: dg.AssetCheckExecutionContext, pilot_generations: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """Share of the pilot iteration's current generations that ran on past their answer is below the profile's maximum."""
        return pilot_rate(context, pilot_generations, "runaway", cfg.qc.runaway_max)

    @dg.asset_check(
        asset=PILOT, name=TOKEN_LIMIT_CHECK, blocking=True, partitions_def=sft_pilot_partitions
    )
    def pilot_token_limit_rate_below_max(
        context: dg.AssetCheckExecutionContext, pilot_generations: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """Share of the pilot's current generations cut off by max_new_tokens is below the profile's maximum."""
        return pilot_rate(context, pilot_generations, "token_limit", cfg.qc.token_limit_max)

    @dg.asset_check(asset=SHARDS, name=RUNAWAY_CHECK, blocking=True, partitions_def=shards)
    def shard_runaway_rate_below_max(
        context: dg.AssetCheckExecutionContext, scale_shards: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """The shard's runaway rate (current rows) is below the profile's maximum (same gate as the pilot)."""
        return shard_rate(context, scale_shards, "runaway", cfg.qc.runaway_max)

    @dg.asset_check(asset=SHARDS, name=TOKEN_LIMIT_CHECK, blocking=True, partitions_def=shards)
    def shard_token_limit_rate_below_max(
        context: dg.AssetCheckExecutionContext, scale_shards: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """The shard's token-limit rate (current rows) is below the profile's maximum (same gate as the pilot)."""
        return shard_rate(context, scale_shards, "token_limit", cfg.qc.token_limit_max)

    @dg.asset_check(asset=PILOT, name=CRITIC_AUC_CHECK, partitions_def=sft_pilot_partitions)
    def pilot_critic_auc_above_min(
        context: dg.AssetCheckExecutionContext, pilot_generations: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """The critic ranks the pilot's answers better than chance (ROC-AUC against program labels); WARN below the minimum."""
        return on_current_rows(
            pilot_generations,
            pilot_now(context, pilot_generations),
            partial(auc_result, cfg=cfg),
            dg.AssetCheckSeverity.WARN,
        )

    @dg.asset_check(asset=CRITIC, name=CRITIC_AUC_CHECK, partitions_def=shards)
    def shard_critic_auc_above_min(
        context: dg.AssetCheckExecutionContext, critic_scores: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """The critic ranks the shard's answers better than chance (ROC-AUC against program labels); WARN below the minimum."""
        inputs = critic_inputs(cfg, model_revision_of(context), selected_iteration(cfg))
        return on_current_rows(
            critic_scores, inputs, partial(auc_result, cfg=cfg), dg.AssetCheckSeverity.WARN
        )

    @dg.asset_check(
        asset=TRAINING_SET,
        name="no_test_overlap",
        blocking=True,
        additional_ins={"test_instructions": dg.AssetIn(key=TEST_INSTRUCTIONS)},
    )
    def no_test_overlap(
        training_set: pl.DataFrame, test_instructions: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """No training instruction is, contains or shares an n-gram with a held-out test
        instruction; audited by code apart from the filter that removed them (overlap_audit.py)."""
        from proj_assets.sft.overlap_audit import OverlapAudit

        n = cfg.decontamination_ngram
        test_texts = test_instructions["instruction"].to_list()
        found = OverlapAudit(test_texts, n).find(training_set["instruction"].to_list())
        hits = training_set[[o.row for o in found]].select("example_id", "instruction")
        hits = hits.with_columns(
            pl.Series("overlap", [o.kind for o in found], dtype=pl.Utf8),
            pl.Series("test_item", [o.test_item for o in found], dtype=pl.Utf8),
        )
        return offending_rows_result(
            hits,
            training_set.height,
            f"training rows that are, contain or share a {n}-gram with a test item",
        )

    @dg.asset_check(
        asset=ADAPTER,
        name="prompt_tokens_masked",
        blocking=True,
        additional_ins={"training_set": dg.AssetIn(key=TRAINING_SET)},
    )
    def prompt_tokens_masked(
        context: dg.AssetCheckExecutionContext, training_set: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """On a real training batch, labels are -100 on every prompt and padding token and equal the completion elsewhere."""
        from proj_assets.sft.masking import collate, encode_example, masking_errors
        from proj_assets.sft.prompts import PromptBuilder
        from proj_assets.sft.tokenizer import load_sft_tokenizer

        tokenizer = load_sft_tokenizer(latest_artifact_path(context, BASE_MODEL))
        builder = PromptBuilder(n_shots=cfg.sft_prompt_shots)
        rows = training_set.head(cfg.lora.batch_size)
        prompts = [builder.answer_prompt(i) for i in rows["instruction"]]
        completions = [builder.completion(c) for c in rows["completion"]]
        batch = collate(
            [
                encode_example(tokenizer, p, c, cfg.lora.max_length)
                for p, c in zip(prompts, completions, strict=False)
            ],
            tokenizer.pad_token_id,
        )
        errors = pl.DataFrame(
            masking_errors(tokenizer, prompts, completions, batch),
            schema={
                "row": pl.Int64,
                "prompt_tail": pl.Utf8,
                "completion": pl.Utf8,
                "problem": pl.Utf8,
            },
        )
        return offending_rows_result(errors, rows.height, "batch rows with wrong label masking")

    @dg.asset_check(asset=STATS, name="stage_gate")
    def stage_gate(
        context: dg.AssetCheckExecutionContext, stats: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """The adapter beats the base model zero-shot: McNemar exact p below alpha and higher accuracy.

        An ERROR-severity verdict, not blocking: nothing is downstream, and an honest "no" must not
        turn the run that measured it into a failed run."""
        return beats_result(context, stats, cfg, "base", dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=STATS, name="beats_few_shot")
    def beats_few_shot(
        context: dg.AssetCheckExecutionContext, stats: pl.DataFrame
    ) -> dg.AssetCheckResult:
        """The adapter also beats the base model prompted like the data generation (few-shot), by the stage gate's test.

        WARN severity unless the profile sets `sft.few_shot_check_severity`: SFT that only matches
        prompting distilled a prompt, it did not add what prompting cannot."""
        severity = dg.AssetCheckSeverity(cfg.few_shot_check_severity)
        return beats_result(context, stats, cfg, "few_shot", severity)

    return [
        completion_mode_only,
        pilot_runaway_rate_below_max,
        pilot_token_limit_rate_below_max,
        shard_runaway_rate_below_max,
        shard_token_limit_rate_below_max,
        pilot_critic_auc_above_min,
        shard_critic_auc_above_min,
        no_test_overlap,
        prompt_tokens_masked,
        stage_gate,
        beats_few_shot,
    ]
