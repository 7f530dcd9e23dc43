"""Finding what an upstream non-tabular asset wrote (its files, its versions) through the run's
instance: the latest materialization of the partition asked for whose metadata holds the versions
the reader depends on now, never simply the newest event of the key (which may be another
partition's, or an adapter trained on another base model)."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from proj_assets.sft.settings import SftSettings
from proj_assets.shared.instance_reads import materializations


def _plain(meta: Mapping) -> dict:
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def _where(key: list[str], partition: str | None, matching: Mapping[str, object] | None) -> str:
    text = "/".join(key) + (f" partition {partition}" if partition else "")
    return text + (f" with {dict(matching)}" if matching else "")


def latest_metadata(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext,
    key: list[str],
    partition: str | None = None,
    matching: Mapping[str, object] | None = None,
) -> dict:
    """The metadata (plain values) of `key`'s latest materialization of `partition` (any when
    None) whose metadata has every value in `matching`; {} when there is none."""
    for record in materializations(context.instance, dg.AssetKey(key), partition):
        event = record.asset_materialization
        meta = _plain(event.metadata) if event else {}
        if all(meta.get(k) == v for k, v in (matching or {}).items()):
            return meta
    return {}


def latest_artifact_path(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext,
    key: list[str],
    partition: str | None = None,
    matching: Mapping[str, object] | None = None,
) -> Path:
    """The `path` of the materialization `latest_metadata` selects; a clear error when there is
    none or its files are gone."""
    meta = latest_metadata(context, key, partition, matching)
    if "path" not in meta:
        raise dg.Failure(
            f"{_where(key, partition, matching)} has no materialization with a path yet: "
            "materialize it first"
        )
    path = Path(meta["path"])
    if not path.exists():
        raise dg.Failure(
            f"{_where(key, partition, matching)} was materialized at {path}, which no longer "
            "exists: re-materialize it"
        )
    return path


@dataclass(frozen=True)
class EvalInputs:
    """What the paired evaluation reads now: the base model folder, the adapter trained on that
    base (the latest adapter whose `base_model_revision` is the base's `model_revision`), its
    method, and the input versions (`evaluation.input_versions`) rows are stamped and selected by."""

    base_path: Path
    adapter_path: Path
    method: str
    versions: dict[str, str]


def eval_inputs(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext,
    cfg: SftSettings,
) -> EvalInputs:
    from proj_assets.sft.evaluation import input_versions
    from proj_assets.sft.keys import ADAPTER, BASE_MODEL, TEST_INSTRUCTIONS

    base_path = latest_artifact_path(context, BASE_MODEL)
    revision = latest_metadata(context, BASE_MODEL).get("model_revision")
    if revision is None:
        raise dg.Failure(f"{'/'.join(BASE_MODEL)}'s latest materialization has no model_revision")
    trained_on = {"base_model_revision": revision}
    adapter_path = latest_artifact_path(context, ADAPTER, matching=trained_on)
    adapter = latest_metadata(context, ADAPTER, matching=trained_on)
    test_set = latest_metadata(context, TEST_INSTRUCTIONS).get("content_hash")
    if test_set is None:
        raise dg.Failure(
            f"{'/'.join(TEST_INSTRUCTIONS)} has no materialization with a content_hash"
        )
    return EvalInputs(
        base_path,
        adapter_path,
        adapter.get("method", "lora"),
        input_versions(cfg, revision, adapter["adapter_hash"], test_set),
    )
