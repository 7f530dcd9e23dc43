"""The probes checks that must FAIL on bad data, shown at the Dagster level: a corrupted activation
cache fails `activations_finite` / `index_matches_cache` and fold_results then refuses; a bad fold
partition fails `metrics_finite` / `no_group_leakage` and aggregate_metrics then refuses. Plus unit
tests of `quality.nonfinite_metric_rows`."""

import math

import dagster as dg
import numpy as np
import polars as pl
import pytest

from proj_assets.probes import assets as A
from proj_assets.probes.activation_cache import ACTIVATIONS_FILE, INDEX_FILE, open_cache
from proj_assets.probes.fold_run import N_CONTROL_SEEDS
from proj_assets.probes.quality import nonfinite_metric_rows
from proj_assets.probes.results_store import QUALIFIED, read_partitions, replace_partitions
from proj_tests.probes.conftest import refusal

ACT_CHECKS = [
    dg.AssetCheckKey(dg.AssetKey(A.ACTIVATIONS), "activations_finite"),
    dg.AssetCheckKey(dg.AssetKey(A.ACTIVATIONS), "index_matches_cache"),
]
FOLD_CHECKS = [
    dg.AssetCheckKey(dg.AssetKey(A.FOLD_RESULTS), "no_group_leakage"),
    dg.AssetCheckKey(dg.AssetKey(A.FOLD_RESULTS), "metrics_finite"),
]


N_ROWS = 2 + 1 + N_CONTROL_SEEDS  # candidate x 2 seeds, one position baseline, the controls


def run_checks(probes, instance, keys, partition=None):
    """Re-execute only the given checks in a new run: check name -> its evaluation."""
    return {
        e.check_name: e
        for e in probes.run_checks(instance, keys, partition).get_asset_check_evaluations()
    }


def assert_failed(evaluation, min_failing=1):
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["n_failing"].value >= min_failing


def reseal(folder):
    """Recompute the cache's checksums, as if the model itself had produced these values (a NaN
    from the model is written into a consistent cache; only the content checks can catch it)."""
    import json

    from proj_assets.probes.activation_cache import META_FILE, _file_digest

    meta = json.loads((folder / META_FILE).read_text())
    for name in meta["files"]:
        meta["files"][name] = {
            "bytes": (folder / name).stat().st_size,
            "sha256": _file_digest(folder / name),
        }
    (folder / META_FILE).write_text(json.dumps(meta))


def cache_folder(tmp_path):
    (folder,) = [
        p.parent
        for p in (tmp_path / "artifacts" / "probes" / "activations").glob(f"*/{ACTIVATIONS_FILE}")
    ]
    return folder


@pytest.fixture
def built(instance, probes):
    """corpus + token_activations + manifest materialized, all checks passing."""
    first = probes.run(instance, [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
    assert first.success and all(e.passed for e in first.get_asset_check_evaluations())
    configs, folds = (
        instance.get_dynamic_partitions("probe_config"),
        instance.get_dynamic_partitions("probe_fold"),
    )
    return dg.MultiPartitionKey({"config": configs[0], "fold": folds[1]})


def test_corrupt_cache_fails_its_checks_and_blocks_fold_results(tmp_path, instance, probes, built):
    folder = cache_folder(tmp_path)
    array, index, meta = open_cache(folder)
    row = int(index["offset"][3])  # a token row inside the 4th sentence
    original = np.array(array[row, 0])
    del array

    writable = np.memmap(
        folder / ACTIVATIONS_FILE, dtype=meta["dtype"], mode="r+", shape=tuple(meta["shape"])
    )
    writable[row, 0] = np.nan
    writable.flush()
    del writable

    checks = run_checks(probes, instance, ACT_CHECKS)  # changed behind the checksum: never read
    for name in ("activations_finite", "index_matches_cache"):
        assert_failed(checks[name])
        assert "sha256 mismatch" in checks[name].metadata["offending_sample"].value
    reseal(folder)

    checks = run_checks(probes, instance, ACT_CHECKS)
    assert_failed(checks["activations_finite"])
    assert checks["activations_finite"].metadata["n_failing"].value == 1
    assert checks["index_matches_cache"].passed

    refused = probes.run(instance, [A.FOLD_RESULTS], built, raise_on_error=False)
    message = refusal(refused)
    assert "refusing to run" in message
    assert "probes/features/token_activations:activations_finite failed" in message
    assert "index_matches_cache" not in message
    assert instance.get_latest_materialization_event(dg.AssetKey(A.FOLD_RESULTS)) is None

    # repair the NaN, then shift one offset in the index: only index_matches_cache fails now
    writable = np.memmap(
        folder / ACTIVATIONS_FILE, dtype=meta["dtype"], mode="r+", shape=tuple(meta["shape"])
    )
    writable[row, 0] = original
    writable.flush()
    del writable
    index.with_columns(
        offset=pl.when(pl.int_range(pl.len()) == 2)
        .then(pl.col("offset") + 1)
        .otherwise(pl.col("offset"))
    ).write_parquet(folder / INDEX_FILE)
    reseal(folder)

    checks = run_checks(probes, instance, ACT_CHECKS)
    assert checks["activations_finite"].passed
    assert_failed(checks["index_matches_cache"])
    assert "gap or overlap" in checks["index_matches_cache"].metadata["offending_sample"].value

    refused = probes.run(instance, [A.FOLD_RESULTS], built, raise_on_error=False)
    message = refusal(refused)
    assert "probes/features/token_activations:index_matches_cache failed" in message
    assert "activations_finite" not in message


def test_bad_fold_partition_fails_its_checks_and_blocks_aggregate(
    tmp_path, instance, probes, built
):
    good = probes.run(instance, [A.FOLD_RESULTS], built)
    assert all(e.passed for e in good.get_asset_check_evaluations())
    warehouse, fold = probes.resources["warehouse"], built.keys_by_dimension["fold"]
    config = built.keys_by_dimension["config"]
    with warehouse.get_connection() as conn:
        rows = read_partitions(conn, [(config, fold)])
        assert rows.height == N_ROWS
        first = pl.int_range(pl.len()) == 0
        bad = rows.with_columns(
            pr_auc=pl.when(first).then(float("nan")).otherwise(pl.col("pr_auc")),
            train_groups=pl.when(pl.int_range(pl.len()) == 1)
            .then(pl.col("train_groups") + "," + fold)
            .otherwise(pl.col("train_groups")),
        )
        replace_partitions(conn, bad, [(config, fold)])

    checks = run_checks(probes, instance, FOLD_CHECKS, built)
    assert_failed(checks["metrics_finite"])
    assert checks["metrics_finite"].metadata["n_failing"].value == 1
    assert_failed(checks["no_group_leakage"])
    assert checks["no_group_leakage"].metadata["n_failing"].value == 1

    refused = probes.run(instance, [A.AGGREGATE], raise_on_error=False)
    message = refusal(refused)
    assert "refusing to run" in message
    for name in ("metrics_finite", "no_group_leakage"):
        assert f"probes/sweep/fold_results:{name} partition {str(built)!r} failed" in message
    assert (
        warehouse.query(f"select count(*) as n from {QUALIFIED}")["n"][0] == N_ROWS
    )  # untouched, nothing aggregated
    assert instance.get_latest_materialization_event(dg.AssetKey(A.AGGREGATE)) is None


def _results(**cols) -> pl.DataFrame:
    n = len(next(iter(cols.values())))
    base = {
        "config_id": ["c"] * n,
        "fold": ["problem_00"] * n,
        "role": ["candidate"] * n,
        "probe_seed": list(range(n)),
        "pr_auc": [0.7] * n,
        "roc_auc": [0.8] * n,
        "base_rate": [0.3] * n,
        "n_test": [10] * n,
        "n_test_positive": [3] * n,
    }
    return pl.DataFrame({**base, **cols})


def test_nonfinite_metric_rows_passes_clean_rows():
    assert nonfinite_metric_rows(_results(pr_auc=[0.5, 0.9])).height == 0


@pytest.mark.parametrize("col", ["pr_auc", "base_rate"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_nonfinite_metric_rows_flags_bad_pr_auc_and_base_rate(col, value):
    offending = nonfinite_metric_rows(_results(**{col: [0.5, value, 0.6]}))
    assert offending["probe_seed"].to_list() == [1]
    assert set(offending.columns) == {
        "config_id",
        "fold",
        "role",
        "probe_seed",
        "pr_auc",
        "roc_auc",
        "base_rate",
    }


def test_nonfinite_metric_rows_roc_auc_only_required_with_both_classes():
    df = _results(
        roc_auc=[None, None, None, float("nan"), 0.8],
        n_test_positive=[3, 0, 10, 3, 3],  # both classes, no positive, all positive, both, both
        n_test=[10, 10, 10, 10, 10],
    )
    offending = nonfinite_metric_rows(df)
    assert offending["probe_seed"].to_list() == [0, 3]
    assert offending["roc_auc"][0] is None and math.isnan(offending["roc_auc"][1])
