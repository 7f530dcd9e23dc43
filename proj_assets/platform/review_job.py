"""The gate review job: a reviewer records a sign-off or an override from the UI Launchpad.

Launchpad config (Jobs -> gate_review_job -> Launchpad):

    ops:
      record_gate_review:
        config:
          check: market/raw/ohlcv:ohlc_consistent
          partition: SP500          # empty for an unpartitioned asset
          decision: override        # or sign_off
          reviewer: Ada Lovelace
          reason: Known split-adjustment artefact in the vendor file; verified by hand.

The record goes to the warehouse (platform_reviews.gate_reviews) and, as an observation, onto the
checked asset's timeline in the UI.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from proj_assets.shared import reviews
from proj_assets.shared.gates import latest_check_results
from proj_resources import Warehouse


class GateReviewConfig(dg.Config):
    check: str = Field(
        description="asset key and check name, e.g. market/raw/ohlcv:ohlc_consistent"
    )
    partition: str = Field(
        "", description="partition of the reviewed result; empty when unpartitioned"
    )
    decision: str = Field(
        "sign_off",
        description="override (let downstream run despite this failed result) or sign_off",
    )
    reviewer: str = Field(description="who decides")
    reason: str = Field(description="why (at least 10 characters)")


def _float(metadata: Mapping[str, Any], name: str) -> float | None:
    value = getattr(metadata.get(name), "value", metadata.get(name))
    return float(value) if isinstance(value, int | float) else None


@dg.op(description="Record a sign-off or override of a check's latest result in the warehouse.")
def record_gate_review(
    context: dg.OpExecutionContext, config: GateReviewConfig, warehouse: Warehouse
) -> None:
    try:
        reviews.validate_request(config.check, config.decision, config.reviewer, config.reason)
        key = dg.AssetCheckKey.from_user_string(config.check)
        partition = config.partition or None
        record = latest_check_results(context.instance, key).get(partition)
        evaluation = record.evaluation if record is not None else None
        passed = evaluation.passed if evaluation is not None else None
        reviews.validate_against_result(
            config.decision, passed, bool(evaluation and evaluation.blocking)
        )
    except reviews.ReviewError as err:
        raise dg.Failure(description=f"review not recorded: {err}", allow_retries=False) from None
    # validate_against_result refuses a missing result (passed is None without an evaluation)
    assert record is not None and evaluation is not None
    meta = evaluation.metadata or {}
    review = reviews.Review(
        check_key=key.to_user_string(),
        partition_key=partition,
        decision=config.decision,
        reviewer=config.reviewer.strip(),
        reason=config.reason.strip(),
        reviewed_run_id=record.run_id,
        result_passed=passed,
        measured=_float(meta, "measured"),
        threshold=_float(meta, "threshold"),
        review_run_id=context.run_id,
    )
    with warehouse.get_connection() as conn:
        reviews.insert_review(conn, review)
    context.log_event(
        dg.AssetObservation(
            asset_key=key.asset_key,
            partition=partition,
            description=f"gate review: {review.decision} of {key.name} by {review.reviewer}",
            metadata={
                "review_id": review.review_id,
                "check": key.name,
                "decision": review.decision,
                "reviewer": review.reviewer,
                "reason": review.reason,
                "reviewed_run_id": review.reviewed_run_id,
                "result_passed": bool(passed),
            },
        )
    )
    context.log.info(
        f"recorded {review.decision} of {key.to_user_string()} {partition or ''} by {review.reviewer}"
    )


@dg.job(
    description="Record a reviewer's sign-off or override of a gate result (config in the Launchpad).",
    tags={"proj/kind": "review"},
)
def gate_review_job():
    record_gate_review()
