"""A Llama-style base model folder (byte-level BPE with BOS and EOS, *no pad token*, BOS expected
in front of every prompt, as Llama-3 base checkpoints ship) runs the whole SFT chain to
`sft/eval/stats` through the profile's `base_model_path`, with the one tokenizer policy applied."""

import json
from pathlib import Path

import pytest

from proj_assets.sft import keys as k
from proj_tests.sft.conftest import TINY_SFT, SftRunner, tiny

BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"


def llama_style_tokenizer(documents: list[str]):
    """Byte-level BPE whose post-processor puts BOS in front (Llama-3 style); no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        documents,
        trainers.BpeTrainer(
            vocab_size=320,
            special_tokens=[BOS, EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS)


@pytest.fixture(scope="module")
def llama_style_folder(tmp_path_factory) -> Path:
    from proj_assets.sft.demo_model import pretrain, pretraining_documents
    from proj_assets.sft.settings import DemoModelSettings

    cfg = DemoModelSettings(**TINY_SFT["demo_model"])
    folder = tmp_path_factory.mktemp("llama_style")
    tokenizer = llama_style_tokenizer(pretraining_documents(cfg))
    pretrain(cfg, folder, log=lambda m: None, tokenizer=tokenizer)
    return folder


def test_folder_is_shaped_like_a_llama_base_checkpoint(llama_style_folder):
    from proj_assets.sft.masking import encode_example
    from proj_assets.sft.tokenizer import encode_prompt, expects_bos, load_sft_tokenizer
    from proj_resources.models import load_tokenizer

    shipped = json.loads((llama_style_folder / "tokenizer_config.json").read_text())
    assert shipped.get("pad_token") is None and shipped["bos_token"] == BOS
    raw = load_tokenizer(llama_style_folder)
    assert raw.pad_token_id is None and raw("Add 1 and 2.")["input_ids"][0] == raw.bos_token_id

    tok = load_sft_tokenizer(llama_style_folder)
    assert tok.pad_token == EOS and tok.padding_side == "left" and expects_bos(tok)
    ids = encode_prompt(tok, "Instruction: Add 1 and 2.\nAnswer:")
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    long = encode_example(tok, "Instruction: " + "a " * 200 + "\nAnswer:", " 3\n###", max_length=32)
    assert (
        long.input_ids[0] == tok.bos_token_id and len(long.input_ids) == 32
    )  # cut after BOS, never before


def test_whole_chain_runs_on_a_no_pad_bos_model(llama_style_folder, tmp_path, instance):
    run = SftRunner(tiny(base_model_path=str(llama_style_folder)), tmp_path / "out", instance)
    base = run([k.BASE_MODEL])
    (mode,) = [
        e for e in base.get_asset_check_evaluations() if e.check_name == "completion_mode_only"
    ]
    assert mode.passed  # BOS in front is allowed; nothing else is added
    run([k.TEST_INSTRUCTIONS, k.PILOT_SETTINGS])
    run([k.PILOT], run.selected_pilot())
    for shard in run.shards():
        critic = run([k.SHARDS, k.CRITIC], shard)
    critic_meta = critic.asset_materializations_for_node("sft__data__critic_scores")[0].metadata
    assert set(critic_meta["critic_auc"].value) >= {"overall", "add", "count"}
    result = run([k.TRAINING_SET, k.ADAPTER, k.PAIRED, k.STATS])
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evals["prompt_tokens_masked"].passed and evals["no_test_overlap"].passed
    assert evals["stage_gate"].metadata["judge"].value == "strict exact match"
    adapter_meta = result.asset_materializations_for_node("sft__model__adapter")[0].metadata
    assert (
        adapter_meta["epochs_run"].value >= 1 and len(adapter_meta["validation_losses"].value) >= 1
    )
    stats = result.output_for_node("sft__eval__stats")
    for column in (
        "base_lenient_accuracy",
        "sft_lenient_accuracy",
        "base_runaway_rate",
        "sft_runaway_rate",
        "base_token_limit_rate",
        "sft_token_limit_rate",
        "git_sha",
        "run_id",
    ):
        assert stats[column].null_count() == 0, column
