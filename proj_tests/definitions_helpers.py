"""How tests get definitions: built from a Profile object, the one way tests switch profile.

A test takes the demo profile (or another file's), changes the sections it needs with
`with_settings`, and builds the domain it exercises with that profile; nothing reads PROJ_PROFILE
or patches module state.
"""

from pathlib import Path

import dagster as dg

from proj_assets.profiles import Profile, load_profile


def demo_profile() -> Profile:
    return load_profile("demo")


def with_settings(profile: Profile, **sections) -> Profile:
    """`profile` with whole sections replaced (`scaling=ScalingSettings(...)`) or updated
    (`market={"rise_threshold": 0.02}`), validated like a profile file."""
    data = profile.model_dump()
    for name, value in sections.items():
        data[name] = value.model_dump() if hasattr(value, "model_dump") else {**data[name], **value}
    return Profile.model_validate(data)


def materializable(defs: dg.Definitions) -> list:
    """Every asset and check of `defs`, for `dg.materialize`."""
    return [*(defs.assets or ()), *(defs.asset_checks or ())]


def checks_by_name(defs_or_checks) -> dict[str, dg.AssetChecksDefinition]:
    """Check name -> its definition (a multi-check appears under each of its names)."""
    checks = (
        defs_or_checks.asset_checks
        if isinstance(defs_or_checks, dg.Definitions)
        else defs_or_checks
    )
    return {key.name: check for check in checks for key in check.check_keys}


def assets_by_key(defs: dg.Definitions) -> dict[tuple[str, ...], dg.AssetsDefinition]:
    return {tuple(key.path): asset for asset in defs.assets for key in asset.keys}


def domain_defs(domain: str, profile: Profile, root: Path) -> dg.Definitions:
    """One domain's assets and checks (`market`, `scaling`, `probes`, `sft`, `platform`) as the
    code location for `profile` builds them (upstream gates from the merged graph included), with
    every resource of the location."""
    from proj_assets.definitions import build_definitions

    full = build_definitions(profile, root)
    assets = [a for a in full.assets if domain in a.group_names_by_key.values()]
    keys = {k for a in assets for k in a.keys}
    checks = [c for c in full.asset_checks if {k.asset_key for k in c.check_keys} <= keys]
    return dg.Definitions(assets=assets, asset_checks=checks, resources=full.resources)


def gated_graph(assets: list, checks: list, resources: dict) -> dg.Definitions:
    """A hand-made graph with its upstream gates resolved, as the code location's builder does
    (resolving the graph validates it, so it needs the resources its assets use)."""
    from proj_assets.shared.gates import with_upstream_gates

    return with_upstream_gates(
        dg.Definitions(assets=assets, asset_checks=checks, resources=resources)
    )
