"""Gate reviews: a reviewer's sign-off or override of a check result, kept in the warehouse.

An override names the exact failed result it overrides (check, partition and the run that
produced the result). `require_gates_passed` honours it only for that result: when the check runs
again and fails again, the gate is closed until someone reviews the new result.
A sign-off records that a reviewer read a result (passed, or a soft warning) and accepts it; it
never opens a gate.

Pure code over a DuckDB connection (`proj_resources.Warehouse.get_connection()`); no dagster.
"""

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import polars as pl

SCHEMA = "platform_reviews"
TABLE = f"{SCHEMA}.gate_reviews"
DECISIONS = ("override", "sign_off")
MIN_REASON_CHARS = 10

_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {TABLE} (
    review_id varchar primary key,
    check_key varchar not null,
    partition_key varchar,
    decision varchar not null,
    reviewer varchar not null,
    reason varchar not null,
    reviewed_run_id varchar,
    result_passed boolean,
    measured double,
    threshold double,
    recorded_at timestamp not null,
    review_run_id varchar
)"""


class ReviewError(ValueError):
    """A review request is incomplete or does not match a reviewable check result."""


@dataclass(frozen=True)
class Review:
    check_key: str  # "domain/layer/name:check_name"
    partition_key: str | None
    decision: str
    reviewer: str
    reason: str
    reviewed_run_id: str | None
    result_passed: bool | None
    measured: float | None = None
    threshold: float | None = None
    review_run_id: str | None = None
    review_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))


def validate_request(check_key: str, decision: str, reviewer: str, reason: str) -> None:
    """Raise ReviewError naming the field when a request is not a usable review."""
    if ":" not in check_key or not check_key.split(":", 1)[1]:
        raise ReviewError(f"field 'check': expected 'asset/key/path:check_name', got {check_key!r}")
    if decision not in DECISIONS:
        raise ReviewError(f"field 'decision': expected one of {DECISIONS}, got {decision!r}")
    if not reviewer.strip():
        raise ReviewError("field 'reviewer': a name is required")
    if len(reason.strip()) < MIN_REASON_CHARS:
        raise ReviewError(
            f"field 'reason': say why in at least {MIN_REASON_CHARS} characters, got {reason!r}"
        )


def validate_against_result(decision: str, result_passed: bool | None, blocking: bool) -> None:
    """An override only makes sense for a failed blocking result; nothing to review without a result."""
    if result_passed is None:
        raise ReviewError(
            "no result for this check and partition: check the spelling of 'check' and "
            "'partition', or materialize the asset first"
        )
    if decision == "override" and result_passed:
        raise ReviewError(
            "the latest result passed: there is nothing to override (record a sign_off instead)"
        )
    if decision == "override" and not blocking:
        raise ReviewError(
            "the check is not a blocking gate: record a sign_off instead of an override"
        )


def is_overridden(
    reviews: list[Review], check_key: str, partition_key: str | None, run_id: str
) -> Review | None:
    """The override of exactly this failed result (check, partition, run), if one was recorded."""
    for review in reviews:
        if (
            review.decision == "override"
            and review.check_key == check_key
            and review.partition_key == partition_key
            and review.reviewed_run_id == run_id
        ):
            return review
    return None


def ensure_table(conn) -> None:
    for statement in _DDL.split(";"):
        conn.execute(statement)


def insert_review(conn, review: Review) -> None:
    """Insert one review in its own transaction (parameterised)."""
    ensure_table(conn)
    row = asdict(review)
    cols = list(row)
    conn.execute("begin transaction")
    try:
        conn.execute(
            f"insert into {TABLE} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
            [row[c] for c in cols],
        )
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise


def load_reviews(conn, check_keys: list[str] | None = None) -> list[Review]:
    """Every recorded review (optionally only for `check_keys`), newest first."""
    exists = conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [SCHEMA, "gate_reviews"],
    ).fetchone()[0]
    if not exists:
        return []
    sql = f"select * from {TABLE}"
    params: list = []
    if check_keys is not None:
        if not check_keys:
            return []
        sql += f" where check_key in ({', '.join('?' * len(check_keys))})"
        params = list(check_keys)
    frame: pl.DataFrame = conn.execute(sql + " order by recorded_at desc", params).pl()
    return [Review(**row) for row in frame.iter_rows(named=True)]
