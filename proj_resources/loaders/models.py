"""Loading local Hugging Face models safely: local files only, safetensors only, no remote code.

Pure loading code (no dagster): `proj_resources.models.ModelSource` is the resource that uses it,
core modules and tests call it directly on tiny models. Nothing here reaches a hub: a missing or
wrong path is a clear error.
"""

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Per-load tqdm bars flood run logs; progress is logged through context.log instead.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class ModelPathError(FileNotFoundError):
    """A model path is missing, is not a model folder, or has no safetensors weights."""


def check_model_dir(path: str | Path) -> Path:
    """The folder as a Path, after checking it holds config.json and *.safetensors weights."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelPathError(f"model path {folder} does not exist or is not a folder")
    if not (folder / "config.json").is_file():
        raise ModelPathError(
            f"model path {folder} has no config.json: not a Hugging Face model folder"
        )
    if not any(folder.glob("*.safetensors")):
        found = sorted(p.name for p in folder.iterdir())
        raise ModelPathError(
            f"model path {folder} has no *.safetensors weights (found {found}); "
            "only safetensors are loaded, never pickled .bin files"
        )
    return folder


@functools.cache
def weights_revision(path: str) -> str:
    """A content hash of the weights and config, used as the model revision for local models."""
    folder = check_model_dir(path)
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.safetensors")) + [folder / "config.json"]:
        digest.update(file.name.encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    folder = check_model_dir(path)
    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)


def load_causal_lm(
    path: str | Path, device: str = "cpu", torch_dtype=None, quantization_config=None
):
    from transformers import AutoModelForCausalLM

    folder = check_model_dir(path)
    kwargs: dict[str, Any] = {
        "trust_remote_code": False,
        "local_files_only": True,
        "use_safetensors": True,
    }
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    # PreTrainedModel.to is `@wraps(nn.Module.to)`: typeshed's _Wrapped keeps the unbound
    # signature, so mypy takes `device` for `self`
    return model if quantization_config is not None else model.to(device)  # type: ignore[arg-type]


def load_encoder(path: str | Path, device: str = "cpu"):
    """A base model (no head) for hidden-state extraction, e.g. BERT-like or decoder-only."""
    from transformers import AutoModel

    folder = check_model_dir(path)
    return AutoModel.from_pretrained(
        folder, trust_remote_code=False, local_files_only=True, use_safetensors=True
    ).to(device)


def qlora_quantization_config(compute_dtype):
    """4-bit NF4 weights with double quantization, computing in `compute_dtype` (bfloat16 where the
    GPU supports it, else float16): the QLoRA recipe (needs bitsandbytes; used only on CUDA)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
