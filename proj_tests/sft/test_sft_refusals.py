"""Bad input and empty outputs get a clear error and nothing downstream runs: a training set that
filtering empties, a base model folder that needs remote code or has no weights or tokenizer, a
test set with a repeated item, a model whose generations are all empty."""

import json
import shutil

import dagster as dg
import polars as pl
import pytest

from proj_assets.shared.conventions import table_metadata
from proj_assets.partitions import sft_shard_partitions
from proj_assets.sft import assets, checks
from proj_assets.sft import keys as k
from proj_assets.sft.model_folder import check_base_model_folder
from proj_resources.loaders.models import ModelPathError
from proj_tests.sft.conftest import selected_pilot, stand_in_pilot
from proj_tests.sft.test_sft_shard_and_model_gates import crafted_shard, stand_in_test_instructions


@pytest.fixture
def resources(tmp_path):
    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile

    return build_resources(load_profile(), tmp_path)


def failure_message(run) -> str:
    return str(next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error)


def test_a_training_set_the_critic_empties_refuses_with_counts_and_stops_the_adapter(resources):
    data = {s: crafted_shard(s, 20, 0, 1) for s in sft_shard_partitions.get_partition_keys()}  # 1 of 20 at the limit: gate ok

    @dg.asset(key=k.SHARDS, group_name="sft", partitions_def=sft_shard_partitions,
              metadata=table_metadata(k.SHARDS, partition_expr="shard"))
    def scale_shards(context) -> pl.DataFrame:
        return data[context.partition_key]

    @dg.asset(key=k.CRITIC, group_name="sft", partitions_def=sft_shard_partitions,
              metadata=table_metadata(k.CRITIC, partition_expr="shard"))
    def critic_scores(context) -> pl.DataFrame:  # the critic rejects everything
        return data[context.partition_key].select("example_id", "shard").with_columns(
            pl.lit(-3.0).alias("critic_margin"), pl.lit(0.0).alias("critic_threshold"), pl.lit(False).alias("critic_keep"))

    shard_checks = [checks.shard_runaway_rate_below_max, checks.shard_token_limit_rate_below_max]
    test_instr = stand_in_test_instructions()
    with dg.instance_for_test() as instance:
        for shard in data:
            assert dg.materialize([scale_shards, critic_scores, *shard_checks], partition_key=shard, instance=instance,
                                  resources=resources).success
        assert dg.materialize([test_instr], instance=instance, resources=resources).success
        run = dg.materialize([assets.training_set, assets.adapter, scale_shards, critic_scores, test_instr],
                             selection=[dg.AssetKey(k.TRAINING_SET), dg.AssetKey(k.ADAPTER)], instance=instance,
                             resources=resources, raise_on_error=False)
        assert not run.success
        message = failure_message(run)
        assert "0 rows left after filtering, at least 50 needed" in message  # demo profile: min_training_rows 50
        assert "generated=40" in message and "dropped_runaway=0" in message and "dropped_token_limit=2" in message
        assert "dropped_by_critic=38" in message
        assert "dropped_test_overlap=0" in message
        assert not instance.get_latest_materialization_event(dg.AssetKey(k.TRAINING_SET))
        assert not instance.get_latest_materialization_event(dg.AssetKey(k.ADAPTER))  # nothing downstream ran
        started = [e.step_key for e in run.all_events if e.event_type_value == "STEP_START"]
        assert started == ["sft__data__training_set"]  # the adapter step never started


def test_base_model_folders_that_cannot_be_used_are_refused(untrained_model_dir, tmp_path):
    assert check_base_model_folder(untrained_model_dir) == untrained_model_dir
    remote = tmp_path / "remote_code"
    shutil.copytree(untrained_model_dir, remote)
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModelForCausalLM": "modeling_x.X"}}))
    with pytest.raises(ModelPathError, match="needs remote code"):
        check_base_model_folder(remote)

    template_only = tmp_path / "template_only"  # what a chat model's template folder looks like alone
    template_only.mkdir()
    (template_only / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    (template_only / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
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


def test_the_base_model_asset_refuses_a_remote_code_folder(untrained_model_dir, tmp_path):
    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile
    from proj_resources.models import ModelSource

    remote = tmp_path / "remote_code"
    shutil.copytree(untrained_model_dir, remote)
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoConfig": "configuration_x.XConfig"}}))
    resources = {**build_resources(load_profile(), tmp_path / "out"), "base_model": ModelSource(path=str(remote))}
    with dg.instance_for_test() as instance:
        run = dg.materialize([assets.base_model], instance=instance, resources=resources, raise_on_error=False)
        assert not run.success and "needs remote code" in failure_message(run)
        assert not instance.get_latest_materialization_event(dg.AssetKey(k.BASE_MODEL))


def test_a_repeated_test_item_is_refused_and_the_frozen_set_is_kept(resources, tmp_path):
    with dg.instance_for_test() as instance:
        assert dg.materialize([assets.test_instructions], instance=instance, resources=resources).success
        (frozen,) = (tmp_path / "artifacts" / "sft_test_set").glob("*.json")
        rows = json.loads(frozen.read_text())
        frozen.write_text(json.dumps(rows + [rows[3]]))  # someone appended a copy of an item
        run = dg.materialize([assets.test_instructions], instance=instance, resources=resources, raise_on_error=False)
        assert not run.success
        message = failure_message(run)
        assert "repeats 1 instruction" in message and rows[3]["instruction"].lower() in message
        records = instance.fetch_materializations(dg.AssetKey(k.TEST_INSTRUCTIONS), limit=10).records
        assert len(records) == 1  # only the first, good materialization
        assert resources["warehouse"].query("select count(*) as n from sft_data.test_instructions")["n"][0] == len(rows)


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
    with pytest.raises(EmptyGenerationsError, match="all 6 generated completions \\(pilot\\) are empty"):
        generate_examples(model, tokenizer, n=6, data_seed=1, slot=0, id_prefix="pilot", builder=PromptBuilder(n_shots=1),
                          sampling=SamplingSettings(max_new_tokens=4), qc=QcSettings())
    assert torch.is_tensor(model(**tokenizer(["a"], return_tensors="pt")).logits)


def test_a_shard_whose_projected_cost_exceeds_the_budget_refuses_unless_overridden(resources):
    from proj_assets.sft.budget_guard import OVERRIDE_TAG, projected_cost, refuse_over_budget
    from proj_tests.sft.test_sft_gates import crafted_pilot

    # a clean pilot that measured 60 s per example
    pilot_generations = stand_in_pilot(crafted_pilot(20, 0, 0), {"seconds_per_example": 60.0})

    pilot_checks = [checks.pilot_runaway_rate_below_max, checks.pilot_token_limit_rate_below_max]
    with dg.instance_for_test() as instance:
        assert dg.materialize([pilot_generations, *pilot_checks], partition_key=selected_pilot(instance),
                              instance=instance, resources=resources).success
        run = dg.materialize([assets.scale_shards, pilot_generations], selection=[dg.AssetKey(k.SHARDS)],
                             partition_key="shard_00", instance=instance, resources=resources, raise_on_error=False)
        assert not run.success
        # demo: 60 s x 300 examples at 0.05/h = 0.25 against an sft budget of 0.02
        expected = projected_cost(60.0, 300, 0.05)
        message = failure_message(run)
        assert f"projected cost {expected:.6g} exceeds the remaining sft budget" in message and OVERRIDE_TAG in message
        assert not instance.get_latest_materialization_event(dg.AssetKey(k.SHARDS))

        overridden = dg.materialize([assets.scale_shards, pilot_generations], selection=[dg.AssetKey(k.SHARDS)],
                                    partition_key="shard_00", instance=instance, resources=resources,
                                    raise_on_error=False, tags={OVERRIDE_TAG: "reviewed: one-off large shard"})
        # past the budget; it stops at the next gate (no base model was built in this test)
        assert "budget" not in failure_message(overridden) and "completion_mode_only" in failure_message(overridden)
    numbers = refuse_over_budget("x", 0.5, 0.1, 0.3, override="ok")
    assert numbers["budget_remaining"] == pytest.approx(0.2) and numbers["budget_override"] == "ok"
    assert refuse_over_budget("x", 5.0, 0.0, None, None)["budget"] is None  # no budget configured: not enforced
