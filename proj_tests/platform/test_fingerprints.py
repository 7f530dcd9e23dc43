"""Input fingerprints: rows stamped with the versions of their inputs; readers keep the current
ones and report the superseded ones with the inputs that changed."""

import polars as pl

from proj_resources import Provenance
from proj_resources.fingerprints import (
    FINGERPRINT,
    INPUT_VERSIONS,
    changed_inputs,
    current_rows,
    fingerprint,
    staleness,
    stamp_inputs,
    superseded_rows,
    table_version,
)

OLD = {"model_revision": "r1", "corpus": "c1"}
NEW = {"model_revision": "r2", "corpus": "c1"}


def test_fingerprint_ignores_order_and_follows_every_version():
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint(OLD) != fingerprint(NEW)
    assert fingerprint({"a": "1"}) != fingerprint({"a": "1", "b": "2"})


def test_readers_keep_only_rows_of_the_current_inputs_and_name_what_changed():
    rows = pl.concat(
        [
            stamp_inputs(pl.DataFrame({"x": [1, 2]}), OLD),
            stamp_inputs(pl.DataFrame({"x": [3]}), NEW),
        ]
    )
    assert current_rows(rows, NEW)["x"].to_list() == [3]
    assert superseded_rows(rows, NEW)["x"].to_list() == [1, 2]
    assert staleness(rows, NEW) == {
        "current_rows": 1,
        "superseded_rows": 2,
        "changed_inputs": ["model_revision"],
    }
    assert changed_inputs(rows[INPUT_VERSIONS][0], {"corpus": "c1"}) == ["model_revision"]


def test_rows_without_a_fingerprint_are_never_current():
    legacy = pl.DataFrame({"x": [1]})
    assert current_rows(legacy, NEW).height == 0
    assert staleness(legacy, NEW)["changed_inputs"] == ["unfingerprinted"]
    with_nulls = stamp_inputs(legacy, NEW).with_columns(pl.lit(None, pl.Utf8).alias(FINGERPRINT))
    assert current_rows(with_nulls, NEW).height == 0


def test_provenance_stamps_the_fingerprint_when_given_inputs():
    out = Provenance().stamp(pl.DataFrame({"x": [1]}), "run", 0, {}, inputs=NEW)
    assert out[FINGERPRINT].to_list() == [fingerprint(NEW)]
    assert FINGERPRINT not in Provenance().stamp(pl.DataFrame({"x": [1]}), "run", 0, {}).columns


def test_table_version_follows_content_and_inputs_not_row_order_or_run():
    rows = pl.DataFrame({"cell": ["a", "b"], "loss": [0.5, 0.4]})
    same = Provenance().stamp(rows.reverse(), "another-run", 1, {}, inputs=NEW)
    assert table_version(stamp_inputs(rows, NEW), ["cell", "loss"]) == table_version(
        same, ["cell", "loss"]
    )
    assert table_version(stamp_inputs(rows, OLD), ["cell", "loss"]) != table_version(
        same, ["cell", "loss"]
    )  # other inputs
    assert table_version(rows) != table_version(rows.with_columns(loss=pl.lit(0.3)))
