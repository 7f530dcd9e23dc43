"""sft fixtures: a very small profile (tiny model, few examples), an in-process runner over the
whole sft domain built from a profile, stand-in upstream assets and how a refusal is read."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from proj_assets.profiles import Profile
from proj_assets.sft.settings import SftSettings
from proj_tests.definitions_helpers import demo_profile, domain_defs, materializable, with_settings

TINY_SFT = {
    "n_shards": 2,
    "demo_model": {
        "n_documents": 300,
        "blocks_per_document": 4,
        "vocab_size": 300,
        "hidden_size": 32,
        "n_layers": 2,
        "n_heads": 2,
        "seq_len": 128,
        "train_steps": 150,
        "batch_size": 8,
        "learning_rate": 0.01,
        # one answer format: these tests exercise the machinery, not the format effect (bench/)
        "answer_styles": {"plain": 1.0},
    },
    "prompt_shots": 1,
    "critic_shots": 1,
    "pilot_size": 20,
    "examples_per_shard": 20,
    "test_per_type": 4,
    "sampling": {"max_new_tokens": 12, "batch_size": 32},
    "qc": {"runaway_max": 1.0, "token_limit_max": 1.0},
    "lora": {"epochs": 2, "batch_size": 4, "r": 2, "alpha": 4},
    "eval_max_new_tokens": 8,
}


def tiny(**sft) -> Profile:
    """The demo profile whose whole sft section is TINY_SFT (updated by `sft`), on one thread
    (tiny tensors: one thread is faster, and the cores are shared)."""
    return with_settings(
        demo_profile(), sft=SftSettings(**{**TINY_SFT, **sft}), compute={"threads": 1}
    )


class SftRunner:
    """Materializes the sft domain of `profile` in `instance`, outputs under `root`: every sft asset
    and check, as the code location builds them (gates resolved), is in each run; `keys` pick what runs."""

    def __init__(self, profile: Profile, root: Path, instance: dg.DagsterInstance):
        self.cfg, self.instance = profile.sft, instance
        self.defs = domain_defs(
            "sft", profile, root
        )  # as the code location builds it: gates resolved
        self.resources = self.defs.resources

    def __call__(
        self,
        keys: Sequence[list[str]],
        partition: str | None = None,
        stand_ins: Sequence["dg.AssetsDefinition | StandIn"] = (),
        raise_on_error: bool = True,
        tags=None,
    ):
        """Materialize `keys` (with their checks); each of `stand_ins` replaces the real asset of its key."""
        # not isinstance(s, StandIn): pytest loads this file as two modules (conftest and proj_tests)
        built = [s if isinstance(s, dg.AssetsDefinition) else s.build(self.cfg) for s in stand_ins]
        replaced = {key for asset in built for key in asset.keys}
        kept = [d for d in materializable(self.defs) if not d.keys & replaced]
        return dg.materialize(
            [*built, *kept],
            selection=[dg.AssetKey(k) for k in keys],
            partition_key=partition,
            resources=self.resources,
            instance=self.instance,
            raise_on_error=raise_on_error,
            tags=tags,
        )

    def selected_pilot(self) -> str:
        """The profile's selected pilot iteration, registered as a partition of the instance."""
        from proj_assets.partitions import sft_pilot_partitions
        from proj_assets.sft.iterations import selected_iteration

        key = selected_iteration(self.cfg)
        self.instance.add_dynamic_partitions(sft_pilot_partitions.name, [key])
        return key

    def shards(self) -> list[str]:
        from proj_assets.partitions import sft_shard_partitions

        return sft_shard_partitions(self.cfg.n_shards).get_partition_keys()


@pytest.fixture
def tiny_runner(tmp_path: Path, instance) -> SftRunner:
    """The sft domain of the tiny profile."""
    return SftRunner(tiny(), tmp_path / "out", instance)


@pytest.fixture
def demo_runner(tmp_path: Path, instance) -> SftRunner:
    """The sft domain of the demo profile (its QC thresholds, sizes and budget)."""
    return SftRunner(demo_profile(), tmp_path, instance)


@dataclass(frozen=True)
class StandIn:
    """An asset with the real key, partitions and I/O manager whose rows are given (a frame, or a
    function of the partition key giving it): what it stands in for is not under test. Built by
    `SftRunner` for its profile: pilot, shard and critic rows get the input fingerprint the
    real asset would stamp now (`input_versions.py`), unless they carry one already."""

    key: list[str]
    frame: Callable | pl.DataFrame
    partitions_def: dg.PartitionsDefinition | None = None
    partition_expr: str | None = None
    metadata: dict | None = None

    @property
    def keys(self) -> set[dg.AssetKey]:
        return {dg.AssetKey(self.key)}

    def current_inputs(self, cfg: SftSettings, context) -> dict[str, str] | None:
        from proj_assets.sft import input_versions as v
        from proj_assets.sft.assets_sampling import model_revision_of
        from proj_assets.sft.iterations import iterations, selected_iteration
        from proj_assets.sft.keys import CRITIC, PILOT, SHARDS

        revision = model_revision_of(context)
        if self.key == PILOT:
            sampling = iterations(cfg).get(context.partition_key)
            return v.pilot_inputs(cfg, revision, sampling) if sampling else None
        if self.key == SHARDS:
            return v.shard_inputs(cfg, revision)
        if self.key == CRITIC:
            return v.critic_inputs(cfg, revision, selected_iteration(cfg))
        return None

    def build(self, cfg: SftSettings) -> dg.AssetsDefinition:
        from proj_assets.shared.conventions import table_metadata
        from proj_resources.fingerprints import FINGERPRINT, stamp_inputs

        spec = self

        @dg.asset(
            key=self.key,
            group_name="sft",
            partitions_def=self.partitions_def,
            metadata=table_metadata(self.key, partition_expr=self.partition_expr),
        )
        def rows(context: dg.AssetExecutionContext) -> dg.Output:
            df = spec.frame(context.partition_key) if callable(spec.frame) else spec.frame
            inputs = spec.current_inputs(cfg, context)
            if inputs is not None and FINGERPRINT not in df.columns:
                df = stamp_inputs(df, inputs)
            return dg.Output(df, metadata=spec.metadata or {})

        return rows


def stand_in(
    key: list[str],
    frame,
    partitions_def: dg.PartitionsDefinition | None = None,
    partition_expr: str | None = None,
    metadata: dict | None = None,
) -> StandIn:
    """A stand-in for `key` (see `StandIn`)."""
    return StandIn(key, frame, partitions_def, partition_expr, metadata)


def stand_in_pilot(df: pl.DataFrame, metadata: dict | None = None) -> StandIn:
    """A pilot of the rows given, in any iteration; `pilot_iteration` is set to the partition."""
    from proj_assets.partitions import sft_pilot_partitions
    from proj_assets.sft.keys import PILOT

    return stand_in(
        PILOT,
        lambda key: df.with_columns(pl.lit(key).alias("pilot_iteration")),
        sft_pilot_partitions,
        "pilot_iteration",
        metadata,
    )


def stand_in_base_model(folder: Path) -> dg.AssetsDefinition:
    """A base model that is the model folder given (its completion_mode_only check runs on it),
    recording its revision as the real asset does."""
    from proj_assets.sft.keys import BASE_MODEL
    from proj_resources.models import weights_revision

    @dg.asset(key=BASE_MODEL, group_name="sft")
    def base_model() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(folder)),
                "model_revision": weights_revision(str(folder)),
            }
        )

    return base_model


def crafted_pilot(n: int, n_runaway: int, n_limit: int) -> pl.DataFrame:
    """Pilot rows whose flags are set by hand (the generations themselves are not under test here)."""
    return pl.DataFrame(
        {
            "example_id": [f"pilot-{i:06d}" for i in range(n)],
            "task_type": ["add"] * n,
            "instruction": ["Add 1 and 2."] * n,
            "completion": [" 3\nInstruction: Add" if i < n_runaway else " 3" for i in range(n)],
            "finish_reason": ["length" if i < n_limit else "stop" for i in range(n)],
            "n_tokens": [24 if i < n_limit else 3 for i in range(n)],
            "runaway": [i < n_runaway for i in range(n)],
            "token_limit": [i < n_limit for i in range(n)],
            "critic_margin": [1.0 if i % 2 else -1.0 for i in range(n)],
            "answer_correct": [bool(i % 2) for i in range(n)],
        }
    )


def step_failure(run):
    (failure,) = [e for e in run.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.event_specific_data


def failure_message(run) -> str:
    """The error of the run's one failed step."""
    return str(step_failure(run).error)


def refused_gates(run) -> list[str]:
    """The open gates the run's one failed step refused on (one line each), empty when it failed otherwise."""
    data = step_failure(run).user_failure_data
    gates = data.metadata.get("failed_gates") if data else None
    return list(gates.value) if gates else []


@pytest.fixture(scope="session")
def demo_tokenizer():
    """The demo's byte-level BPE, trained on a small generated corpus (about a second)."""
    from proj_assets.sft.demo_model import pretraining_documents, train_tokenizer
    from proj_assets.sft.settings import DemoModelSettings

    return train_tokenizer(pretraining_documents(DemoModelSettings(n_documents=200)), 400)


@pytest.fixture(scope="session")
def untrained_model_dir(tmp_path_factory, demo_tokenizer) -> Path:
    """A randomly initialised micro Llama saved like a real model folder (safetensors + tokenizer)."""
    import torch

    from proj_assets.sft.demo_model import build_model
    from proj_assets.sft.settings import DemoModelSettings

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("micro_model")
    model = build_model(
        DemoModelSettings(hidden_size=16, n_layers=1, n_heads=2, seq_len=128), demo_tokenizer
    )
    model.save_pretrained(folder, safe_serialization=True)
    demo_tokenizer.save_pretrained(folder)
    return folder
