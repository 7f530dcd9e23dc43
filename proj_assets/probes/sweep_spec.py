"""Sweep specs (`data/sweeps/*.yaml`): factors expanded factorially into probe configs.

A config's id is the hash of its canonical form (factor values that matter for its probe type,
plus stage and seed count), so reordering the spec or adding unrelated configs never changes it.
Stage-2 configs (promoted by screening, with more seeds) have the id `<stage-1 id>-s2n<seeds>`, so
the fold runner can find the stage-1 config they extend without a registry.
"""

import itertools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from proj_assets.probes.probe_types import CANDIDATE_PROBES, TOKEN_PROBES

STAGE2_ID = re.compile(r"^(?P<base>[0-9a-f]{12})-s2n(?P<seeds>\d+)$")


class SpecError(ValueError):
    """A sweep spec is missing or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Factors(_Strict):
    probe_type: list[Literal[CANDIDATE_PROBES]] = Field(min_length=1)  # type: ignore[valid-type]
    layer: list[int] = Field(min_length=1)
    pooling: list[Literal["mean", "max", "last"]] = [
        "mean"
    ]  # for pooled probes; token probes pool themselves
    learning_rate: list[float] = Field(min_length=1)
    weight_decay: list[float] = [0.0]
    epochs: list[int] = Field(min_length=1)
    n_heads: list[int] = [2]  # for attention / multimax probes
    batch_size: list[int] = [512]


class Stages(_Strict):
    stage1_seeds: int = Field(ge=1)
    stage2_seeds: int = Field(ge=2)
    promote_top_k: int = Field(ge=0)


class SweepSpec(_Strict):
    name: str
    factors: Factors
    stages: Stages


def _validate_values(spec: SweepSpec) -> None:
    f = spec.factors
    rules: list[tuple[str, Sequence[float], Callable[[float], bool], str]] = [
        ("layer", f.layer, lambda v: v >= 0, ">= 0"),
        ("learning_rate", f.learning_rate, lambda v: v > 0, "> 0"),
        ("weight_decay", f.weight_decay, lambda v: v >= 0, ">= 0"),
        ("epochs", f.epochs, lambda v: v >= 1, ">= 1"),
        ("n_heads", f.n_heads, lambda v: v >= 1, ">= 1"),
        ("batch_size", f.batch_size, lambda v: v >= 1, ">= 1"),
    ]
    for name, values, ok, expected in rules:
        bad = [v for v in values if not ok(v)]
        if bad:
            raise ValueError(f"field 'factors.{name}': values {bad} must be {expected}")
    if spec.stages.stage2_seeds <= spec.stages.stage1_seeds:
        raise ValueError(
            f"field 'stages.stage2_seeds': {spec.stages.stage2_seeds} must exceed "
            f"stages.stage1_seeds ({spec.stages.stage1_seeds})"
        )


def parse_spec(raw: object, source: str) -> SweepSpec:
    try:
        spec = SweepSpec.model_validate(raw)
        _validate_values(spec)
    except ValidationError as err:
        lines = [f"invalid sweep spec {source}:"]
        for item in err.errors():
            field = ".".join(str(p) for p in item["loc"]) or "<root>"
            lines.append(f"  field '{field}': {item['msg']} (got {item.get('input')!r})")
        raise SpecError("\n".join(lines)) from None
    except ValueError as err:
        raise SpecError(f"invalid sweep spec {source}: {err}") from None
    return spec


def load_spec(path: Path) -> SweepSpec:
    if not path.is_file():
        raise SpecError(f"sweep spec not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"sweep spec {path} is not valid YAML: {exc}") from None
    return parse_spec(raw, str(path))


# A config's settings as the UI shows them (manifest columns, fold partition metadata, summary).
CONFIG_FIELDS = (
    "probe_type",
    "layer",
    "pooling",
    "learning_rate",
    "weight_decay",
    "epochs",
    "n_heads",
    "batch_size",
)


# Configs that agree on these train together (they differ in learning rate, weight decay, epochs).
SHARED_FIELDS = ("probe_type", "layer", "batch_size", "n_heads", "pooling")


def group_key(config: dict) -> tuple:
    return tuple(config[f] for f in SHARED_FIELDS)


def canonical_config(values: dict, stage: int, n_seeds: int) -> dict:
    """Drop what a probe type ignores, so equivalent configs share one id."""
    config = {
        "probe_type": values["probe_type"],
        "layer": int(values["layer"]),
        "learning_rate": float(values["learning_rate"]),
        "weight_decay": float(values["weight_decay"]),
        "epochs": int(values["epochs"]),
        "batch_size": int(values["batch_size"]),
        "stage": stage,
        "n_seeds": n_seeds,
    }
    if values["probe_type"] in TOKEN_PROBES:
        config["n_heads"], config["pooling"] = int(values["n_heads"]), "learned"
    else:
        config["n_heads"], config["pooling"] = 0, values["pooling"]
    return config


def expand(spec: SweepSpec, hash_fn) -> list[dict]:
    """Stage-1 configs: the factorial product, canonicalised, de-duplicated, each with `config_id`."""
    names = list(Factors.model_fields)
    grid = itertools.product(*(getattr(spec.factors, n) for n in names))
    configs: dict[str, dict] = {}
    for combo in grid:
        config = canonical_config(
            dict(zip(names, combo, strict=False)), stage=1, n_seeds=spec.stages.stage1_seeds
        )
        configs.setdefault(hash_fn(config, length=12), config)
    return [{"config_id": cid, **cfg} for cid, cfg in configs.items()]


def stage2_id(stage1_id: str, n_seeds: int) -> str:
    return f"{stage1_id}-s2n{n_seeds}"


def stage1_id(config_id: str) -> str:
    match = STAGE2_ID.match(config_id)
    return match["base"] if match else config_id


def resolve_config(config_id: str, stage1_configs: dict[str, dict]) -> dict:
    """The config for a partition key: a stage-1 id from the manifest, or a stage-2 id built on one."""
    match = STAGE2_ID.match(config_id)
    base = match["base"] if match else config_id
    if base not in stage1_configs:
        raise KeyError(
            f"config {config_id!r} is not in the sweep manifest (its stage-1 config {base!r} is "
            "missing): re-materialize probes/sweep/manifest or remove the stale partition"
        )
    config = dict(stage1_configs[base])
    if match:
        config.update(config_id=config_id, stage=2, n_seeds=int(match["seeds"]))
    return config
