"""The whole SFT chain materializes in-process on a very small profile, checks included."""

from proj_assets.sft import keys as k


def _check(result, key, name):
    evals = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == name and e.asset_key.path == key
    ]
    assert evals, f"check {name} on {key} did not run"
    return evals[-1]


def test_pipeline_materializes_end_to_end(tiny_runner):
    r = tiny_runner([k.BASE_MODEL])
    assert _check(r, k.BASE_MODEL, "completion_mode_only").passed
    first = r.asset_materializations_for_node("sft__model__base_model")[0].metadata
    assert first["cache_hit"].value is False
    again = (
        tiny_runner([k.BASE_MODEL])
        .asset_materializations_for_node("sft__model__base_model")[0]
        .metadata
    )
    assert again["cache_hit"].value is True and again["path"].value == first["path"].value

    tiny_runner([k.TEST_INSTRUCTIONS, k.PILOT_SETTINGS])
    selected = tiny_runner.selected_pilot()
    tiny_runner([k.PILOT], partition=selected)
    comparison = tiny_runner([k.PILOT_COMPARISON]).output_for_node("sft__report__pilot_comparison")
    assert comparison["pilot_iteration"].to_list() == [selected] and comparison[
        "selected"
    ].to_list() == [True]
    assert comparison["gates_passed"].to_list() == [True] and comparison["n"].to_list() == [20]
    for shard in tiny_runner.shards():
        tiny_runner([k.SHARDS, k.CRITIC], partition=shard)
    r = tiny_runner(
        [k.TRAINING_SET, k.ADAPTER, k.PAIRED, k.STATS]
    )  # a failed stage gate is a verdict, not an error
    assert _check(r, k.TRAINING_SET, "no_test_overlap").passed
    assert _check(r, k.ADAPTER, "prompt_tokens_masked").passed
    gate = _check(r, k.STATS, "stage_gate")
    assert gate.severity.value == "ERROR"
    assert {"measured", "threshold", "sft_accuracy", "base_accuracy"} <= set(gate.metadata)
    few_shot = _check(r, k.STATS, "beats_few_shot")
    assert few_shot.severity.value == "WARN" and "few_shot_accuracy" in few_shot.metadata
    adapter_meta = r.asset_materializations_for_node("sft__model__adapter")[0].metadata
    assert adapter_meta["method"].value == "lora" and adapter_meta["compute_seconds"].value > 0
    assert adapter_meta["target_modules"].value == ["q_proj", "v_proj"]  # as peft wrapped them
    assert "qlora_compute_dtype" not in adapter_meta  # recorded for QLoRA only
    paired = r.output_for_node("sft__eval__paired_results")
    assert paired.height == 20 and paired["judged_by"].unique().to_list() == ["program"]
    stats = r.output_for_node("sft__eval__stats")
    assert set(stats["scope"]) == {"overall", "add", "reverse", "sort", "count", "upper"}
    pilot = tiny_runner.resources["warehouse"].query("select * from sft_data.pilot_generations")
    assert pilot.height == 20
    for column in (
        "git_sha",
        "run_id",
        "model_revision",
        "sampling_params_hash",
        "prompt_template_hash",
        "seed",
        "runaway",
        "token_limit",
        "finish_reason",
        "n_tokens",
    ):
        assert pilot[column].null_count() == 0, column
