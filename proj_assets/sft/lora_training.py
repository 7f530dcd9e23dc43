"""LoRA / QLoRA supervised fine-tuning with the prompt masked out of the loss.

QLoRA (4-bit NF4 base weights via bitsandbytes) runs only when the profile's device is CUDA (not
merely when the machine has a GPU: the demo profile's `device: cpu` stays on plain LoRA there);
`auto` picks it there and plain LoRA elsewhere. Asking for `qlora` where it cannot run is a clear
error, never a silent fallback. The 4-bit compute dtype is bfloat16 where the GPU supports it, else
float16. LoRA targets the modules peft lists for the model's architecture (`model_type`) unless
`sft.lora.target_modules` names them.
"""

import importlib.util
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from proj_assets.sft.masking import IGNORE_INDEX, Encoded, collate, encode_example
from proj_assets.sft.settings import LoraSettings
from proj_resources.loaders.models import load_causal_lm, qlora_quantization_config


class QLoRAUnavailableError(RuntimeError):
    """The profile asks for QLoRA on a machine without CUDA or without bitsandbytes."""


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def is_cuda_device(device) -> bool:
    """True for `cuda`, `cuda:1` or a torch.device of type cuda (the profile's device, not the machine's)."""
    return str(device).split(":", 1)[0] == "cuda"


def choose_method(requested: str, device_is_cuda: bool, has_bitsandbytes: bool) -> str:
    """`lora` or `qlora` for a requested method (`auto`, `lora`, `qlora`) on the profile's device
    (`device_is_cuda`: `is_cuda_device(compute.torch_device())`)."""
    if requested == "qlora":
        if not device_is_cuda:
            raise QLoRAUnavailableError(
                "sft.lora.method is 'qlora' but the profile's device is not CUDA "
                "(4-bit NF4 training needs a GPU); use method 'lora' or 'auto'"
            )
        if not has_bitsandbytes:
            raise QLoRAUnavailableError(
                "sft.lora.method is 'qlora' but bitsandbytes is not installed; "
                "install the extra: pip install -e '.[qlora]'"
            )
        return "qlora"
    if requested == "auto":
        return "qlora" if device_is_cuda and has_bitsandbytes else "lora"
    if requested == "lora":
        return "lora"
    raise ValueError(f"unknown sft.lora.method {requested!r} (auto, lora or qlora)")


def load_base_for_training(base_path: str | Path, method: str, device: str):
    """The base model, 4-bit quantized and prepared for k-bit training when `method` is qlora."""
    if method != "qlora":
        return load_causal_lm(base_path, device=device)
    from peft import prepare_model_for_kbit_training

    model = load_causal_lm(
        base_path,
        device=device,
        quantization_config=qlora_quantization_config(qlora_compute_dtype(device)),
    )
    return prepare_model_for_kbit_training(model)


def qlora_compute_dtype(device):
    """bfloat16 where the CUDA device computes in it natively (compute capability 8.0, Ampere, and
    later), else float16 (bfloat16 before Ampere is emulated: slow, or an error in some kernels)."""
    import torch

    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


def lora_target_modules(model, requested: Sequence[str] | None) -> list[str]:
    """The module names LoRA wraps: `requested` where set, else peft's defaults for the model's
    architecture (`config.model_type`: `c_attn` for GPT-2, `q_proj`/`v_proj` for Llama); only
    names present in the model, and at least one."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    model_type = getattr(model.config, "model_type", None)
    if requested is None and model_type not in PEFT_DEFAULTS:
        raise ValueError(
            f"peft has no default LoRA target modules for model type {model_type!r}: set "
            f"sft.lora.target_modules (this model's module names include {sorted(present)[:20]})"
        )
    wanted = list(requested) if requested is not None else PEFT_DEFAULTS[str(model_type)]
    targets = [m for m in wanted if m in present]
    if not targets:
        source = (
            "sft.lora.target_modules"
            if requested is not None
            else f"peft's defaults for {model_type!r}"
        )
        raise ValueError(
            f"none of {source} {wanted} exist in this model "
            f"(its module names include {sorted(present)[:20]})"
        )
    return targets


def attach_lora(model, cfg: LoraSettings):
    from peft import LoraConfig, get_peft_model

    targets = lora_target_modules(model, cfg.target_modules)
    config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def adapted_modules(model) -> list[str]:
    """The module names (last path component) peft actually wrapped with LoRA in `model`: what
    was adapted, as opposed to what was asked for."""
    from peft.tuners.lora import LoraLayer

    return sorted(
        {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    )


def quantized_compute_dtype(model) -> str | None:
    """The compute dtype of `model`'s 4-bit layers (bitsandbytes `Linear4bit`, matched by name so
    this runs where bitsandbytes is not installed), e.g. `bfloat16`; None when it has none."""
    for module in model.modules():
        dtype = getattr(module, "compute_dtype", None)
        if type(module).__name__ == "Linear4bit" and dtype is not None:
            return str(dtype).removeprefix("torch.")
    return None


@dataclass
class TrainingLog:
    """What a fine-tuning run did: per-step train loss and learning rate, per-epoch validation loss."""

    train_losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    n_train: int = 0
    n_val: int = 0


def split_train_val(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffled (train, validation) indices; at least one row in each (so at least 2 rows)."""
    if n < 2:
        raise ValueError(
            f"cannot fine-tune on {n} example(s): training needs at least 2 (one for validation)"
        )
    order = random.Random(seed).sample(range(n), n)
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    return order[n_val:], order[:n_val]


def validation_loss(
    model, examples: Sequence[Encoded], pad_token_id: int, batch_size: int
) -> float:
    """Mean per-token loss over the completion tokens of `examples` (no gradient)."""
    import torch

    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    with torch.no_grad():
        for lo in range(0, len(examples), batch_size):
            batch = {
                k: v.to(device)
                for k, v in collate(examples[lo : lo + batch_size], pad_token_id).items()
            }
            n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            total += float(model(**batch).loss) * n
            tokens += n
    return total / max(tokens, 1)


def train_lora(
    model,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    cfg: LoraSettings,
    log: Callable[[str], None] = print,
):
    """Attach LoRA to `model` and train it on (prompt, completion) pairs; return (model, TrainingLog).

    Epochs over a shuffled training split with linear warmup then a cosine decay, gradients
    clipped to `grad_clip`; after every epoch the validation split's loss decides early stopping
    (`patience` epochs without an improvement of `min_delta`), and the best epoch's weights are
    kept. A non-finite loss stops training with an error instead of saving a broken adapter.
    """
    import torch
    from transformers import get_cosine_schedule_with_warmup

    if not prompts:
        raise ValueError("cannot fine-tune on an empty training set")
    torch.manual_seed(cfg.seed)
    examples = [
        encode_example(tokenizer, p, c, cfg.max_length)
        for p, c in zip(prompts, completions, strict=True)
    ]
    train_idx, val_idx = split_train_val(len(examples), cfg.val_fraction, cfg.seed)
    train, val = [examples[i] for i in train_idx], [examples[i] for i in val_idx]
    model = attach_lora(model, cfg)
    device = next(model.parameters()).device
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate)
    per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = per_epoch * cfg.epochs
    schedule = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_fraction * total), total)
    history = TrainingLog(n_train=len(train), n_val=len(val))
    rng, best, best_state, stale, start = (
        random.Random(cfg.seed),
        math.inf,
        None,
        0,
        time.perf_counter(),
    )
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.sample(range(len(train)), len(train))
        for lo in range(0, len(order), cfg.batch_size):
            batch = collate(
                [train[i] for i in order[lo : lo + cfg.batch_size]], tokenizer.pad_token_id
            )
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite training loss {loss.item()} at epoch {epoch + 1}, step "
                    f"{len(history.train_losses) + 1}: lower sft.lora.learning_rate"
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            history.train_losses.append(loss.item())
            history.learning_rates.append(schedule.get_last_lr()[0])
        model.eval()
        history.val_losses.append(
            validation_loss(model, val, tokenizer.pad_token_id, cfg.batch_size)
        )
        rate = len(history.train_losses) / (time.perf_counter() - start)
        log(
            f"sft epoch {epoch + 1}/{cfg.epochs}: train loss {history.train_losses[-1]:.4f}, "
            f"validation loss {history.val_losses[-1]:.4f} ({rate:.1f} steps/s, "
            f"ETA {(total - len(history.train_losses)) / rate:.0f}s at most)"
        )
        if history.val_losses[-1] < best - cfg.min_delta:
            best, stale, history.best_epoch = history.val_losses[-1], 0, epoch + 1
            best_state = {
                k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad
            }
        else:
            stale += 1
            if stale >= cfg.patience:
                history.stopped_early = epoch + 1 < cfg.epochs
                break
    if best_state is not None:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in best_state:
                    param.copy_(best_state[name])
    model.eval()
    return model, history


def load_adapter_model(
    base_path: str | Path, adapter_dir: str | Path, device: str = "cpu", method: str = "lora"
):
    """Base model with a saved adapter attached (safetensors), for evaluation. A QLoRA adapter is
    evaluated on the same 4-bit NF4 base it was trained on, never on full-precision weights."""
    from peft import PeftModel

    if (
        method == "qlora"
    ):  # a clear error where 4-bit cannot run, never a silent full-precision base
        choose_method("qlora", is_cuda_device(device), bitsandbytes_available())
    quantized = (
        {"quantization_config": qlora_quantization_config(qlora_compute_dtype(device))}
        if method == "qlora"
        else {}
    )
    base = load_causal_lm(base_path, device=device, **quantized)
    return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False).eval()
