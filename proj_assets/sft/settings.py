"""SFT section of a profile: base model, data sizes, sampling, QC thresholds, LoRA and evaluation."""

from typing import Literal

from pydantic import Field

from proj_assets.settings_base import Section


class DemoModelSettings(Section):
    """The tiny causal LM the demo pretrains itself when no base model path is configured."""

    n_documents: int = Field(3000, ge=10)
    blocks_per_document: int = Field(6, ge=1)
    # Realistic mess in the pretraining text: wrong answers, critic blocks, blocks run together.
    answer_noise: float = Field(0.2, ge=0, le=1)
    critic_fraction: float = Field(0.3, ge=0, le=1)
    unseparated_fraction: float = Field(0.03, ge=0, le=1)
    # Answer format per document (weights): only `plain` is what the task programs check, so a
    # model asked without demonstrations often answers in another format (see demo_model.py).
    answer_styles: dict[str, float] = Field(
        default_factory=lambda: {"plain": 0.2, "sentence": 0.4, "explained": 0.4}
    )
    vocab_size: int = Field(400, ge=64)
    hidden_size: int = Field(64, ge=8)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(4, ge=1)
    seq_len: int = Field(128, ge=16)
    train_steps: int = Field(1200, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    seed: int = 0


class SamplingSettings(Section):
    temperature: float = Field(0.8, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(24, ge=1)
    stop: list[str] = Field(default_factory=lambda: ["\n###"], min_length=1)
    seed: int = 7
    batch_size: int = Field(64, ge=1)


class QcSettings(Section):
    runaway_max: float = Field(0.05, ge=0, le=1)
    token_limit_max: float = Field(0.10, ge=0, le=1)
    # A loop (qc.py): a unit of 1..repetition_max_period symbols repeated at least repetition_times
    # times in a row, over at least repetition_min_span symbols.
    repetition_max_period: int = Field(8, ge=1)
    repetition_times: int = Field(3, ge=2)
    repetition_min_span: int = Field(6, ge=2)


class LoraSettings(Section):
    # auto: qlora when the profile's compute.device is CUDA and bitsandbytes is installed, else lora
    method: Literal["auto", "lora", "qlora"] = "auto"
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    # None: peft's defaults for the model's architecture (c_attn for GPT-2, q_proj/v_proj for Llama)
    target_modules: list[str] | None = None
    epochs: int = Field(6, ge=1)  # at most; early stopping on the validation split may end sooner
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    warmup_fraction: float = Field(
        0.1, ge=0, lt=1
    )  # linear warmup share of the planned steps, then cosine
    grad_clip: float = Field(1.0, gt=0)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(
        2, ge=1
    )  # epochs without a validation improvement of min_delta before stopping
    min_delta: float = Field(0.0, ge=0)
    max_length: int = Field(128, ge=8)
    seed: int = 5


class SftSettings(Section):
    n_shards: int = Field(ge=1)
    base_model_path: str | None = None  # a local HF causal LM folder; None: pretrain the demo model
    base_model_revision: str | None = None  # e.g. the hub commit; default: hash of the weights
    demo_model: DemoModelSettings = DemoModelSettings()
    prompt_shots: int = Field(2, ge=0)  # few-shot examples in generation prompts
    sft_prompt_shots: int = Field(
        0, ge=0
    )  # shots in training and evaluation prompts (0: instruction only)
    critic_shots: int = Field(2, ge=0)
    pilot_size: int = Field(100, ge=1)
    examples_per_shard: int = Field(1500, ge=1)
    test_per_type: int = Field(40, ge=1)
    test_seed: int = 2024
    data_seed: int = 11
    sampling: SamplingSettings = SamplingSettings()
    # Further pilot iterations to compare side by side (each a complete sampling block). `sampling`
    # is the iteration scaling uses: a reviewer selects an iteration by making it `sampling`.
    pilot_iterations: list[SamplingSettings] = Field(default_factory=list)
    qc: QcSettings = QcSettings()
    # The critic keeps answers whose margin is at least the threshold chosen on the pilot (critic.py);
    # this value is used only when the pilot's labels hold one class and no threshold can be chosen.
    critic_margin_threshold: float = 0.0
    critic_auc_min: float = Field(0.6, ge=0, le=1)  # below it the critic_auc check warns
    # The critic filters only when the pilot's within-type AUC interval (this confidence) lies
    # above 0.5 (critic_calibration.py); force_filter applies its keep flag anyway.
    critic_auc_confidence: float = Field(0.95, gt=0, lt=1)
    critic_force_filter: bool = False
    min_training_rows: int = Field(
        2, ge=2
    )  # fewer after filtering: training_set refuses (2: one for validation)
    decontamination_ngram: int = Field(8, ge=1)
    lora: LoraSettings = LoraSettings()
    eval_max_new_tokens: int = Field(24, ge=1)
    stage_gate_alpha: float = Field(0.01, gt=0, lt=1)
    # beats_few_shot (SFT vs the base on the generation prompt, same test as the stage gate): a
    # soft signal by default; ERROR makes "SFT did not beat prompting" a failed verdict.
    few_shot_check_severity: Literal["WARN", "ERROR"] = "WARN"
    # Intra-op threads for this domain's torch work; None: compute.threads. Tiny models on shared
    # cores run faster on one thread (see docs/benchmarks.md).
    torch_threads: int | None = Field(None, ge=1)
