"""sft asset checks: completion mode, pilot/shard QC gates, decontamination, prompt masking, stage gate."""

import dagster as dg
import polars as pl

from proj_assets.partitions import sft_pilot_partitions
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
from proj_assets.sft.lineage import latest_artifact_path
from proj_assets.sft.settings import SftSettings
from proj_assets.shared.check_results import offending_rows_result, threshold_result
from proj_assets.shared.metadata import ui_metadata
from proj_resources import Compute

SAMPLE_COLUMNS = [
    "example_id",
    "task_type",
    "instruction",
    "completion",
    "finish_reason",
    "n_tokens",
]


def rate_result(df: pl.DataFrame, flag: str, threshold: float) -> dg.AssetCheckResult:
    """Pass when the share of rows with `flag` is below `threshold`; sample the flagged rows."""
    from proj_assets.sft.qc import flag_rate

    rate = flag_rate(df, flag)
    offending = df.filter(pl.col(flag)).select([c for c in SAMPLE_COLUMNS if c in df.columns])
    return threshold_result(
        rate < threshold,
        rate,
        threshold,
        offending=offending,
        description=f"{flag} rate {rate:.1%} (must be below {threshold:.1%}) over {df.height} rows",
        quantity=f"{flag}_rate",
        threshold_name=f"max_{flag}_rate",
        must_be="below",
    )


def auc_result(df: pl.DataFrame, cfg: SftSettings) -> dg.AssetCheckResult:
    """WARN unless the critic ranks answers within their task type better than chance: the pooled
    within-type ROC-AUC at least `critic_auc_min` and its interval above 0.5. The metadata carries
    calibration (ECE, reliability plot), overall and per-type AUCs, the type-only AUC and whether
    the critic filters: on the pilot the decision these rows give, on a shard the one its rows
    were filtered by (from the selected pilot)."""
    from proj_assets.sft.critic_calibration import critic_summary

    summary = critic_summary(
        df["critic_margin"].to_list(),
        df["answer_correct"].to_list(),
        df["task_type"].to_list(),
        cfg.critic_force_filter,
        cfg.critic_auc_confidence,
    )
    if "critic_filtering" in df.columns:  # a shard: the decision taken on the pilot
        summary["filtering"] = bool(df["critic_filtering"].all())
        summary["filter_reason"] = str(df["critic_filter_reason"][0])
    auc, low = summary["within_type_auc"], summary["within_type_auc_low"]
    minimum = cfg.critic_auc_min
    passed = auc is not None and auc >= minimum and low > 0.5
    shown = (
        "not measurable (no task type holds both classes)"
        if auc is None
        else f"{auc:.3f} [{low:.3f}, {summary['within_type_auc_high']:.3f}]"
    )
    return threshold_result(
        passed,
        auc if auc is not None else float("nan"),
        minimum,
        description=(
            f"critic within-type ROC-AUC {shown} against program labels (warns below {minimum} "
            f"or when the interval includes 0.5); {summary['filter_reason']}"
        ),
        severity=dg.AssetCheckSeverity.WARN,
        **ui_metadata({**summary, "auc_by_type": dg.MetadataValue.json(summary["auc_by_type"])}),
        quantity="critic_within_type_auc",
        threshold_name="min_auc",
        must_be="at least",
    )


def sft_checks(cfg: SftSettings, shards: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    """The sft checks for `cfg` (shard checks per `shards` partition)."""

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
    def pilot_runaway_rate_below_max(pilot_generations: pl.DataFrame) -> dg.AssetCheckResult:
        """Share of the pilot iteration's generations that ran on past their answer is below the profile's maximum."""
        return rate_result(pilot_generations, "runaway", cfg.qc.runaway_max)

    @dg.asset_check(
        asset=PILOT, name=TOKEN_LIMIT_CHECK, blocking=True, partitions_def=sft_pilot_partitions
    )
    def pilot_token_limit_rate_below_max(pilot_generations: pl.DataFrame) -> dg.AssetCheckResult:
        """Share of pilot generations cut off by max_new_tokens is below the profile's maximum."""
        return rate_result(pilot_generations, "token_limit", cfg.qc.token_limit_max)

    @dg.asset_check(asset=SHARDS, name=RUNAWAY_CHECK, blocking=True, partitions_def=shards)
    def shard_runaway_rate_below_max(scale_shards: pl.DataFrame) -> dg.AssetCheckResult:
        """The shard's runaway rate is below the profile's maximum (same gate as the pilot)."""
        return rate_result(scale_shards, "runaway", cfg.qc.runaway_max)

    @dg.asset_check(asset=SHARDS, name=TOKEN_LIMIT_CHECK, blocking=True, partitions_def=shards)
    def shard_token_limit_rate_below_max(scale_shards: pl.DataFrame) -> dg.AssetCheckResult:
        """The shard's token-limit rate is below the profile's maximum (same gate as the pilot)."""
        return rate_result(scale_shards, "token_limit", cfg.qc.token_limit_max)

    @dg.asset_check(asset=PILOT, name=CRITIC_AUC_CHECK, partitions_def=sft_pilot_partitions)
    def pilot_critic_auc_above_min(pilot_generations: pl.DataFrame) -> dg.AssetCheckResult:
        """The critic ranks the pilot's answers better than chance (ROC-AUC against program labels); WARN below the minimum."""
        return auc_result(pilot_generations, cfg)

    @dg.asset_check(asset=CRITIC, name=CRITIC_AUC_CHECK, partitions_def=shards)
    def shard_critic_auc_above_min(critic_scores: pl.DataFrame) -> dg.AssetCheckResult:
        """The critic ranks the shard's answers better than chance (ROC-AUC against program labels); WARN below the minimum."""
        return auc_result(critic_scores, cfg)

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
    def stage_gate(stats: pl.DataFrame) -> dg.AssetCheckResult:
        """The adapter beats the base model: McNemar exact p below alpha and higher accuracy.

        An ERROR-severity verdict, not blocking: nothing is downstream, and an honest "no" must not
        turn the run that measured it into a failed run."""
        from proj_assets.sft.evaluation import GATE_JUDGE
        from proj_assets.sft.evaluation import stage_gate as decide

        alpha = cfg.stage_gate_alpha
        passed, overall = decide(stats, alpha)
        verdict = "better" if overall["sft_accuracy"] > overall["base_accuracy"] else "not better"
        extra = {
            k: overall[k]
            for k in (
                "base_lenient_accuracy",
                "sft_lenient_accuracy",
                "base_runaway_rate",
                "sft_runaway_rate",
                "base_token_limit_rate",
                "sft_token_limit_rate",
            )
            if k in overall
        }
        return threshold_result(
            passed,
            overall["mcnemar_p"],
            alpha,
            quantity="mcnemar_p",
            threshold_name="alpha",
            must_be="below",
            description=(
                f"by {GATE_JUDGE}: SFT {overall['sft_accuracy']:.1%} vs base "
                f"{overall['base_accuracy']:.1%} ({verdict}), McNemar "
                f"p={overall['mcnemar_p']:.3g} (needs < {alpha})"
            ),
            judge=GATE_JUDGE,
            base_accuracy=overall["base_accuracy"],
            sft_accuracy=overall["sft_accuracy"],
            cohens_h=overall["cohens_h"],
            **extra,
        )

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
    ]
