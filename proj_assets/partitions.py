"""Every PartitionsDefinition of the code location, built from the active profile."""

import dagster as dg

from proj_assets.profiles import load_profile

_profile = load_profile()

ticker_partitions = dg.StaticPartitionsDefinition(_profile.market.tickers)

budget_horizon_partitions = dg.MultiPartitionsDefinition(
    {
        "budget": dg.StaticPartitionsDefinition(list(_profile.scaling.budgets)),
        "horizon": dg.StaticPartitionsDefinition([f"h{h}" for h in _profile.market.horizons]),
    }
)

# Probe configs and LOPO folds are only known once the sweep manifest and corpus exist, so they
# are dynamic: `probes/sweep/manifest` registers them.
probe_config_partitions = dg.DynamicPartitionsDefinition(name="probe_config")
probe_fold_partitions = dg.DynamicPartitionsDefinition(name="probe_fold")
probe_config_fold_partitions = dg.MultiPartitionsDefinition(
    {"config": probe_config_partitions, "fold": probe_fold_partitions}
)

sft_shard_partitions = dg.StaticPartitionsDefinition(
    [f"shard_{i:02d}" for i in range(_profile.sft.n_shards)]
)

# SFT pilot iterations, keyed by their sampling-settings hash; `sft/data/pilot_settings` registers
# the profile's iterations, and keys of earlier iterations stay registered (their rows are kept).
sft_pilot_partitions = dg.DynamicPartitionsDefinition(name="sft_pilot_iteration")
