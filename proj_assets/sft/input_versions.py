"""The input versions SFT data rows are stamped with, and readers select current rows by
(`proj_resources.fingerprints`): a row is current when every input that produced it is still the
version the profile and the base model give now.

- `base_model`: the base model's revision (a hub commit, else the content hash of its weights);
  `none` before a base model was materialized, which no stored row carries;
- `prompt`: the prompt template hash (tags, shots, critic question);
- `task_generator`: the task generators' source hash and the data seed;
- `sampling` and `qc`: the sampling settings of the row's pilot iteration or of the shards, and
  the QC thresholds the flags were set with;
- `critic` (critic and pilot rows): the critic template and the filter rule's settings;
  `pilot` (critic rows): the pilot iteration whose labels chose the threshold;
- `test_set` (training rows): the held-out set's content hash and the n-gram rule;
- `code`: the source hash of the data modules (`data_code_version`), also each data asset's
  Dagster `code_version`, so a code change marks the tables stale in the UI.
"""

import hashlib
from collections.abc import Sequence
from pathlib import Path

from proj_assets.sft.iterations import sampling_hash
from proj_assets.sft.prompts import PromptBuilder
from proj_assets.sft.settings import SamplingSettings, SftSettings
from proj_resources.hashing import canonical_hash

HERE = Path(__file__).parent
DATA_MODULES = (
    "critic.py",
    "critic_calibration.py",
    "data_generation.py",
    "dataset.py",
    "generation.py",
    "overlap_audit.py",
    "prompts.py",
    "qc.py",
    "tasks.py",
    "tokenizer.py",
)


def sources_hash(names: Sequence[str]) -> str:
    """Hash of the named module files of this package (16 hex digits)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()[:16]


def data_code_version() -> str:
    return sources_hash(DATA_MODULES)


def generation_inputs(
    cfg: SftSettings, model_revision: str | None, sampling: SamplingSettings
) -> dict[str, str]:
    """Inputs of sampled rows (pilot and shards)."""
    builder = PromptBuilder(n_shots=cfg.prompt_shots, critic_shots=cfg.critic_shots)
    return {
        "base_model": model_revision or "none",
        "prompt": builder.template_hash(),
        "task_generator": f"{sources_hash(('tasks.py',))}/seed={cfg.data_seed}",
        "sampling": sampling_hash(sampling),
        "qc": canonical_hash(cfg.qc.model_dump()),
        "code": data_code_version(),
    }


def critic_version(cfg: SftSettings) -> str:
    return canonical_hash(
        {
            "template": PromptBuilder(critic_shots=cfg.critic_shots).template_hash(),
            "fallback_threshold": cfg.critic_margin_threshold,
            "confidence": cfg.critic_auc_confidence,
            "force_filter": cfg.critic_force_filter,
        }
    )


def pilot_inputs(
    cfg: SftSettings, model_revision: str | None, sampling: SamplingSettings
) -> dict[str, str]:
    """Inputs of a pilot iteration's rows (sampled with `sampling`, scored by the critic)."""
    return {**generation_inputs(cfg, model_revision, sampling), "critic": critic_version(cfg)}


def shard_inputs(cfg: SftSettings, model_revision: str | None) -> dict[str, str]:
    return generation_inputs(cfg, model_revision, cfg.sampling)


def critic_inputs(cfg: SftSettings, model_revision: str | None, pilot: str) -> dict[str, str]:
    """Inputs of a shard's critic rows: the shard's, the critic's and the selected `pilot`."""
    return {**shard_inputs(cfg, model_revision), "critic": critic_version(cfg), "pilot": pilot}


def training_inputs(
    cfg: SftSettings, model_revision: str | None, pilot: str, test_set: str
) -> dict[str, str]:
    """Inputs of training rows: the critic rows' and the test set (`test_set`: its content hash)."""
    return {
        **critic_inputs(cfg, model_revision, pilot),
        "test_set": f"{test_set}/ngram={cfg.decontamination_ngram}",
    }
