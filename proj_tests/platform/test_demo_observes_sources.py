"""`make demo` observes the observable sources before it materializes what is built on them.

Without that first observation the source has no version when its readers are materialized, and a
researcher's first Observe sources after the demo, with nothing changed, marks every reader
Unsynced. Here a file stands in for the probes' corpus source.
"""

from pathlib import Path

import dagster as dg

from proj_assets.entrypoints.demo import materialize_all, observe_sources
from proj_assets.platform.snapshot import stale_assets

SOURCE = dg.AssetKey(["t", "source", "corpus"])
READER = dg.AssetKey(["t", "raw", "corpus"])


def _defs(source_file: Path) -> dg.Definitions:
    @dg.observable_source_asset(key=SOURCE, group_name="t")
    def corpus_source() -> dg.DataVersion:
        return dg.DataVersion(source_file.read_text())

    @dg.asset(key=READER, group_name="t", deps=[corpus_source])
    def corpus() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    return dg.Definitions(assets=[corpus_source, corpus])


def _stale(instance, defs) -> dict[str, list[str]]:
    return {s.key: s.causes for s in stale_assets(instance, defs.resolve_asset_graph())}


def test_the_demo_observes_sources_first_so_only_a_real_change_shows_stale(tmp_path, capsys):
    source_file = tmp_path / "corpus.txt"
    source_file.write_text("v1")
    defs, instance = _defs(source_file), dg.DagsterInstance.ephemeral()

    summaries = materialize_all(defs, instance)
    assert [s.label for s in summaries] == [SOURCE.to_user_string(), READER.to_user_string()]
    assert all(s.success for s in summaries)
    observed = instance.get_latest_data_version_record(SOURCE)
    assert observed is not None and observed.asset_observation.data_version == "v1"
    assert "observing sources:" in capsys.readouterr().out

    observe_sources(defs, instance)  # nothing changed: nothing is stale
    assert _stale(instance, defs) == {}
    source_file.write_text("v2")
    observe_sources(defs, instance)
    assert _stale(instance, defs) == {
        READER.to_user_string(): [f"{SOURCE.to_user_string()}: has a new data version"]
    }


def test_groups_limit_the_observed_sources(tmp_path):
    source_file = tmp_path / "corpus.txt"
    source_file.write_text("v1")
    defs, instance = _defs(source_file), dg.DagsterInstance.ephemeral()
    assert observe_sources(defs, instance, ["other"]) == []
    assert instance.get_latest_data_version_record(SOURCE) is None
