"""Trained weights as content-addressed artifacts.

A model is stored under `<artifact root>/scaling/models/<hash of its spec>/` as
`model.safetensors` (the state dict; the spec is also in its header metadata) and `model.json`
(spec and metrics). The spec is everything that determines the weights: the resolved
configuration with its seed, the data version (a hash of the training arrays) and the code
version (git SHA, package versions), so re-running the same spec finds the stored copy instead of
writing another. Loading needs only safetensors and the spec, never pickle.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from torch import nn

from proj_resources.hashing import sha256_file

MODELS_KIND = "scaling/models"
WEIGHTS_FILE, SPEC_FILE = "model.safetensors", "model.json"


def data_version(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """sha256 over every split's features and labels (shape, dtype and bytes)."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        for array in splits[name]:
            array = np.ascontiguousarray(array)
            digest.update(f"{name}:{array.shape}:{array.dtype}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def save_model(artifacts, model: nn.Module, spec: dict, metrics: dict) -> dict:
    """Store the weights for `spec` (once) and return where: path, sha256, bytes, spec hash."""
    from safetensors.torch import save_file

    final = artifacts.content_path(MODELS_KIND, spec)
    if not (final / WEIGHTS_FILE).is_file():
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        with artifacts.atomic_dir(final) as tmp:
            save_file(
                state,
                str(tmp / WEIGHTS_FILE),
                metadata={"spec": json.dumps(spec, sort_keys=True, default=str)},
            )
            (tmp / SPEC_FILE).write_text(
                json.dumps({"spec": spec, "metrics": metrics}, indent=2, default=str)
            )
    weights = final / WEIGHTS_FILE
    return {
        "model_path": str(weights),
        "model_sha256": sha256_file(weights),
        "model_bytes": weights.stat().st_size,
        "model_spec_hash": final.name,
    }


def load_state(path: str | Path) -> tuple[dict, dict]:
    """(state dict, spec) of a stored model."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        spec = json.loads(handle.metadata()["spec"])
    return load_file(str(path)), spec
