"""Pilot iterations are kept side by side, keyed by their sampling-settings hash, and scaling uses
the selected one (`sft.sampling`) only when that iteration's gates passed."""

import json

import dagster as dg
import polars as pl
import yaml

from proj_assets.profiles import PROFILES_DIR
from proj_assets.sft import assets, checks
from proj_assets.sft import keys as k
from proj_assets.sft.pilot_report import compare_iterations
from proj_assets.sft.iterations import iteration_key, iterations, selected_iteration
from proj_assets.sft.settings import SamplingSettings, SftSettings
from proj_tests.sft.conftest import stand_in_pilot
from proj_tests.sft.test_sft_gates import crafted_pilot


def test_iteration_keys_follow_every_sampling_setting():
    base = SamplingSettings()
    keys = {iteration_key(base), iteration_key(SamplingSettings(temperature=0.3)),
            iteration_key(SamplingSettings(stop=["\n###", "\nInstruction:"])), iteration_key(SamplingSettings(seed=8)),
            iteration_key(SamplingSettings(max_new_tokens=12))}
    assert len(keys) == 5 and iteration_key(base) == iteration_key(SamplingSettings())
    cfg = SftSettings(n_shards=1, sampling=SamplingSettings(temperature=0.3), pilot_iterations=[base])
    assert list(iterations(cfg)) == [iteration_key(SamplingSettings(temperature=0.3)), iteration_key(base)]
    assert selected_iteration(cfg) == iteration_key(SamplingSettings(temperature=0.3))


def test_comparison_table_has_one_row_per_iteration_with_its_settings():
    def rows(key, sampling, runaway, limit):
        return pl.DataFrame({"pilot_iteration": [key] * 4, "sampling_params": [json.dumps(sampling.model_dump())] * 4,
                             "runaway": runaway, "token_limit": limit, "answer_correct": [True, False, True, True]})

    hot, cold = SamplingSettings(temperature=1.2, stop=["\n###"]), SamplingSettings(temperature=0.3)
    table = compare_iterations(pl.concat([rows("it_hot", hot, [True, True, False, False], [False] * 4),
                                          rows("it_cold", cold, [False] * 4, [True, False, False, False])]),
                               {"it_hot": False, "it_cold": True}, selected="it_cold")
    assert table["pilot_iteration"].to_list() == ["it_cold", "it_hot"]  # lowest runaway first
    assert table["runaway_rate"].to_list() == [0.0, 0.5] and table["token_limit_rate"].to_list() == [0.25, 0.0]
    assert table["temperature"].to_list() == [0.3, 1.2] and table["n_stops"].to_list() == [1, 1]
    assert table["gates_passed"].to_list() == [True, False] and table["selected"].to_list() == [True, False]


def test_every_iteration_is_kept_and_scaling_follows_the_selected_one(tmp_path, monkeypatch):
    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile

    raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    noisy = {**raw["sft"]["sampling"], "temperature": 1.5, "stop": ["\n###"]}
    raw["sft"]["pilot_iterations"] = [noisy]
    profile = tmp_path / "iterations.yaml"
    profile.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("PROJ_PROFILE", str(profile))
    cfg = load_profile(str(profile)).sft
    selected, other = list(iterations(cfg))
    resources = build_resources(load_profile(str(profile)), tmp_path / "out")
    pilot_checks = [checks.pilot_runaway_rate_below_max, checks.pilot_token_limit_rate_below_max]
    data = {selected: crafted_pilot(20, 0, 0), other: crafted_pilot(20, 6, 0)}  # the noisy one runs away (30%)
    with dg.instance_for_test() as instance:
        assert dg.materialize([assets.pilot_settings], instance=instance, resources=resources).success
        registered = instance.get_dynamic_partitions("sft_pilot_iteration")
        assert registered == [selected, other]
        for key, df in data.items():
            settings = pl.lit(json.dumps(iterations(cfg)[key].model_dump())).alias("sampling_params")
            stand_in = stand_in_pilot(df.with_columns(settings, pl.lit(True).alias("answer_correct")),
                                      {"seconds_per_example": 0.0})
            dg.materialize([stand_in, *pilot_checks], partition_key=key, instance=instance, resources=resources,
                           raise_on_error=False)
        run = dg.materialize([assets.pilot_comparison, stand_in], selection=[dg.AssetKey(k.PILOT_COMPARISON)],
                             instance=instance, resources=resources)
        table = run.output_for_node("sft__report__pilot_comparison")
        assert table.select("pilot_iteration", "runaway_rate", "gates_passed", "selected").rows() == [
            (selected, 0.0, True, True), (other, 0.3, False, False)]
        meta = run.asset_materializations_for_node("sft__report__pilot_comparison")[0].metadata
        assert "![" in meta["rates"].value  # the plot

        # the failed noisy iteration does not block scaling, which uses the selected iteration; it
        # gets past the pilot gates and the budget and stops at the base-model gate (no model here)
        shard = dg.materialize([assets.scale_shards, stand_in], selection=[dg.AssetKey(k.SHARDS)], partition_key="shard_00",
                               instance=instance, resources=resources, raise_on_error=False)
        error = str(next(e for e in shard.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)
        assert "completion_mode_only" in error and k.RUNAWAY_CHECK not in error

        # a reviewer selects the noisy iteration instead: scaling refuses, naming its failed gate
        raw["sft"]["sampling"], raw["sft"]["pilot_iterations"] = noisy, [raw["sft"]["sampling"]]
        reselected = tmp_path / "reselected.yaml"  # a new file: profiles are cached by path
        reselected.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("PROJ_PROFILE", str(reselected))
        assert selected_iteration(load_profile(str(reselected)).sft) == other
        shard = dg.materialize([assets.scale_shards, stand_in], selection=[dg.AssetKey(k.SHARDS)], partition_key="shard_00",
                               instance=instance, resources=resources, raise_on_error=False)
        error = str(next(e for e in shard.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)
        assert "refusing to run" in error and k.RUNAWAY_CHECK in error and repr(other) in error and "0.3" in error
