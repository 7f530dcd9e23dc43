"""The model source resource: a local model folder and its revision. The pure loading path lives
in `proj_resources.loaders.models`; its names are re-exported here for shell code and tests."""

import dagster as dg

from proj_resources.loaders.models import (
    ModelPathError,
    check_model_dir,
    load_causal_lm,
    load_encoder,
    load_tokenizer,
    qlora_quantization_config,
    weights_revision,
)

__all__ = [
    "ModelPathError",
    "ModelSource",
    "check_model_dir",
    "load_causal_lm",
    "load_encoder",
    "load_tokenizer",
    "qlora_quantization_config",
    "weights_revision",
]


class ModelSource(dg.ConfigurableResource):
    """A local model folder. `path=None` means the pipeline provides the model itself (demo)."""

    path: str | None = None
    revision: str | None = None  # e.g. a hub commit SHA; default: content hash of the weights

    def resolved_revision(self, path: str | None = None) -> str:
        return self.revision or weights_revision(str(path or self.path))
