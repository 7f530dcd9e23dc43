"""Scaling profile settings: the research values of the study, and bad input refused when the
profile loads (definitions load) with the profile field named."""

import os
import subprocess
import sys

import pytest
import yaml
from pydantic import ValidationError
from scaling_helpers import checks_for, tiny_settings

from proj_assets.profiles import PROJECT_ROOT, ProfileError, load_profile_file, profile_path
from proj_assets.scaling.settings import ScalingSettings


def test_research_settings_are_the_studys():
    s = ScalingSettings.model_validate(
        yaml.safe_load(profile_path("research").read_text())["scaling"]
    )
    assert (s.trainer.patience, s.trainer.min_delta) == (10, 0.001)
    assert s.search.dropout == (0.1, 0.3) and s.search.weight_decay == (1e-4, 5e-3)
    assert s.arch.n_layers_max is None  # no depth cap


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"search": {"lr": [0.01, 0.001]}},
            "search.lr must be [min, max] with 0 <= min <= max, got [0.01, 0.001]",
        ),
        ({"search": {"dropout": [0.3, 0.1]}}, "search.dropout must be [min, max]"),
        (
            {"search": {"weight_decay": [0.0, 0.01]}},
            "search.weight_decay is sampled on a log scale",
        ),
        ({"arch": {"d_model_min": 64, "d_model_max": 8}}, "d_model_min 64 > d_model_max 8"),
        ({"pruner": "hyperband"}, "Input should be 'median' or 'none'"),
        (
            {"budgets": {"2k": 2000, "huge": 10**12}},
            "scaling.budgets ['huge']: no architecture of scaling.arch",
        ),
        (
            {"budgets": {"2k": 2000, "huge": 10**12}, "arch": {"n_layers_max": None}},
            "scaling.budgets ['huge']: the grid of scaling.arch",
        ),
    ],
)
def test_bad_scaling_settings_are_refused(change, message):
    with pytest.raises(
        ValidationError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
    ):
        tiny_settings(**change)


def test_bad_profile_fails_definitions_load_naming_the_field(tmp_path):
    raw = yaml.safe_load(profile_path("demo").read_text())
    raw["scaling"]["pruner"] = "hyperband"
    raw["scaling"]["search"]["lr"] = [0.01, 0.001]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError) as err:
        load_profile_file(bad)
    assert "field 'scaling.pruner': Input should be 'median' or 'none' (got 'hyperband')" in str(
        err.value
    )
    assert "field 'scaling.search.lr'" in str(err.value)

    raw["scaling"]["pruner"], raw["scaling"]["search"]["lr"] = "median", [0.0003, 0.003]
    raw["scaling"]["budgets"]["10"] = 10  # below the smallest one-layer model
    bad.write_text(yaml.safe_dump(raw))
    # The process boundary: a fresh interpreter loads the code location (`defs()`, as Dagster
    # does) with the active profile set in its environment.
    env = {**os.environ, "PROJ_PROFILE": str(bad)}
    loaded = subprocess.run(
        [sys.executable, "-c", "from proj_assets.definitions import defs; defs()"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode != 0
    assert (
        "field 'scaling'" in loaded.stderr
        and "scaling.budgets ['10']: no architecture" in loaded.stderr
    )


def test_depth_check_warns_naming_the_depths_a_cap_leaves_out():
    import dagster as dg

    def depth_check(budgets: dict) -> dg.AssetCheckResult:
        return checks_for(tiny_settings(budgets=budgets))["every_feasible_depth_in_grid"]()

    assert depth_check({"2k": 2000}).passed  # the cap of 4 cuts nothing at 2k
    result = depth_check({"2k": 2000, "20k": 20000})
    assert result.passed is False and result.severity == dg.AssetCheckSeverity.WARN
    assert "above scaling.arch.n_layers_max=4" in result.description
    sample = (
        result.metadata["sample"].value if "sample" in result.metadata else str(result.metadata)
    )
    assert "20k" in str(sample) and "first_left_out" in str(sample)
