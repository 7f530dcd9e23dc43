"""Review records: validation with clear errors, round trip through DuckDB, exact-result overrides."""

import duckdb
import pytest

from proj_assets.shared import reviews
from proj_assets.shared.reviews import Review, ReviewError

CHECK = "market/raw/ohlcv:ohlc_consistent"


def _review(**kw) -> Review:
    base = dict(
        check_key=CHECK,
        partition_key="SP500",
        decision="override",
        reviewer="Ada",
        reason="vendor split artefact, checked by hand",
        reviewed_run_id="run-1",
        result_passed=False,
    )
    return Review(**{**base, **kw})


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("market/raw/ohlcv", "override", "Ada", "long enough reason"), "check"),
        ((CHECK, "approve", "Ada", "long enough reason"), "decision"),
        ((CHECK, "override", "  ", "long enough reason"), "reviewer"),
        ((CHECK, "override", "Ada", "ok"), "reason"),
    ],
)
def test_bad_request_names_the_field(args, field):
    with pytest.raises(ReviewError, match=f"field '{field}'"):
        reviews.validate_request(*args)


def test_override_needs_a_failed_blocking_result():
    with pytest.raises(ReviewError, match="no result for this check and partition"):
        reviews.validate_against_result("override", None, True)
    with pytest.raises(ReviewError, match="nothing to override"):
        reviews.validate_against_result("override", True, True)
    with pytest.raises(ReviewError, match="not a blocking gate"):
        reviews.validate_against_result("override", False, False)
    reviews.validate_against_result("sign_off", True, False)
    reviews.validate_against_result("override", False, True)


def test_round_trip_through_duckdb(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        assert reviews.load_reviews(conn) == []
        first, second = (
            _review(),
            _review(decision="sign_off", check_key="a/b:c", partition_key=None),
        )
        reviews.insert_review(conn, first)
        reviews.insert_review(conn, second)
        loaded = reviews.load_reviews(conn)
        assert {r.review_id for r in loaded} == {first.review_id, second.review_id}
        assert reviews.load_reviews(conn, [CHECK]) == [first]
        assert reviews.load_reviews(conn, []) == []
        with pytest.raises(duckdb.ConstraintException):  # same id twice: rejected, nothing added
            reviews.insert_review(conn, first)
        assert len(reviews.load_reviews(conn)) == 2


def test_override_applies_to_exactly_the_reviewed_result():
    recorded = [_review(), _review(decision="sign_off", reviewed_run_id="run-2")]
    assert reviews.is_overridden(recorded, CHECK, "SP500", "run-1") is recorded[0]
    assert (
        reviews.is_overridden(recorded, CHECK, "SP500", "run-2") is None
    )  # a sign-off opens nothing
    assert reviews.is_overridden(recorded, CHECK, "VIX", "run-1") is None
    assert reviews.is_overridden(recorded, "other:check", "SP500", "run-1") is None
