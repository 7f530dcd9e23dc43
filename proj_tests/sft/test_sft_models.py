"""Completion-mode loading, LoRA/QLoRA selection, and an adapter that reloads and reproduces outputs."""

import shutil

import pytest
import torch

from proj_assets.sft.completion_model import load_completion_model, sentinel_failures
from proj_assets.sft.lora_training import (
    QLoRAUnavailableError,
    adapted_modules,
    choose_method,
    load_adapter_model,
    quantized_compute_dtype,
    train_lora,
)
from proj_assets.sft.prompts import PromptBuilder
from proj_assets.sft.settings import LoraSettings
from proj_resources.models import ModelPathError, load_causal_lm, load_tokenizer


def test_chat_template_is_removed_and_never_applied(untrained_model_dir, tmp_path):
    folder = tmp_path / "with_template"
    shutil.copytree(untrained_model_dir, folder)
    tok = load_tokenizer(folder)
    tok.chat_template = "{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(folder)
    cm = load_completion_model(folder)
    assert cm.shipped_chat_template and cm.tokenizer.chat_template is None
    with pytest.raises(ValueError):
        cm.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert sentinel_failures(cm, PromptBuilder(n_shots=1), max_new_tokens=4) == []
    cm.tokenizer.chat_template = (
        tok.chat_template
    )  # someone re-attaches it: the sentinel check fails
    failures = sentinel_failures(cm, PromptBuilder(n_shots=1), max_new_tokens=4)
    assert failures and all("chat template attached" in f["reason"] for f in failures)


def test_missing_or_unsafe_model_paths_are_clear_errors(tmp_path, untrained_model_dir):
    with pytest.raises(ModelPathError, match="does not exist"):
        load_completion_model(tmp_path / "nope")
    pickled = tmp_path / "pickled"
    shutil.copytree(untrained_model_dir, pickled)
    for f in pickled.glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(ModelPathError, match="safetensors"):
        load_completion_model(pickled)


@pytest.mark.parametrize(
    "requested,cuda,bnb,expected",
    [
        ("auto", False, True, "lora"),
        ("auto", True, False, "lora"),
        ("auto", True, True, "qlora"),
        ("lora", True, True, "lora"),
        ("qlora", True, True, "qlora"),
    ],
)
def test_method_choice(requested, cuda, bnb, expected):
    assert choose_method(requested, cuda, bnb) == expected


def test_qlora_without_cuda_or_bitsandbytes_is_a_clear_error():
    with pytest.raises(QLoRAUnavailableError, match="device is not CUDA"):
        choose_method("qlora", device_is_cuda=False, has_bitsandbytes=True)
    with pytest.raises(QLoRAUnavailableError, match=r"pip install -e '\.\[qlora\]'"):
        choose_method("qlora", device_is_cuda=True, has_bitsandbytes=False)


def test_adapter_reloads_and_reproduces_its_outputs(untrained_model_dir, tmp_path):
    tok = load_tokenizer(untrained_model_dir)
    builder = PromptBuilder(n_shots=0)
    prompts = [builder.answer_prompt(f"Add {a} and {a}.") for a in range(10, 18)]
    completions = [builder.completion(str(2 * a)) for a in range(10, 18)]
    cfg = LoraSettings(
        epochs=1, batch_size=4, r=2, alpha=4, learning_rate=0.05, dropout=0.0, warmup_fraction=0.0
    )
    model, log = train_lora(
        load_causal_lm(untrained_model_dir), tok, prompts, completions, cfg, log=lambda m: None
    )
    assert (
        (log.n_train, log.n_val) == (7, 1)
        and len(log.train_losses) == 2
        and len(log.val_losses) == 1
    )
    assert adapted_modules(model) == ["q_proj", "v_proj"]  # peft's Llama defaults, as wrapped
    assert quantized_compute_dtype(model) is None  # full-precision base
    model.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    ids = tok(prompts[:2], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        trained = model(**ids).logits
        reloaded = load_adapter_model(untrained_model_dir, tmp_path / "adapter")
        again = reloaded(**ids).logits
        base = load_causal_lm(untrained_model_dir)(**ids).logits
    torch.testing.assert_close(again, trained)
    assert not torch.allclose(base, trained)  # the adapter changed the model


def test_a_qlora_adapter_is_only_evaluated_on_a_4bit_base(untrained_model_dir, tmp_path):
    # the profile's device decides, on any machine: a CPU device never loads a 4-bit base
    with pytest.raises(QLoRAUnavailableError, match="device is not CUDA"):
        load_adapter_model(untrained_model_dir, tmp_path / "adapter", method="qlora")


def test_empty_training_set_is_refused(untrained_model_dir):
    tok = load_tokenizer(untrained_model_dir)
    with pytest.raises(ValueError, match="empty training set"):
        train_lora(
            load_causal_lm(untrained_model_dir), tok, [], [], LoraSettings(), log=lambda m: None
        )


def test_the_4bit_compute_dtype_is_read_from_the_quantized_layers():
    class Linear4bit(torch.nn.Linear):  # stands in for bitsandbytes' layer (not installed on CPU)
        compute_dtype = torch.bfloat16

    assert quantized_compute_dtype(torch.nn.Sequential(torch.nn.Linear(2, 2))) is None
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), Linear4bit(2, 2))
    assert quantized_compute_dtype(model) == "bfloat16"


def test_the_base_model_data_version_is_the_folders_content_hash(
    untrained_model_dir, tmp_path, instance
):
    from safetensors.torch import load_file, save_file

    from proj_assets.sft.keys import BASE_MODEL
    from proj_tests.sft.conftest import SftRunner, tiny

    folder = tmp_path / "model"
    shutil.copytree(untrained_model_dir, folder)
    runner = SftRunner(tiny(base_model_path=str(folder)), tmp_path / "out", instance)

    def data_version() -> str:
        (event,) = runner([BASE_MODEL]).asset_materializations_for_node("sft__model__base_model")
        return event.tags["dagster/data_version"]

    first = data_version()
    assert data_version() == first  # same files, same version
    (weights,) = folder.glob("*.safetensors")
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    assert data_version() != first  # changed weights: everything built from them is stale
