"""Pilot iterations: each set of sampling settings the profile lists is one pilot iteration, keyed
by its sampling-settings hash; `sft.sampling` is the selected one (what scaling uses)."""

from proj_assets.sft.settings import SamplingSettings, SftSettings
from proj_resources.hashing import canonical_hash


def sampling_hash(sampling: SamplingSettings) -> str:
    return canonical_hash(sampling.model_dump())


def iteration_key(sampling: SamplingSettings) -> str:
    """A pilot iteration's partition key: `it_` and 12 hex digits of its sampling-settings hash."""
    return f"it_{sampling_hash(sampling)[:12]}"


def iterations(cfg: SftSettings) -> dict[str, SamplingSettings]:
    """Pilot iteration key -> its sampling settings; the selected one (`sampling`) first."""
    return {iteration_key(s): s for s in [cfg.sampling, *cfg.pilot_iterations]}


def selected_iteration(cfg: SftSettings) -> str:
    return iteration_key(cfg.sampling)
