"""Loads and validates the active profile (`data/profiles/<name>.yaml`, chosen by PROJ_PROFILE).

Partition keys must be known when definitions load, so they come from this file. Every section is
a strict pydantic model: an unknown key, a wrong type or a missing file is a `ProfileError` that
names the file and the dotted field path.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import yaml
from pydantic import ValidationError, field_validator

from proj_assets.market.settings import MarketSettings
from proj_assets.probes.settings import ProbesSettings
from proj_assets.scaling.settings import ScalingSettings
from proj_assets.settings_base import Section
from proj_assets.settings_shared import ComputeSettings, PlatformSettings
from proj_assets.sft.settings import SftSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = PROJECT_ROOT / "data" / "profiles"
DEFAULT_PROFILE = "demo"


class ProfileError(ValueError):
    """A profile file is missing or invalid; the message names the file and the field."""


class Profile(Section):
    """A whole profile: one section per domain plus compute settings."""

    name: str
    description: str = ""
    compute: ComputeSettings
    market: MarketSettings
    scaling: ScalingSettings
    probes: ProbesSettings
    sft: SftSettings
    platform: PlatformSettings = PlatformSettings()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        """Study journals, checkpoints and the warehouse file are keyed by this name (never by the
        PROJ_PROFILE value, which may be a path), so it must be a plain file name."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
            raise ValueError(f"must be a plain name (letters, digits, _ . -), got {name!r}")
        return name


def profile_path(name_or_path: str) -> Path:
    """A profile name (`demo`) maps to data/profiles/demo.yaml; a value ending in .yaml is a path."""
    if name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path).expanduser().resolve()
    return PROFILES_DIR / f"{name_or_path}.yaml"


def _format_validation_error(path: Path, err: ValidationError) -> str:
    lines = [f"invalid profile {path}:"]
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"]) or "<root>"
        got = item.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  field '{field}': {item['msg']}{shown}")
    return "\n".join(lines)


def load_profile_file(path: Path) -> Profile:
    """Read and validate one profile file."""
    if not path.is_file():
        available = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ProfileError(f"profile file not found: {path} (available profiles: {available})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProfileError(
            f"profile {path} must be a mapping of sections, got {type(raw).__name__}"
        )
    try:
        return Profile.model_validate(raw, context={"profile_dir": str(path.parent)})
    except ValidationError as err:
        raise ProfileError(_format_validation_error(path, err)) from None


@functools.cache
def _load_cached(path: Path) -> Profile:
    return load_profile_file(path)


def active_profile_name() -> str:
    return os.environ.get("PROJ_PROFILE", DEFAULT_PROFILE)


def load_profile(name_or_path: str | None = None) -> Profile:
    """The active profile (PROJ_PROFILE, default `demo`), validated and cached per file."""
    return _load_cached(profile_path(name_or_path or active_profile_name()))


def data_dir() -> Path:
    """Where outputs go: PROJ_DATA_DIR, default `<project>/data`. Tests point it at a temp dir."""
    return Path(os.environ.get("PROJ_DATA_DIR", PROJECT_ROOT / "data")).resolve()
