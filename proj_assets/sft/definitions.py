"""The sft domain's whole surface, built from the profile it is given: base model, test set,
pilot iterations, scale shards, critic, training set, adapter and paired evaluation, their checks,
the pilot, shard and chain jobs, and the base model the domain starts from."""

from pathlib import Path

import dagster as dg

from proj_assets.cluster_settings import training_queue_tags
from proj_assets.partitions import sft_pilot_partitions, sft_shard_partitions
from proj_assets.profiles import Profile
from proj_assets.sft.assets_data import data_assets
from proj_assets.sft.assets_eval import eval_assets
from proj_assets.sft.assets_generation import generation_assets
from proj_assets.sft.assets_model import model_assets
from proj_assets.sft.assets_pilot import pilot_assets
from proj_assets.sft.checks import sft_checks
from proj_assets.sft.keys import CRITIC, PILOT, SHARDS
from proj_assets.shared.jobs import asset_job, asset_of
from proj_resources import Warehouse, warehouse_path
from proj_resources.models import ModelSource


def build_sft(profile: Profile, root: Path) -> dg.Definitions:
    cfg = profile.sft
    shards = sft_shard_partitions(cfg.n_shards)
    tags = training_queue_tags(profile.compute.device)
    warehouse = Warehouse(database=str(warehouse_path(profile.name, root)))
    budget = profile.platform.budgets.get("sft")  # every spending step projects its cost against it
    assets = [
        *model_assets(cfg, budget, tags, warehouse),
        *data_assets(cfg, shards, warehouse),
        *pilot_assets(cfg, budget, tags, warehouse),
        *generation_assets(cfg, shards, budget, tags, warehouse),
        *eval_assets(cfg, budget, tags, warehouse),
    ]
    chain = [a for a in assets if a.partitions_def is None]
    jobs = [
        asset_job(
            "sft_pilot_job",
            [asset_of(assets, PILOT)],
            "SFT pilot iterations: one run per sampling-settings "
            "iteration (registered by sft/data/pilot_settings).",
            partitions_def=sft_pilot_partitions,
        ),
        asset_job(
            "sft_shards_job",
            [asset_of(assets, SHARDS), asset_of(assets, CRITIC)],
            "Generate, QC and "
            "critic-score scale-data shards, one run per shard (the QC gate stops the critic).",
            partitions_def=shards,
        ),
        asset_job(
            "sft_chain_job",
            chain,
            "The SFT chain (every unpartitioned sft asset, in dependency order).",
        ),
    ]
    return dg.Definitions(
        assets=assets,
        asset_checks=sft_checks(cfg, shards),
        jobs=jobs,
        resources={
            "base_model": ModelSource(path=cfg.base_model_path, revision=cfg.base_model_revision)
        },
    )
