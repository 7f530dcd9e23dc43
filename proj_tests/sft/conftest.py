"""sft fixtures: a very small profile (tiny model, few examples) and an in-process runner."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from proj_assets.profiles import PROFILES_DIR

TINY_SFT = {
    "n_shards": 2,  # must match the partitions built at import (demo profile)
    "demo_model": {"n_documents": 300, "blocks_per_document": 4, "vocab_size": 300, "hidden_size": 32,
                   "n_layers": 2, "n_heads": 2, "seq_len": 128, "train_steps": 150, "batch_size": 8,
                   "learning_rate": 0.01,
                   # one answer format: these tests exercise the machinery, not the format effect (bench/)
                   "answer_styles": {"plain": 1.0}},
    "prompt_shots": 1, "critic_shots": 1,
    "pilot_size": 20, "examples_per_shard": 20, "test_per_type": 4,
    "sampling": {"max_new_tokens": 12, "batch_size": 32},
    "qc": {"runaway_max": 1.0, "token_limit_max": 1.0},
    "lora": {"epochs": 2, "batch_size": 4, "r": 2, "alpha": 4},
    "eval_max_new_tokens": 8,
}


def selected_pilot(instance) -> str:
    """The active profile's selected pilot iteration, registered as a partition of `instance`."""
    from proj_assets.partitions import sft_pilot_partitions
    from proj_assets.sft.iterations import selected_iteration
    from proj_assets.sft.keys import sft_settings

    key = selected_iteration(sft_settings())
    instance.add_dynamic_partitions(sft_pilot_partitions.name, [key])
    return key


def stand_in_pilot(df, metadata: dict | None = None) -> dg.AssetsDefinition:
    """A pilot asset with the real key, partitions and I/O manager whose rows are given (the
    generations themselves are not under test); `pilot_iteration` is set to the partition."""
    from proj_assets.partitions import sft_pilot_partitions
    from proj_assets.shared.conventions import table_metadata
    from proj_assets.sft.keys import PILOT

    @dg.asset(key=PILOT, group_name="sft", partitions_def=sft_pilot_partitions,
              metadata=table_metadata(PILOT, partition_expr="pilot_iteration"))
    def pilot_generations(context) -> dg.Output:
        import polars as pl

        return dg.Output(df.with_columns(pl.lit(context.partition_key).alias("pilot_iteration")), metadata=metadata or {})

    return pilot_generations


@pytest.fixture
def tiny_profile(tmp_path: Path, monkeypatch) -> Path:
    """The demo profile with a very small sft section, made active through PROJ_PROFILE."""
    raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    raw["sft"] = TINY_SFT
    raw["compute"]["threads"] = 1  # tiny tensors: one thread is faster, and the cores are shared
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("PROJ_PROFILE", str(path))
    return path


@pytest.fixture
def sft_runner(tiny_profile: Path, tmp_path: Path):
    """run(keys, partition=None) materializes sft assets (with their checks) in one shared instance."""
    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile
    from proj_assets.sft import assets, checks

    all_assets = [getattr(assets, n) for n in assets.__all__]
    all_checks = [v for v in vars(checks).values() if isinstance(v, dg.AssetChecksDefinition)]
    resources = build_resources(load_profile(str(tiny_profile)), tmp_path / "out")
    with dg.instance_for_test() as instance:
        def run(keys: list[list[str]], partition: str | None = None, raise_on_error: bool = True):
            return dg.materialize([*all_assets, *all_checks], selection=[dg.AssetKey(k) for k in keys],
                                  partition_key=partition, resources=resources, instance=instance,
                                  raise_on_error=raise_on_error)
        run.instance = instance
        run.resources = resources
        yield run


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
    model = build_model(DemoModelSettings(hidden_size=16, n_layers=1, n_heads=2, seq_len=128), demo_tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    demo_tokenizer.save_pretrained(folder)
    return folder
