"""The fold results table keeps rows of other inputs as history and readers select the current
ones: pure tests of `results_store` and `folds.fold_definition` on a DuckDB file."""

import duckdb
import polars as pl
import pytest

from proj_assets.probes.folds import fold_definition
from proj_assets.probes.results_store import (
    QUALIFIED,
    partition_inputs,
    read_partitions,
    replace_partitions,
    select_current,
)
from proj_resources.fingerprints import stamp_inputs

CONFIG = {"config_id": "c1", "model_id": "m", "model_revision": "r1", "activations_path": "/a/k1"}


def rows(fold: str, value: float, n: int = 3) -> pl.DataFrame:
    return pl.DataFrame({"config_id": "c1", "fold": fold, "probe_seed": range(n), "pr_auc": value})


def corpus(traces: dict[str, list[str]]) -> pl.DataFrame:
    pairs = [(g, t) for g, ts in traces.items() for t in ts]
    return pl.DataFrame({"group_id": [g for g, _ in pairs], "trace_id": [t for _, t in pairs]})


def test_fold_definition_follows_the_held_out_group_and_the_training_groups():
    base = corpus({"g0": ["a"], "g1": ["b"], "g2": ["c"]})
    more = corpus({"g0": ["a"], "g1": ["b", "b2"], "g2": ["c"]})
    fewer = corpus({"g0": ["a"], "g1": ["b"]})
    assert fold_definition(more, "g1") != fold_definition(base, "g1")  # its membership changed
    assert fold_definition(more, "g0") == fold_definition(base, "g0")  # same held-out, same train
    assert fold_definition(fewer, "g0") != fold_definition(base, "g0")  # a training group left


def test_a_rerun_replaces_its_own_inputs_rows_and_keeps_other_inputs_as_history(tmp_path):
    old_inputs = partition_inputs(CONFIG, "corpus1", "fold-a")
    new_inputs = partition_inputs({**CONFIG, "model_revision": "r2"}, "corpus1", "fold-a")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("create schema probes_sweep")  # a table from before rows had fingerprints
        conn.register("legacy", rows("g0", 0.1).to_arrow())
        conn.execute(f"create table {QUALIFIED} as select * from legacy")
        replace_partitions(conn, stamp_inputs(rows("g0", 0.5), old_inputs), [("c1", "g0")])
        replace_partitions(conn, stamp_inputs(rows("g0", 0.6), old_inputs), [("c1", "g0")])
        replace_partitions(conn, stamp_inputs(rows("g0", 0.7), new_inputs), [("c1", "g0")])
        replace_partitions(conn, stamp_inputs(rows("g1", 0.8), old_inputs), [("c1", "g1")])
        stored = read_partitions(conn, [("c1", "g0"), ("c1", "g1")])
    assert stored.height == 3 * 4  # legacy, old model (rewritten once, not twice), new, fold g1
    assert sorted(stored.filter(pl.col("fold") == "g0")["pr_auc"].unique()) == [0.1, 0.6, 0.7]

    current, report = select_current(stored, {("c1", "g0"): new_inputs})
    assert current["pr_auc"].to_list() == [0.7] * 3
    assert report == {
        "current_rows": 3,
        "superseded_rows": 9,
        "changed_inputs": ["fold_removed", "model", "unfingerprinted"],
        "removed_folds": ["g1"],  # a fold no longer in the corpus
        "partitions_without_current_rows": 0,
    }
    back, report = select_current(stored, {("c1", "g0"): old_inputs, ("c1", "g1"): old_inputs})
    assert sorted(back["pr_auc"].unique()) == [0.6, 0.8]  # the old model's rows are current again
    assert report["changed_inputs"] == ["model", "unfingerprinted"]


def test_a_write_that_fails_leaves_the_table_as_it_was(tmp_path):
    inputs = partition_inputs(CONFIG, "corpus1", "fold-a")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        replace_partitions(conn, stamp_inputs(rows("g0", 0.5), inputs), [("c1", "g0")])
        bad = stamp_inputs(rows("g0", 0.5), inputs).with_columns(
            pr_auc=pl.lit("not a number"), extra=pl.lit(1)
        )
        with pytest.raises(duckdb.ConversionException):
            replace_partitions(conn, bad, [("c1", "g0")])
        after = read_partitions(conn, [("c1", "g0")])
    assert after["pr_auc"].to_list() == [0.5] * 3 and "extra" not in after.columns
