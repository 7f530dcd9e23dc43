"""The probes assets in-process on a real Dagster instance: one config x fold end to end, the
activation cache hit, a corpus gate that blocks downstream work, and partition registration at scale."""

import time
from pathlib import Path

import dagster as dg
import polars as pl
import yaml

from proj_assets.probes import assets as A
from proj_assets.probes.corpus import coerce_corpus
from proj_assets.probes.corpus_generator import generate_corpus
from proj_assets.probes.fold_run import N_CONTROL_SEEDS
from proj_assets.probes.probe_models import matmul_dtype
from proj_tests.probes.conftest import TINY_SPEC, refusal


def test_one_config_fold_materializes_in_process(tmp_path, instance, probes):
    first = probes.run(instance, [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
    assert all(e.passed for e in first.get_asset_check_evaluations())
    configs, folds = (
        instance.get_dynamic_partitions("probe_config"),
        instance.get_dynamic_partitions("probe_fold"),
    )
    assert len(configs) == 1 and folds == ["problem_00", "problem_01", "problem_02"]

    result = probes.run(
        instance, [A.FOLD_RESULTS], dg.MultiPartitionKey({"config": configs[0], "fold": folds[1]})
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"no_group_leakage": True, "metrics_finite": True}
    rows = probes.resources["warehouse"].query("select * from probes_sweep.fold_results")
    assert (
        rows.height == 2 + 1 + N_CONTROL_SEEDS
    )  # candidate x 2 seeds, the position baseline, the controls
    assert rows.filter(pl.col("role") != "candidate")["reference_converged"].all()
    assert set(rows["fold"]) == {"problem_01"} and rows["model_revision"].null_count() == 0
    assert rows.filter(pl.col("role") == "candidate")["pr_auc"].min() > 0
    meta = next(
        m for m in result.asset_materializations_for_node("probes__sweep__fold_results")
    ).metadata
    assert meta["probe_type"].value == "linear_probe" and meta["layer"].value == 2
    assert meta["learning_rate"].value == 0.05 and "baseline_pr_auc" in meta
    assert meta["token_matmul_dtype"].value == str(matmul_dtype("auto", "cpu")).removeprefix(
        "torch."
    )  # the profile's auto
    (references,) = (tmp_path / "artifacts" / "probes" / "references").glob(
        "*.parquet"
    )  # fit once per fold
    fitted_at = references.stat().st_mtime_ns
    other = dg.MultiPartitionKey({"config": configs[0], "fold": folds[2]})
    probes.run(instance, [A.FOLD_RESULTS], other)
    probes.run(
        instance, [A.FOLD_RESULTS], dg.MultiPartitionKey({"config": configs[0], "fold": folds[1]})
    )
    assert references.stat().st_mtime_ns == fitted_at  # reused, not refit
    assert len(list(references.parent.glob("*.parquet"))) == 2

    again = probes.run(instance, [A.ACTIVATIONS])
    meta = again.asset_materializations_for_node("probes__features__token_activations")[0].metadata
    assert meta["cache_hits"].value == 1

    folder = Path(meta["layers"].value["2"]["path"])
    (folder / "activations.f16").write_bytes(
        (folder / "activations.f16").read_bytes()[:-64]
    )  # truncated
    rebuilt = probes.run(instance, [A.ACTIVATIONS])
    meta = rebuilt.asset_materializations_for_node("probes__features__token_activations")[
        0
    ].metadata
    assert meta["cache_hits"].value == 0 and all(
        e.passed for e in rebuilt.get_asset_check_evaluations()
    )


def test_bad_corpus_fails_its_gate_and_blocks_activations(tmp_path, instance, make_probes):
    corpus = coerce_corpus(generate_corpus(3, 2, 0.0, seed=3), "g")
    bad = corpus.with_columns(
        label=pl.when(pl.col("group_id") == "problem_02").then(0).otherwise(pl.col("label"))
    )
    path = tmp_path / "corpus.parquet"
    bad.write_parquet(path)
    probes = make_probes(corpus={"source": "path", "path": str(path)})

    result = probes.run(instance, [A.CORPUS, A.ACTIVATIONS], raise_on_error=False)
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "groups_and_labels_valid"
    )
    assert not evaluation.passed and evaluation.metadata["n_failing"].value == 1
    assert "problem_02" in evaluation.metadata["offending_sample"].value
    assert not result.asset_materializations_for_node("probes__features__token_activations")

    later = probes.run(instance, [A.ACTIVATIONS], raise_on_error=False)
    assert "probes/raw/corpus:groups_and_labels_valid" in refusal(later)
    assert not (tmp_path / "artifacts" / "probes" / "activations").exists()

    manifest = probes.run(
        instance, [A.MANIFEST], raise_on_error=False
    )  # gated too: registers nothing
    assert "probes/raw/corpus:groups_and_labels_valid" in refusal(manifest)
    assert instance.get_latest_materialization_event(dg.AssetKey(A.MANIFEST)) is None
    assert (
        instance.get_dynamic_partitions("probe_config")
        == []
        == instance.get_dynamic_partitions("probe_fold")
    )


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


def test_whole_chain_through_the_release_gate(instance, probes):
    """Every fold of the tiny sweep, then aggregate, screening and summary with its release gate:
    the gate evaluates on nested confirmation folds and reports candidate, baseline, control and
    chance; with 3 folds the sign-flip test cannot pass (it needs 6), and the gate says so."""
    probes.run(instance, [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
    (config,) = instance.get_dynamic_partitions("probe_config")
    for fold in instance.get_dynamic_partitions("probe_fold"):
        probes.run(
            instance, [A.FOLD_RESULTS], dg.MultiPartitionKey({"config": config, "fold": fold})
        )
    result = probes.run(instance, [A.AGGREGATE, A.SCREENING, A.SUMMARY], raise_on_error=False)
    gate = next(e for e in result.get_asset_check_evaluations() if e.check_name == "release_gate")
    assert not gate.passed and "3 folds cannot pass" in gate.description
    for role in ("candidate", "baseline", "control", "chance"):
        assert f"{role}_pr_auc_ci_low" in gate.metadata
    summary = result.asset_materializations_for_node("probes__report__summary")[0].metadata
    assert "probe_layer_plot" in summary and "confirmation_folds" in summary
    assert "nested_pr_auc_mean" in summary["best_of_n_vs_nested"].value
    assert summary["release_would_pass"].value == gate.passed


def test_a_backfill_run_trains_one_folds_configs_together(tmp_path, instance, make_probes):
    """Dagster plans a multi-run backfill of fold_results as ranges along the dimension with more
    keys (here, as in a research sweep, configs: 4 configs x 3 folds), one fold's configs, never
    holding a key that was not asked for; one range run trains the configs that share probe type
    and layer in one batch, writes and checks every partition of its range, and its rows equal
    those of one-partition runs."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from proj_assets.entrypoints.demo import Stage, plan_runs
    from proj_assets.partitions import probe_config_fold_partitions as pdef
    from proj_assets.probes.results_store import replace_partitions
    from proj_assets.shared.gates import _blocking_failures, latest_check_results

    spec = tmp_path / "grid.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                **TINY_SPEC,
                "factors": {**TINY_SPEC["factors"], "learning_rate": [0.01, 0.02, 0.05, 0.1]},
            }
        )
    )
    probes = make_probes(sweep_spec=str(spec))
    probes.run(instance, [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
    configs, folds = (
        instance.get_dynamic_partitions("probe_config"),
        instance.get_dynamic_partitions("probe_fold"),
    )
    key = lambda c, f: dg.MultiPartitionKey({"config": c, "fold": f})  # noqa: E731
    stage = Stage([dg.AssetKey(A.FOLD_RESULTS)], pdef)

    asked = [
        key(c, f) for c in configs for f in folds if (c, f) != (configs[1], folds[0])
    ]  # a hole in fold 0
    planned = plan_runs(probes.defs, instance, stage, asked)
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        covered = [
            k
            for _p, tags in planned
            for k in pdef.get_partition_keys_in_range(
                dg.PartitionKeyRange(
                    tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]
                )
            )
        ]
    assert sorted(covered) == sorted(asked)  # each asked key once, the hole never
    assert {
        len(
            {
                pdef.get_partition_key_from_str(k).keys_by_dimension["fold"]
                for k in pdef.get_partition_keys_in_range(
                    dg.PartitionKeyRange(
                        t[ASSET_PARTITION_RANGE_START_TAG], t[ASSET_PARTITION_RANGE_END_TAG]
                    ),
                    dynamic_partitions_store=instance,
                )
            }
        )
        for _p, t in planned
    } == {1}

    ((_none, tags),) = [
        run_
        for run_ in plan_runs(probes.defs, instance, stage, [key(c, folds[1]) for c in configs])
    ]
    ranged = probes.run(instance, [A.FOLD_RESULTS], tags=tags)
    meta = ranged.asset_materializations_for_node("probes__sweep__fold_results")[-1].metadata
    assert meta["partitions"].value == 4 and meta["trained_together"].value == 1
    for check in ("no_group_leakage", "metrics_finite"):
        latest = latest_check_results(
            instance, dg.AssetCheckKey(dg.AssetKey(A.FOLD_RESULTS), check)
        )
        assert {p for p, r in latest.items() if p and r.evaluation.passed} == {
            key(c, folds[1]) for c in configs
        }
    gate_keys = [
        dg.AssetCheckKey(dg.AssetKey(A.FOLD_RESULTS), c)
        for c in ("no_group_leakage", "metrics_finite")
    ]
    assert _blocking_failures(instance, gate_keys, [key(c, folds[1]) for c in configs]) == ([], [])
    query = "select config_id, role, probe_seed, pr_auc, roc_auc from probes_sweep.fold_results order by all"
    together = probes.resources["warehouse"].query(query)
    assert together["config_id"].n_unique() == 4 and together.height == 4 * (
        2 + 1 + N_CONTROL_SEEDS
    )
    for config in configs:
        probes.run(instance, [A.FOLD_RESULTS], key(config, folds[1]))
    alone = probes.resources["warehouse"].query(query)
    assert alone.select("config_id", "role", "probe_seed").equals(
        together.select("config_id", "role", "probe_seed")
    )
    assert max(abs(a - b) for a, b in zip(alone["pr_auc"], together["pr_auc"], strict=False)) < 1e-6

    broken = key(
        configs[2], folds[1]
    )  # one partition of the range goes bad: only it fails, and blocks
    with probes.resources["warehouse"].get_connection() as conn:
        rows = conn.execute(
            "select * from probes_sweep.fold_results where config_id = ?", [configs[2]]
        ).pl()
        replace_partitions(
            conn, rows.with_columns(pr_auc=pl.lit(float("nan"))), [(configs[2], folds[1])]
        )
    rechecked = probes.run_checks(
        instance, [dg.AssetCheckKey(dg.AssetKey(A.FOLD_RESULTS), "metrics_finite")], tags=tags
    )
    assert not rechecked.success
    latest = latest_check_results(
        instance, dg.AssetCheckKey(dg.AssetKey(A.FOLD_RESULTS), "metrics_finite")
    )
    assert {p for p, r in latest.items() if p and not r.evaluation.passed} == {broken}
    _missing, failed = _blocking_failures(instance, gate_keys, [key(c, folds[1]) for c in configs])
    assert [r.partition for r in failed] == [broken]
