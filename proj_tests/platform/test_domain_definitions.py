"""Each domain builds its whole surface from the profile it is given: definitions for two
profiles coexist in one process, a job that selects nothing fails the load, and in both profiles
every asset that reads gated data checks the merged graph's gates before any op reads it."""

from pathlib import Path

import dagster as dg
import pytest

from proj_assets.definitions import build_definitions
from proj_assets.profiles import load_profile
from proj_assets.shared.gates import GATED_ATTR, GATES_METADATA, upstream_gates
from proj_assets.shared.jobs import asset_job, require_jobs_select_assets

DOMAINS = ("market", "scaling", "probes", "sft", "platform")


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> dict[str, dg.Definitions]:
    root = tmp_path_factory.mktemp("two_profiles")
    return {
        name: build_definitions(load_profile(name), root / name) for name in ("demo", "research")
    }


def _partition_keys(defs: dg.Definitions, key: list[str]) -> list[str]:
    return defs.resolve_asset_graph().get(dg.AssetKey(key)).partitions_def.get_partition_keys()


def test_two_profiles_in_one_process_hold_their_own_partitions_sources_and_resources(both):
    demo, research = load_profile("demo"), load_profile("research")
    assert _partition_keys(both["demo"], ["market", "raw", "ohlcv"]) == demo.market.tickers
    assert _partition_keys(both["research"], ["market", "raw", "ohlcv"]) == research.market.tickers
    assert demo.market.tickers != research.market.tickers
    cells = {name: _partition_keys(d, ["scaling", "hpo", "trials"]) for name, d in both.items()}
    assert {k.split("|")[0] for k in cells["research"]} == set(research.scaling.budgets)
    assert (
        {k.split("|")[0] for k in cells["demo"]}
        == set(demo.scaling.budgets)
        != set(research.scaling.budgets)
    )
    shards = {name: _partition_keys(d, ["sft", "data", "scale_shards"]) for name, d in both.items()}
    assert (len(shards["demo"]), len(shards["research"])) == (
        demo.sft.n_shards,
        research.sft.n_shards,
    )
    sources = {name: d.resources["market_source"].kind for name, d in both.items()}
    assert (
        sources == {"demo": demo.market.source, "research": research.market.source}
        and len(set(sources.values())) == 2
    )
    warehouses = {name: d.resources["warehouse"].database for name, d in both.items()}
    assert warehouses["demo"].endswith("demo/warehouse/demo.duckdb")
    assert warehouses["research"].endswith("research/warehouse/research.duckdb")
    assert (
        both["demo"].resources["base_model"].path != both["research"].resources["base_model"].path
    )
    # the graph shape follows the profile too: one trial-worker op per study worker
    for name, profile in (("demo", demo), ("research", research)):
        trials = next(
            a for a in both[name].assets if dg.AssetKey(["scaling", "hpo", "trials"]) in a.keys
        )
        workers = [n for n in trials.node_def.node_names() if "trials_worker" in n]
        assert len(workers) == profile.scaling.study_workers


def test_every_domain_folder_exports_one_builder():
    root = Path(__file__).resolve().parents[2] / "proj_assets"
    for domain in DOMAINS:
        text = (root / domain / "definitions.py").read_text()
        assert text.count("\ndef build_") == 1, domain


def test_a_job_that_selects_nothing_fails_the_load():
    @dg.asset
    def lonely() -> int:
        return 1

    empty = asset_job("empty_job", dg.AssetSelection.groups("no_such_group"), "selects nothing")
    with pytest.raises(ValueError, match=r"\['empty_job'\] select no asset"):
        require_jobs_select_assets(dg.Definitions(assets=[lonely], jobs=[empty]))
    require_jobs_select_assets(
        dg.Definitions(assets=[lonely], jobs=[asset_job("ok_job", [lonely], "one asset")])
    )


def _is_gated(op: dg.OpDefinition, asset: dg.AssetsDefinition) -> bool:
    return getattr(op.compute_fn.decorated_fn, GATED_ATTR, None) in asset.keys


def _ungated_readers(asset: dg.AssetsDefinition) -> list[str]:
    """The ops that read the asset's upstream data before a gate was checked: for an op asset its
    body unless wrapped by `gates.gated`; for a graph asset each op that takes a graph input and
    is neither wrapped nor fed by a wrapped op (so it cannot start before the gate passed)."""
    node = asset.node_def
    if not isinstance(node, dg.GraphDefinition):
        return [] if _is_gated(node, asset) else [node.name]
    readers = {mapping.maps_to.node_name for mapping in node.input_mappings}
    structure = node.dependency_structure
    return sorted(
        name
        for name in readers
        if not _is_gated(node.node_named(name).definition, asset)
        and not any(
            _is_gated(output.node.definition, asset)
            for output in structure.all_upstream_outputs_from_node(name)
        )
    )


@pytest.mark.parametrize("profile", ["demo", "research"])
def test_every_asset_that_reads_gated_data_checks_its_gates_before_reading(both, profile):
    """Structure in both profiles' graphs: the gates metadata equals the graph's upstream blocking
    checks and no op reads the data before the gate. That a gated body refuses on a failed check
    is shown by test_gate_reviews.py and the domains' gate tests (e.g. market → seed_runs)."""
    defs = both[profile]
    graph = defs.resolve_asset_graph()
    covered, exempt = set(), {}
    for asset in defs.assets:
        for key, spec in asset.specs_by_key.items():
            needed = upstream_gates(graph, key)
            meta = spec.metadata.get(GATES_METADATA)
            value = getattr(meta, "value", meta)
            if isinstance(value, str):  # declared not_gated(reason)
                assert value.startswith("not gated: "), key
                exempt[key.to_user_string()] = value
            elif needed:
                assert value == needed, (
                    f"{key.to_user_string()}: gates metadata {value} != graph {needed}"
                )
                assert not _ungated_readers(asset), (
                    f"{key.to_user_string()} reads gated data in {_ungated_readers(asset)} "
                    "before its gates are checked"
                )
                covered.add(key.to_user_string())
    assert {
        "scaling/hpo/seed_runs",
        "market/processed/targets",
        "scaling/hpo/trials",
        "probes/sweep/fold_results",
        "sft/model/adapter",
        "sft/eval/paired_results",
    } <= covered
    assert set(exempt) == {"market/raw/manifest", "sft/report/pilot_comparison"}
    targets = upstream_gates(graph, dg.AssetKey(["market", "processed", "targets"]))
    assert "market/raw/ohlcv" in [
        g["upstream"] for g in targets
    ]  # targets re-checks the OHLCV gates
