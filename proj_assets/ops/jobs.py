"""Jobs for each domain's repeatable work, defined once the domain's assets exist.

Other domains land at different times, so every job here is built from the loaded asset
definitions: a job whose assets are not (yet) defined is left out rather than breaking the code
location. Partitioned jobs are the backfill targets (`dagster job backfill -j <name>`).

Jobs run with the code location's executor (embedded: in-process, one process per run, see
proj_assets/ops/executor.py), except parallel ones, whose steps must overlap (an HPO cell's trial
workers): they take the executor `domain_jobs` is given for them (embedded: multiprocess).
"""

from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from proj_assets import partitions


@dataclass(frozen=True)
class JobSpec:
    name: str
    keys: tuple[tuple[str, ...], ...]  # asset keys; a group name instead selects that whole group
    partitions_def: dg.PartitionsDefinition | None
    description: str
    group: str | None = None  # select the group's unpartitioned assets instead of `keys`
    parallel: bool = False  # steps that must overlap: run them with the parallel executor


JOB_SPECS = (
    JobSpec("scaling_hpo_job", (("scaling", "hpo", "trials"),), partitions.budget_horizon_partitions,
            "HPO cells: one Optuna study per (budget, horizon) partition, its trial workers in parallel; resumable.",
            parallel=True),
    JobSpec("probes_manifest_job", (("probes", "sweep", "manifest"),), None,
            "Re-read the sweep spec: configs with stable ids, registers config and fold partitions."),
    JobSpec("probes_sweep_job", (("probes", "sweep", "fold_results"),), partitions.probe_config_fold_partitions,
            "Probe sweep: one run per (config, fold) partition, seeds batched inside."),
    JobSpec("sft_pilot_job", (("sft", "data", "pilot_generations"),), partitions.sft_pilot_partitions,
            "SFT pilot iterations: one run per sampling-settings iteration (registered by sft/data/pilot_settings)."),
    JobSpec("sft_shards_job", (("sft", "data", "scale_shards"), ("sft", "data", "critic_scores")),
            partitions.sft_shard_partitions,
            "Generate, QC and critic-score scale-data shards, one run per shard (the QC gate stops the critic)."),
    JobSpec("sft_chain_job", (), None, "The SFT chain (every unpartitioned sft asset, in dependency order).",
            group="sft"),
)


def _asset_index(assets: list) -> dict[dg.AssetKey, dg.PartitionsDefinition | None]:
    index = {}
    for asset in assets:
        if isinstance(asset, dg.AssetsDefinition):
            for key in asset.keys:
                index[key] = asset.partitions_def
    return index


def domain_jobs(assets: list, parallel_executor: dg.ExecutorDefinition | None = None
                ) -> list[UnresolvedAssetJobDefinition]:
    """The jobs of JOB_SPECS whose assets are all defined in `assets`; parallel ones run with
    `parallel_executor` (None: the code location's default executor, like the others)."""
    index = _asset_index(assets)
    jobs = []
    for spec in JOB_SPECS:
        if spec.group:
            keys = [k for k, p in index.items() if k.path[0] == spec.group and p is None]
        else:
            keys = [dg.AssetKey(list(k)) for k in spec.keys]
        if not keys or any(k not in index for k in keys):
            continue
        jobs.append(dg.define_asset_job(spec.name, selection=dg.AssetSelection.assets(*keys),
                                        partitions_def=spec.partitions_def, description=spec.description,
                                        executor_def=parallel_executor if spec.parallel else None))
    return jobs
