"""The SFT chain on the three common base-model families, through the pure functions: a GPT-2
folder (byte-level BPE, no pad, Conv1D `c_attn`), a Llama-2-style folder (SentencePiece-like,
BOS/EOS, no pad: its decoder drops a completion's leading space) and a Llama-3-style folder (byte-
level BPE behind the split regex, BOS): encode and collate, the id-based masking check, LoRA on the
modules peft lists for the architecture, a saved adapter reloaded, and paired evaluation."""

import pytest

from proj_tests.family_tokenizers import gpt2_style, llama2_style, llama3_style

FAMILIES = {
    "gpt2": (gpt2_style, ["c_attn"]),
    "llama2": (llama2_style, ["q_proj", "v_proj"]),
    "llama3": (llama3_style, ["q_proj", "v_proj"]),
}


def _items():
    from proj_assets.sft.tasks import make_instructions

    return make_instructions(10, seed=3)


def _texts(builder) -> list[str]:
    return [
        builder.answer_prompt(i.instruction) + builder.completion(i.reference) for i in _items()
    ] * 3


def _model(family: str, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if family == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(
                vocab_size=len(tokenizer),
                n_embd=16,
                n_layer=1,
                n_head=2,
                n_positions=256,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        )
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=256,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_folder(request, tmp_path_factory):
    """(family, folder) of a randomly initialised model saved like a hub checkpoint (no pad token)."""
    import torch

    from proj_assets.sft.prompts import PromptBuilder

    build, _targets = FAMILIES[request.param]
    tokenizer = build(_texts(PromptBuilder(n_shots=0)))
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp(request.param)
    _model(request.param, tokenizer).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return request.param, folder


def test_each_family_reaches_paired_evaluation(family_folder, tmp_path):
    import polars as pl

    from proj_assets.sft.evaluation import answer_columns, paired_stats, stage_gate
    from proj_assets.sft.generation import generate
    from proj_assets.sft.lora_training import (
        choose_method,
        is_cuda_device,
        load_adapter_model,
        train_lora,
    )
    from proj_assets.sft.masking import collate, encode_example, masking_errors
    from proj_assets.sft.prompts import STOP_SEQUENCE, PromptBuilder
    from proj_assets.sft.settings import LoraSettings, QcSettings
    from proj_assets.sft.tokenizer import expects_bos, load_sft_tokenizer
    from proj_resources.models import load_causal_lm, load_tokenizer

    family, folder = family_folder
    assert (
        load_tokenizer(folder).pad_token_id is None
    )  # shipped without a pad token, like the hub checkpoints
    tokenizer = load_sft_tokenizer(folder)
    assert expects_bos(tokenizer) == (family != "gpt2")
    builder, items = PromptBuilder(n_shots=0), _items()
    prompts = [builder.answer_prompt(i.instruction) for i in items]
    completions = [builder.completion(i.reference) for i in items]
    cfg = LoraSettings(epochs=1, batch_size=4, r=2, alpha=4, dropout=0.0, max_length=64)
    batch = collate(
        [
            encode_example(tokenizer, p, c, cfg.max_length)
            for p, c in zip(prompts, completions, strict=False)
        ],
        tokenizer.pad_token_id,
    )
    assert masking_errors(tokenizer, prompts, completions, batch) == []

    assert choose_method(cfg.method, is_cuda_device("cpu"), has_bitsandbytes=True) == "lora"
    model, log = train_lora(
        load_causal_lm(folder), tokenizer, prompts, completions, cfg, log=lambda m: None
    )
    assert sorted(model.peft_config["default"].target_modules) == FAMILIES[family][1]
    assert len(log.train_losses) == 3 and all(loss > 0 for loss in log.train_losses)
    model.save_pretrained(tmp_path / "adapter", safe_serialization=True)

    tuned = load_adapter_model(folder, tmp_path / "adapter")
    greedy = {"max_new_tokens": 4, "stop": [STOP_SEQUENCE], "do_sample": False}
    with tuned.disable_adapter():
        base_out = generate(tuned, tokenizer, prompts, **greedy)
    tuned_out = generate(tuned, tokenizer, prompts, **greedy)
    columns = answer_columns(
        {"base": base_out, "sft": tuned_out}, [i.reference for i in items], QcSettings()
    )
    results = pl.DataFrame({"task_type": [i.task_type for i in items], **columns})
    stats = paired_stats(results)
    passed, overall = stage_gate(stats, 0.01)
    assert overall["n"] == len(items) and stats.height == 1 + len({i.task_type for i in items})
    assert not passed  # random weights do not beat themselves


def test_the_sentencepiece_decoder_drops_the_completions_leading_space():
    """Why masking compares ids: the completion's ids are right, their decoded text is not the completion."""
    from proj_assets.sft.masking import collate, encode_example, masking_errors
    from proj_assets.sft.prompts import PromptBuilder
    from proj_assets.sft.tokenizer import encode_continuation

    builder = PromptBuilder(n_shots=0)
    tokenizer = llama2_style(_texts(builder))
    tokenizer.pad_token = tokenizer.eos_token
    prompt, completion = builder.answer_prompt("Add 12 and 30."), " 42\n###"
    assert tokenizer.decode(encode_continuation(tokenizer, completion)) == "42\n###"
    batch = collate([encode_example(tokenizer, prompt, completion, 64)], tokenizer.pad_token_id)
    assert masking_errors(tokenizer, [prompt], [completion], batch) == []
    wrong = masking_errors(
        tokenizer, [prompt], [" 43\n###"], batch
    )  # the labels are not this completion
    assert len(wrong) == 1 and "unmasked labels are ids" in wrong[0]["problem"]
    batch["input_ids"][0, 0] = tokenizer.eos_token_id  # BOS replaced
    problems = masking_errors(tokenizer, [prompt], [completion], batch)[0]["problem"]
    assert "BOS" in problems and "masked ids are not the prompt's ids" in problems


def test_an_unknown_architecture_without_target_modules_is_a_clear_error():
    from types import SimpleNamespace

    import torch

    from proj_assets.sft.lora_training import lora_target_modules

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model.config = SimpleNamespace(model_type="my_new_arch")
    with pytest.raises(
        ValueError, match="no default LoRA target modules for model type 'my_new_arch'"
    ):
        lora_target_modules(model, None)
    assert lora_target_modules(model, ["0"]) == ["0"]
    with pytest.raises(ValueError, match=r"none of sft.lora.target_modules \['q_proj'\] exist"):
        lora_target_modules(model, ["q_proj"])


@pytest.mark.parametrize(
    "capability,expected", [((7, 5), "float16"), ((8, 0), "bfloat16"), ((9, 0), "bfloat16")]
)
def test_qlora_compute_dtype_follows_the_gpu(monkeypatch, capability, expected):
    import torch

    from proj_assets.sft.lora_training import qlora_compute_dtype

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert qlora_compute_dtype("cuda:0") == getattr(torch, expected)


@pytest.mark.parametrize(
    "device,expected", [("cpu", "lora"), ("cuda", "qlora"), ("cuda:1", "qlora"), ("mps", "lora")]
)
def test_qlora_follows_the_profiles_device_not_the_machine(device, expected):
    from proj_assets.sft.lora_training import choose_method, is_cuda_device

    assert choose_method("auto", is_cuda_device(device), has_bitsandbytes=True) == expected
