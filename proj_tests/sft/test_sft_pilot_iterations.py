"""Pilot iterations are kept side by side, keyed by their sampling-settings hash, and scaling uses
the selected one (`sft.sampling`) only when that iteration's gates passed."""

import json

import polars as pl

from proj_assets.sft import keys as k
from proj_assets.sft.iterations import iteration_key, iterations, selected_iteration
from proj_assets.sft.pilot_report import compare_iterations
from proj_assets.sft.settings import SamplingSettings, SftSettings
from proj_tests.definitions_helpers import demo_profile, with_settings
from proj_tests.sft.conftest import (
    SftRunner,
    crafted_pilot,
    failure_message,
    refused_gates,
    stand_in_pilot,
)
from proj_tests.sft.test_sft_shard_and_model_gates import NO_BASE_MODEL, STAND_IN_SHARDS


def test_iteration_keys_follow_every_sampling_setting():
    base = SamplingSettings()
    keys = {
        iteration_key(base),
        iteration_key(SamplingSettings(temperature=0.3)),
        iteration_key(SamplingSettings(stop=["\n###", "\nInstruction:"])),
        iteration_key(SamplingSettings(seed=8)),
        iteration_key(SamplingSettings(max_new_tokens=12)),
    }
    assert len(keys) == 5 and iteration_key(base) == iteration_key(SamplingSettings())
    cfg = SftSettings(
        n_shards=1, sampling=SamplingSettings(temperature=0.3), pilot_iterations=[base]
    )
    assert list(iterations(cfg)) == [
        iteration_key(SamplingSettings(temperature=0.3)),
        iteration_key(base),
    ]
    assert selected_iteration(cfg) == iteration_key(SamplingSettings(temperature=0.3))


def test_comparison_table_has_one_row_per_iteration_with_its_settings():
    def rows(key, sampling, runaway, limit):
        return pl.DataFrame(
            {
                "pilot_iteration": [key] * 4,
                "sampling_params": [json.dumps(sampling.model_dump())] * 4,
                "runaway": runaway,
                "token_limit": limit,
                "answer_correct": [True, False, True, True],
            }
        )

    hot, cold = SamplingSettings(temperature=1.2, stop=["\n###"]), SamplingSettings(temperature=0.3)
    table = compare_iterations(
        pl.concat(
            [
                rows("it_hot", hot, [True, True, False, False], [False] * 4),
                rows("it_cold", cold, [False] * 4, [True, False, False, False]),
            ]
        ),
        {"it_hot": False, "it_cold": True},
        selected="it_cold",
    )
    assert table["pilot_iteration"].to_list() == ["it_cold", "it_hot"]  # lowest runaway first
    assert table["runaway_rate"].to_list() == [0.0, 0.5] and table[
        "token_limit_rate"
    ].to_list() == [0.25, 0.0]
    assert table["temperature"].to_list() == [0.3, 1.2] and table["n_stops"].to_list() == [1, 1]
    assert table["gates_passed"].to_list() == [True, False] and table["selected"].to_list() == [
        True,
        False,
    ]


def test_every_iteration_is_kept_and_scaling_follows_the_selected_one(tmp_path, instance):
    demo = demo_profile()
    noisy = {**demo.sft.sampling.model_dump(), "temperature": 1.5, "stop": ["\n###"]}
    profile = with_settings(demo, sft={"pilot_iterations": [noisy]})
    run = SftRunner(profile, tmp_path, instance)
    selected, other = list(iterations(profile.sft))
    data = {
        selected: crafted_pilot(20, 0, 0),
        other: crafted_pilot(20, 6, 0),
    }  # the noisy one runs away (30%)
    assert run([k.PILOT_SETTINGS]).success
    assert instance.get_dynamic_partitions("sft_pilot_iteration") == [selected, other]
    for key, df in data.items():
        settings = pl.lit(json.dumps(iterations(profile.sft)[key].model_dump())).alias(
            "sampling_params"
        )
        pilot = stand_in_pilot(
            df.with_columns(settings, pl.lit(True).alias("answer_correct")),
            {"seconds_per_example": 0.0},
        )
        run([k.PILOT], key, [pilot], raise_on_error=False)
    comparison = run(
        [k.PILOT_COMPARISON], stand_ins=[pilot]
    )  # not gated: it reports the failed iteration
    table = comparison.output_for_node("sft__report__pilot_comparison")
    assert table.select("pilot_iteration", "runaway_rate", "gates_passed", "selected").rows() == [
        (selected, 0.0, True, True),
        (other, 0.3, False, False),
    ]
    meta = comparison.asset_materializations_for_node("sft__report__pilot_comparison")[0].metadata
    assert "![" in meta["rates"].value  # the plot

    # the failed noisy iteration blocks neither the scale shards nor their critic, which use the
    # selected iteration: only the base-model gate is open (no model here)
    assert run(
        [k.SHARDS], "shard_00", [STAND_IN_SHARDS]
    ).success  # a clean shard for the critic to score
    steps = ((k.CRITIC, [pilot, STAND_IN_SHARDS]), (k.SHARDS, [pilot]))
    for key, stand_ins in steps:
        assert refused_gates(run([key], "shard_00", stand_ins, raise_on_error=False)) == [
            NO_BASE_MODEL
        ], key

    # a reviewer selects the noisy iteration instead: both refuse, naming its failed gate
    reselected = with_settings(
        profile, sft={"sampling": noisy, "pilot_iterations": [demo.sft.sampling]}
    )
    assert selected_iteration(reselected.sft) == other
    rerun = SftRunner(reselected, tmp_path, instance)
    for key, stand_ins in steps:
        step = rerun([key], "shard_00", stand_ins, raise_on_error=False)
        (gate,) = [g for g in refused_gates(step) if g.startswith("sft/data/pilot_generations")]
        assert gate.startswith(
            f"sft/data/pilot_generations:{k.RUNAWAY_CHECK} partition {other!r} failed"
        ), key
        assert "'measured': 0.3" in gate and "refusing to run" in failure_message(step)
