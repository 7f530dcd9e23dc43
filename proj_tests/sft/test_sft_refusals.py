"""Bad input and empty outputs get a clear error and nothing downstream runs: a training set that
filtering empties, a base model folder that needs remote code or has no weights or tokenizer, a
test set with a repeated item, a model whose generations are all empty."""

import json
import shutil

import dagster as dg
import polars as pl
import pytest

from proj_assets.partitions import sft_shard_partitions
from proj_assets.sft import keys as k
from proj_assets.sft.model_folder import check_base_model_folder
from proj_resources.loaders.models import ModelPathError
from proj_tests.definitions_helpers import demo_profile, with_settings
from proj_tests.sft.conftest import (
    SftRunner,
    crafted_pilot,
    failure_message,
    refused_gates,
    stand_in,
    stand_in_base_model,
    stand_in_pilot,
)
from proj_tests.sft.test_sft_shard_and_model_gates import STAND_IN_TEST_SET, crafted_shard


def test_a_training_set_the_critic_empties_refuses_with_counts_and_stops_the_adapter(demo_runner):
    shards = sft_shard_partitions(demo_runner.cfg.n_shards)
    data = {
        s: crafted_shard(s, 20, 0, 1) for s in shards.get_partition_keys()
    }  # 1 of 20 at the limit: gate ok
    scale_shards = stand_in(k.SHARDS, data.get, shards, "shard")
    critic_scores = stand_in(
        k.CRITIC,
        lambda shard: data[shard]
        .select(  # the critic rejects everything
            "example_id", "shard", "task_type", "answer_correct"
        )
        .with_columns(
            pl.lit(-3.0).alias("critic_margin"),
            pl.lit(0.0).alias("critic_threshold"),
            pl.lit(False).alias("critic_keep"),
        ),
        shards,
        "shard",
    )
    stand_ins = [scale_shards, critic_scores, STAND_IN_TEST_SET]
    for shard in data:
        assert demo_runner([k.SHARDS, k.CRITIC], shard, stand_ins).success
    assert demo_runner([k.TEST_INSTRUCTIONS], stand_ins=stand_ins).success
    run = demo_runner([k.TRAINING_SET, k.ADAPTER], stand_ins=stand_ins, raise_on_error=False)
    assert not run.success and refused_gates(run) == []  # past its gates: the filter empties it
    message = failure_message(run)
    assert (
        "0 rows left after filtering, at least 50 needed" in message
    )  # demo profile: min_training_rows 50
    assert (
        "generated=40" in message
        and "dropped_runaway=0" in message
        and "dropped_token_limit=2" in message
    )
    assert "dropped_by_critic=38" in message
    assert "dropped_test_overlap=0" in message
    assert not demo_runner.instance.get_latest_materialization_event(dg.AssetKey(k.TRAINING_SET))
    assert not demo_runner.instance.get_latest_materialization_event(
        dg.AssetKey(k.ADAPTER)
    )  # nothing downstream ran
    started = [e.step_key for e in run.all_events if e.event_type_value == "STEP_START"]
    assert started == ["sft__data__training_set"]  # the adapter step never started


def test_base_model_folders_that_cannot_be_used_are_refused(untrained_model_dir, tmp_path):
    assert check_base_model_folder(untrained_model_dir) == untrained_model_dir
    remote = tmp_path / "remote_code"
    shutil.copytree(untrained_model_dir, remote)
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(
        json.dumps({**config, "auto_map": {"AutoModelForCausalLM": "modeling_x.X"}})
    )
    with pytest.raises(ModelPathError, match="needs remote code"):
        check_base_model_folder(remote)

    template_only = (
        tmp_path / "template_only"
    )  # what a chat model's template folder looks like alone
    template_only.mkdir()
    (template_only / "chat_template.jinja").write_text(
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    (template_only / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "{{ messages }}"})
    )
    with pytest.raises(ModelPathError, match="no config.json"):
        check_base_model_folder(template_only)

    pickled = tmp_path / "pickled"
    shutil.copytree(untrained_model_dir, pickled)
    for f in pickled.glob("*.safetensors"):
        f.rename(pickled / "pytorch_model.bin")
    with pytest.raises(ModelPathError, match=r"no \*.safetensors weights .*pytorch_model.bin"):
        check_base_model_folder(pickled)

    no_tokenizer = tmp_path / "no_tokenizer"
    shutil.copytree(untrained_model_dir, no_tokenizer)
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(ModelPathError, match="has no tokenizer"):
        check_base_model_folder(no_tokenizer)


def test_the_base_model_asset_refuses_a_remote_code_folder(untrained_model_dir, tmp_path, instance):
    remote = tmp_path / "remote_code"
    shutil.copytree(untrained_model_dir, remote)
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(
        json.dumps({**config, "auto_map": {"AutoConfig": "configuration_x.XConfig"}})
    )
    run = SftRunner(
        with_settings(demo_profile(), sft={"base_model_path": str(remote)}),
        tmp_path / "out",
        instance,
    )
    result = run([k.BASE_MODEL], raise_on_error=False)
    assert not result.success and "needs remote code" in failure_message(result)
    assert not instance.get_latest_materialization_event(dg.AssetKey(k.BASE_MODEL))


def test_a_repeated_test_item_is_refused_and_the_frozen_set_is_kept(demo_runner, tmp_path):
    assert demo_runner([k.TEST_INSTRUCTIONS]).success
    (frozen,) = (tmp_path / "artifacts" / "sft_test_set").glob("*.json")
    rows = json.loads(frozen.read_text())
    frozen.write_text(json.dumps(rows + [rows[3]]))  # someone appended a copy of an item
    run = demo_runner([k.TEST_INSTRUCTIONS], raise_on_error=False)
    assert not run.success
    message = failure_message(run)
    assert "repeats 1 instruction" in message and rows[3]["instruction"].lower() in message
    records = demo_runner.instance.fetch_materializations(
        dg.AssetKey(k.TEST_INSTRUCTIONS), limit=10
    ).records
    assert len(records) == 1  # only the first, good materialization
    warehouse = demo_runner.resources["warehouse"]
    assert warehouse.query("select count(*) as n from sft_data.test_instructions")["n"][0] == len(
        rows
    )


def test_all_empty_generations_are_a_clear_error(untrained_model_dir):
    import torch

    from proj_assets.sft.data_generation import EmptyGenerationsError, generate_examples
    from proj_assets.sft.prompts import PromptBuilder
    from proj_assets.sft.settings import QcSettings, SamplingSettings
    from proj_assets.sft.tokenizer import load_sft_tokenizer
    from proj_resources.models import load_causal_lm

    tokenizer = load_sft_tokenizer(untrained_model_dir)
    model = load_causal_lm(untrained_model_dir).eval()
    eos = tokenizer.eos_token_id

    def always_eos(module, inputs, output):  # the model ends every answer at once
        output[..., eos] += 1e4
        return output

    model.lm_head.register_forward_hook(always_eos)
    with pytest.raises(
        EmptyGenerationsError, match="all 6 generated completions \\(pilot\\) are empty"
    ):
        generate_examples(
            model,
            tokenizer,
            n=6,
            data_seed=1,
            slot=0,
            id_prefix="pilot",
            builder=PromptBuilder(n_shots=1),
            sampling=SamplingSettings(max_new_tokens=4),
            qc=QcSettings(),
        )
    assert torch.is_tensor(model(**tokenizer(["a"], return_tensors="pt")).logits)


def test_a_shard_whose_projected_cost_exceeds_the_budget_refuses_unless_overridden(
    demo_runner, untrained_model_dir
):
    from proj_assets.sft.budget_guard import OVERRIDE_TAG
    from proj_assets.sft.step_costs import projected_cost, refuse_over_budget

    # a clean pilot that measured 60 s per example, and a base model past its gate: only the budget can refuse
    pilot = stand_in_pilot(crafted_pilot(20, 0, 0), {"seconds_per_example": 60.0})
    assert demo_runner([k.PILOT], demo_runner.selected_pilot(), [pilot]).success
    assert demo_runner([k.BASE_MODEL], stand_ins=[stand_in_base_model(untrained_model_dir)]).success
    run = demo_runner([k.SHARDS], "shard_00", [pilot], raise_on_error=False)
    assert not run.success and refused_gates(run) == []
    # demo: 60 s x 300 examples at 0.05/h = 0.25 against an sft budget of 0.02
    expected = projected_cost(60.0, 300, 0.05)
    message = failure_message(run)
    assert (
        f"projected cost {expected:.6g} exceeds the remaining sft budget" in message
        and OVERRIDE_TAG in message
    )
    assert not demo_runner.instance.get_latest_materialization_event(dg.AssetKey(k.SHARDS))

    overridden = demo_runner(
        [k.SHARDS],
        "shard_00",
        [pilot],
        raise_on_error=False,
        tags={OVERRIDE_TAG: "reviewed: one-off large shard"},
    )
    logs = [e.user_message for e in demo_runner.instance.all_logs(overridden.run_id)]
    assert any("budget projection overridden: 'reviewed: one-off large shard'" in m for m in logs)
    # past the budget, it generates the shard (the untrained model's output then fails the shard's QC gates)
    meta = overridden.asset_materializations_for_node("sft__data__scale_shards")[0].metadata
    assert meta["budget_override"].value == "reviewed: one-off large shard"
    assert meta["projected_cost"].value == pytest.approx(expected)
    numbers = refuse_over_budget("x", 0.5, 0.1, 0.3, override="ok")
    assert numbers["budget_remaining"] == pytest.approx(0.2) and numbers["budget_override"] == "ok"
    assert (
        refuse_over_budget("x", 5.0, 0.0, None, None)["budget"] is None
    )  # no budget configured: not enforced


def test_with_the_budget_spent_pretraining_and_the_pilot_refuse_before_they_spend(
    demo_runner, untrained_model_dir
):
    """Not only shards: pretraining the demo model and sampling a pilot project their cost first and
    refuse once the sft budget is spent (here by a pilot that metered 10^6 s); nothing is written."""
    from proj_assets.sft.budget_guard import OVERRIDE_TAG

    spent = stand_in_pilot(
        crafted_pilot(20, 0, 0),
        {"seconds_per_example": 1.0, "compute_seconds": 1e6, "compute_device": "cpu"},
    )
    assert demo_runner([k.PILOT], demo_runner.selected_pilot(), [spent]).success
    before = demo_runner.instance.get_latest_materialization_event(dg.AssetKey(k.PILOT)).run_id
    pretraining = demo_runner(
        [k.BASE_MODEL], raise_on_error=False
    )  # a fresh artifact store: it would pretrain
    assert not pretraining.success and "(pretraining)" in failure_message(pretraining)
    assert "exceeds the remaining sft budget" in failure_message(pretraining)
    assert not demo_runner.instance.get_latest_materialization_event(dg.AssetKey(k.BASE_MODEL))

    assert demo_runner([k.BASE_MODEL], stand_ins=[stand_in_base_model(untrained_model_dir)]).success
    pilot = demo_runner([k.PILOT], demo_runner.selected_pilot(), raise_on_error=False)
    message = failure_message(pilot)
    assert not pilot.success and "(pilot)" in message and OVERRIDE_TAG in message, message
    assert (
        demo_runner.instance.get_latest_materialization_event(dg.AssetKey(k.PILOT)).run_id == before
    )
