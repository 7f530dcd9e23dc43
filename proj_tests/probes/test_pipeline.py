"""The probes assets in-process on a real Dagster instance: one config x fold end to end, the
activation cache hit, a corpus gate that blocks downstream work, and partition registration at scale."""

import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from proj_assets.probes import assets as A
from proj_assets.probes import checks as C
from proj_assets.probes.corpus import coerce_corpus
from proj_assets.probes.corpus_generator import generate_corpus
from proj_assets.probes.fold_run import N_CONTROL_SEEDS

ASSETS = [A.corpus, A.token_activations, A.manifest, A.fold_results, A.aggregate_metrics, A.screening, A.summary]
CHECKS = [C.groups_and_labels_valid, C.activations_finite, C.index_matches_cache, C.no_group_leakage,
          C.metrics_finite, C.release_gate]


def run(instance, resources, keys, partition=None, raise_on_error=True):
    return dg.materialize(ASSETS + CHECKS, selection=dg.AssetSelection.assets(*keys), resources=resources,
                          instance=instance, partition_key=partition, raise_on_error=raise_on_error)


def test_one_config_fold_materializes_in_process(tmp_path, instance, probes_profile, probe_resources):
    first = run(instance, probe_resources, [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
    assert all(e.passed for e in first.get_asset_check_evaluations())
    configs, folds = instance.get_dynamic_partitions("probe_config"), instance.get_dynamic_partitions("probe_fold")
    assert len(configs) == 1 and folds == ["problem_00", "problem_01", "problem_02"]

    result = run(instance, probe_resources, [A.FOLD_RESULTS], dg.MultiPartitionKey({"config": configs[0], "fold": folds[1]}))
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"no_group_leakage": True, "metrics_finite": True}
    rows = probe_resources["warehouse"].query("select * from probes_sweep.fold_results")
    assert rows.height == 2 + 1 + N_CONTROL_SEEDS  # candidate x 2 seeds, the position baseline, the controls
    assert rows.filter(pl.col("role") != "candidate")["reference_converged"].all()
    assert set(rows["fold"]) == {"problem_01"} and rows["model_revision"].null_count() == 0
    assert rows.filter(pl.col("role") == "candidate")["pr_auc"].min() > 0
    meta = next(m for m in result.asset_materializations_for_node("probes__sweep__fold_results")).metadata
    assert meta["probe_type"].value == "linear_probe" and meta["layer"].value == 2
    assert meta["learning_rate"].value == 0.05 and "baseline_pr_auc" in meta
    (references,) = (tmp_path / "artifacts" / "probes" / "references").glob("*.parquet")  # fit once per fold
    fitted_at = references.stat().st_mtime_ns
    other = dg.MultiPartitionKey({"config": configs[0], "fold": folds[2]})
    run(instance, probe_resources, [A.FOLD_RESULTS], other)
    run(instance, probe_resources, [A.FOLD_RESULTS], dg.MultiPartitionKey({"config": configs[0], "fold": folds[1]}))
    assert references.stat().st_mtime_ns == fitted_at  # reused, not refit
    assert len(list(references.parent.glob("*.parquet"))) == 2

    again = run(instance, probe_resources, [A.ACTIVATIONS])
    meta = again.asset_materializations_for_node("probes__features__token_activations")[0].metadata
    assert meta["cache_hits"].value == 1

    folder = Path(meta["layers"].value["2"]["path"])
    (folder / "activations.f16").write_bytes((folder / "activations.f16").read_bytes()[:-64])  # truncated
    rebuilt = run(instance, probe_resources, [A.ACTIVATIONS])
    meta = rebuilt.asset_materializations_for_node("probes__features__token_activations")[0].metadata
    assert meta["cache_hits"].value == 0 and all(e.passed for e in rebuilt.get_asset_check_evaluations())


def test_bad_corpus_fails_its_gate_and_blocks_activations(tmp_path, instance, probes_profile, probe_resources):
    corpus = coerce_corpus(generate_corpus(3, 2, 0.0, seed=3), "g")
    bad = corpus.with_columns(label=pl.when(pl.col("group_id") == "problem_02").then(0).otherwise(pl.col("label")))
    path = tmp_path / "corpus.parquet"
    bad.write_parquet(path)
    probes_profile(corpus={"source": "path", "path": str(path)})

    result = run(instance, probe_resources, [A.CORPUS, A.ACTIVATIONS], raise_on_error=False)
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "groups_and_labels_valid")
    assert not evaluation.passed and evaluation.metadata["n_failing"].value == 1
    assert "problem_02" in evaluation.metadata["offending_sample"].value
    assert not result.asset_materializations_for_node("probes__features__token_activations")

    later = run(instance, probe_resources, [A.ACTIVATIONS], raise_on_error=False)
    assert not later.success
    failure = next(e for e in later.all_events if e.event_type_value == "STEP_FAILURE")
    error, messages = failure.event_specific_data.error, []
    while error is not None:  # the gate's own message, not a stack trace that mentions the name
        messages.append(error.message)
        error = error.cause
    assert any("refusing to run" in m and "probes/raw/corpus:groups_and_labels_valid" in m for m in messages), messages
    assert not (tmp_path / "artifacts" / "probes" / "activations").exists()


def test_registering_a_research_sized_sweep_is_fast(instance):
    configs = [f"{i:012x}" for i in range(768)]
    folds = [f"problem_{i:02d}" for i in range(20)]
    started = time.perf_counter()
    instance.add_dynamic_partitions("probe_config", configs)
    instance.add_dynamic_partitions("probe_fold", folds)
    from proj_assets.partitions import probe_config_fold_partitions

    with dg.partition_loading_context(dynamic_partitions_store=instance):
        n_keys = len(probe_config_fold_partitions.get_partition_keys())
    elapsed = time.perf_counter() - started
    assert n_keys == 768 * 20
    assert elapsed < 10, f"registering and listing 15360 partitions took {elapsed:.1f}s"


def test_whole_chain_through_the_release_gate(instance, probes_profile, probe_resources):
    """Every fold of the tiny sweep, then aggregate, screening and summary with its release gate:
    the gate evaluates on nested confirmation folds and reports candidate, baseline and control."""
    run(instance, probe_resources, [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
    (config,) = instance.get_dynamic_partitions("probe_config")
    for fold in instance.get_dynamic_partitions("probe_fold"):
        run(instance, probe_resources, [A.FOLD_RESULTS], dg.MultiPartitionKey({"config": config, "fold": fold}))
    result = run(instance, probe_resources, [A.AGGREGATE, A.SCREENING, A.SUMMARY], raise_on_error=False)
    gate = next(e for e in result.get_asset_check_evaluations() if e.check_name == "release_gate")
    assert gate.metadata["measured"].value == gate.metadata["measured"].value  # finite: 3 confirmation folds
    for role in ("candidate", "baseline", "control"):
        assert f"{role}_pr_auc_ci_low" in gate.metadata
    summary = result.asset_materializations_for_node("probes__report__summary")[0].metadata
    assert "probe_layer_plot" in summary and "confirmation_folds" in summary
    assert summary["release_would_pass"].value == gate.passed
