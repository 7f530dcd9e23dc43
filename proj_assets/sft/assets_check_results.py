"""Check results for the sft data assets' gates (shell: they build Dagster results): QC rates
and the critic's ranking, judged on the rows of the inputs in force now (`input_versions.py`). A
partition whose rows were all produced by superseded inputs (an older base model, prompt or
setting) fails with what changed: it must be re-materialized, never judged as if current."""

from collections.abc import Callable

import dagster as dg
import polars as pl

from proj_assets.sft.settings import SftSettings
from proj_assets.shared.check_results import threshold_result
from proj_assets.shared.metadata import ui_metadata
from proj_resources.fingerprints import current_rows, staleness

SAMPLE_COLUMNS = [
    "example_id",
    "task_type",
    "instruction",
    "completion",
    "finish_reason",
    "n_tokens",
]


def rate_result(df: pl.DataFrame, flag: str, threshold: float, **extra) -> dg.AssetCheckResult:
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
        **extra,
    )


def auc_result(df: pl.DataFrame, cfg: SftSettings, **extra) -> dg.AssetCheckResult:
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
        **extra,
        quantity="critic_within_type_auc",
        threshold_name="min_auc",
        must_be="at least",
    )


def on_current_rows(
    df: pl.DataFrame,
    inputs: dict[str, str] | None,
    judge: Callable[..., dg.AssetCheckResult],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """`judge(current rows, **staleness metadata)`, or a failure naming the changed inputs when no
    row is current (`inputs` None: the partition's settings are gone from the profile)."""
    stale = (
        staleness(df, inputs)
        if inputs is not None
        else {"current_rows": 0, "superseded_rows": df.height, "changed_inputs": ["profile"]}
    )
    extra = {**stale, "changed_inputs": dg.MetadataValue.json(stale["changed_inputs"])}
    if stale["current_rows"] == 0:
        return dg.AssetCheckResult(
            passed=False,
            severity=severity,
            description=(
                f"no current rows: all {df.height} were produced by superseded inputs "
                f"(changed: {', '.join(stale['changed_inputs'])}); re-materialize the partition"
            ),
            metadata=extra,
        )
    return judge(current_rows(df, inputs or {}), **extra)
