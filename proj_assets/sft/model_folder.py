"""Checking a user's base model folder before anything is built from it.

`proj_resources.loaders.models.check_model_dir` already refuses a missing folder, a folder without
config.json and one without safetensors weights (pickled `.bin` files are never loaded). A base
model for this domain must also load without remote code (`trust_remote_code=False` would silently
fall back to a built-in class, or fail deep inside transformers) and ship its own tokenizer.
"""

import json
from pathlib import Path

from proj_resources.hashing import canonical_hash, sha256_file
from proj_resources.loaders.models import ModelPathError, check_model_dir

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelPathError(f"{path} is not valid JSON: {error}") from error


def check_base_model_folder(path: str | Path) -> Path:
    """The folder as a Path, or a `ModelPathError` that says what is wrong with it."""
    folder = check_model_dir(path)
    for name in ("config.json", "tokenizer_config.json"):
        file = folder / name
        if file.is_file() and "auto_map" in _json(file):
            raise ModelPathError(
                f"{file} declares auto_map {_json(file)['auto_map']}: the model needs remote code, "
                "which is never run here (trust_remote_code=False); use a folder whose "
                "architecture transformers ships"
            )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        found = sorted(p.name for p in folder.iterdir())
        raise ModelPathError(
            f"model path {folder} has no tokenizer (none of {list(TOKENIZER_FILES)}; found {found})"
        )
    return folder


def content_hash(folder: Path) -> str:
    """The sha256 of the folder's config and every safetensors weights file, hashed together by
    name: the base model asset's Dagster data version, so a changed model marks every asset built
    from it stale (the tokenizer is checked by `completion_mode_only`, not versioned here)."""
    files = [folder / "config.json", *sorted(folder.glob("*.safetensors"))]
    return canonical_hash({f.name: sha256_file(f) for f in files})
