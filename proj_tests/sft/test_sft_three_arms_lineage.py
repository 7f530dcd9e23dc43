"""lineage selects an upstream materialization by partition and by the versions the reader needs,
not simply the newest event of the key."""

import dagster as dg
import pytest

from proj_assets.sft.lineage import latest_artifact_path, latest_metadata

KEY = ["sft", "model", "adapter"]


def record(instance, metadata: dict, partition: str | None = None) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=KEY, partition=partition, metadata=metadata)
    )


def test_latest_matching_materialization_of_the_partition(tmp_path, instance):
    context = dg.build_asset_context(instance=instance)
    old, new = tmp_path / "trained_on_rev1", tmp_path / "trained_on_rev2"
    old.mkdir()
    new.mkdir()
    record(instance, {"path": dg.MetadataValue.path(str(old)), "base_model_revision": "rev1"})
    for i in range(25):  # more than one page of newer events, none for rev1
        record(
            instance,
            {"path": dg.MetadataValue.path(str(new)), "base_model_revision": "rev2", "i": i},
        )
    assert latest_artifact_path(context, KEY) == new
    assert latest_artifact_path(context, KEY, matching={"base_model_revision": "rev1"}) == old
    with pytest.raises(
        dg.Failure, match="with {'base_model_revision': 'rev3'} has no materialization"
    ):
        latest_artifact_path(context, KEY, matching={"base_model_revision": "rev3"})

    record(instance, {"seconds": 1.0}, partition="shard_00")
    record(instance, {"seconds": 2.0}, partition="shard_01")
    assert latest_metadata(context, KEY, "shard_00")["seconds"] == 1.0
    assert latest_metadata(context, KEY, "shard_02") == {}
    new.rmdir()
    with pytest.raises(dg.Failure, match="no longer exists"):
        latest_artifact_path(context, KEY, matching={"base_model_revision": "rev2"})
