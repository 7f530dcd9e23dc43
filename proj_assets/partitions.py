"""Every PartitionsDefinition of the code location, built from the settings it is given.

Static partitions (tickers, budget x horizon cells, SFT shards) come from a profile, so they are
functions: each domain's definitions builder calls them with its own settings, and definitions
for two profiles in one process hold their own keys. Probe configs, LOPO folds and SFT pilot
iterations are only known once the sweep manifest, corpus or pilot settings exist, so they are
dynamic (named, stored in the instance) and the same object for every profile.
"""

import dagster as dg

probe_config_partitions = dg.DynamicPartitionsDefinition(name="probe_config")
probe_fold_partitions = dg.DynamicPartitionsDefinition(name="probe_fold")
probe_config_fold_partitions = dg.MultiPartitionsDefinition(
    {"config": probe_config_partitions, "fold": probe_fold_partitions}
)
# SFT pilot iterations, keyed by their sampling-settings hash; `sft/data/pilot_settings` registers
# the profile's iterations, and keys of earlier iterations stay registered (their rows are kept).
sft_pilot_partitions = dg.DynamicPartitionsDefinition(name="sft_pilot_iteration")


def ticker_partitions(tickers: list[str]) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(tickers))


def budget_horizon_partitions(
    budgets: dict[str, int], horizons: list[int]
) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            "budget": dg.StaticPartitionsDefinition(list(budgets)),
            "horizon": dg.StaticPartitionsDefinition([f"h{h}" for h in horizons]),
        }
    )


def sft_shard_partitions(n_shards: int) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition([f"shard_{i:02d}" for i in range(n_shards)])
