"""LoRA / QLoRA supervised fine-tuning with the prompt masked out of the loss.

QLoRA (4-bit NF4 base weights via bitsandbytes) runs only where CUDA is present; `auto` picks it
there and plain LoRA on CPU. Asking for `qlora` where it cannot run is a clear error, never a
silent fallback.
"""

import importlib.util
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from proj_assets.sft.masking import collate, encode_example
from proj_assets.sft.settings import LoraSettings
from proj_resources.loaders.models import load_causal_lm, qlora_quantization_config


class QLoRAUnavailableError(RuntimeError):
    """The profile asks for QLoRA on a machine without CUDA or without bitsandbytes."""


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def choose_method(requested: str, has_cuda: bool, has_bitsandbytes: bool) -> str:
    """`lora` or `qlora` for a requested method (`auto`, `lora`, `qlora`) on this machine."""
    if requested == "qlora":
        if not has_cuda:
            raise QLoRAUnavailableError("sft.lora.method is 'qlora' but CUDA is not available on this machine "
                                        "(4-bit NF4 training needs a GPU); use method 'lora' or 'auto'")
        if not has_bitsandbytes:
            raise QLoRAUnavailableError("sft.lora.method is 'qlora' but bitsandbytes is not installed; "
                                        "install the extra: pip install -e '.[qlora]'")
        return "qlora"
    if requested == "auto":
        return "qlora" if has_cuda and has_bitsandbytes else "lora"
    if requested == "lora":
        return "lora"
    raise ValueError(f"unknown sft.lora.method {requested!r} (auto, lora or qlora)")


def load_base_for_training(base_path: str | Path, method: str, device: str):
    """The base model, 4-bit quantized and prepared for k-bit training when `method` is qlora."""
    if method != "qlora":
        return load_causal_lm(base_path, device=device)
    from peft import prepare_model_for_kbit_training

    model = load_causal_lm(base_path, device=device, quantization_config=qlora_quantization_config())
    return prepare_model_for_kbit_training(model)


def attach_lora(model, cfg: LoraSettings):
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [m for m in cfg.target_modules if m in present]
    if not targets:
        raise ValueError(f"none of sft.lora.target_modules {cfg.target_modules} exist in this model "
                         f"(its module names include {sorted(present)[:20]})")
    config = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def train_lora(model, tokenizer, prompts: Sequence[str], completions: Sequence[str], cfg: LoraSettings,
               log: Callable[[str], None] = print):
    """Attach LoRA to `model` and train it on (prompt, completion) pairs; return (model, losses)."""
    import torch

    if not prompts:
        raise ValueError("cannot fine-tune on an empty training set")
    torch.manual_seed(cfg.seed)
    model = attach_lora(model, cfg)
    device = next(model.parameters()).device
    examples = [encode_example(tokenizer, p, c, cfg.max_length) for p, c in zip(prompts, completions, strict=True)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    rng, order, losses, start = random.Random(cfg.seed), [], [], time.perf_counter()
    model.train()
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:  # reshuffle each epoch
            order += rng.sample(range(len(examples)), len(examples))
        batch = collate([examples[i] for i in order[: cfg.batch_size]], tokenizer.pad_token_id)
        del order[: cfg.batch_size]
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % max(1, cfg.steps // 5) == 0 or step + 1 == cfg.steps:
            rate = (step + 1) / (time.perf_counter() - start)
            log(f"sft step {step + 1}/{cfg.steps} loss {loss:.4f} ({rate:.1f} steps/s, "
                f"ETA {(cfg.steps - step - 1) / rate:.0f}s)")
    model.eval()
    return model, losses


def load_adapter_model(base_path: str | Path, adapter_dir: str | Path, device: str = "cpu"):
    """Base model with a saved adapter attached (safetensors), for evaluation."""
    from peft import PeftModel

    base = load_causal_lm(base_path, device=device)
    return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False).eval()
