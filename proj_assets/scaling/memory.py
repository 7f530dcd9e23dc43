"""Memory-safe batching: estimate training memory, pick a micro-batch and accumulation steps.

The estimate (fp32, AdamW) is static memory, 16 bytes per parameter (weights, gradients and
AdamW's two moments), plus activations kept for the backward pass, per sample:
  input projection   T*(n_features + d); final norm and head on the last position 6*d
  per layer          T*(8*d + 4*f + 4) + 3*n_heads*T^2 floats: what autograd saves (norm inputs,
                     outputs, means and rstds, q/k/v, attention output, residuals and dropout masks; the
                     feed-forward hidden before and after GELU, its dropout mask and output;
                     scores, softmax and its dropout). Counted with saved-tensor hooks on the
                     model at d 64-512, T 32-128 (ffn_mult 4): 96*T*d + 16*T + 12*h*T^2 bytes
                     per layer, exactly this formula; the earlier T*(10*d + 2*f) missed a quarter.
A safety factor covers the backward pass's transient gradients and allocator overhead. On CPU the
measured peak holds only with glibc returning freed blocks (the scaling trainer fixes the mmap
threshold, trainer.py): with glibc's growing threshold, freed activations stay resident and the
peak ran 1.3-1.5x this estimate (bench/scaling_memory.py, docs/scaling.md).

Evaluation runs under `torch.no_grad()` during training (weights, gradients and optimizer state
still allocated), so it keeps no activations for a backward pass: at any moment it holds the
input projection and one layer's working set, per sample
  T*(n_features + d) + T*(6*d + 2*f) + 2*n_heads*T^2
The trainer evaluates at the planned micro-batch, which is therefore never above the training
peak (`eval_estimate_mb <= estimate_mb`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BYTES_PER_FLOAT = 4
STATIC_BYTES_PER_PARAM = 16
SAFETY_FACTOR = 1.2
MIB = 1024 * 1024


@dataclass(frozen=True)
class BatchPlan:
    micro_batch: int  # 0 when not even one sample fits: the architecture is infeasible here
    accum_steps: int
    effective_batch: int
    static_mb: float
    per_sample_mb: float
    estimate_mb: float  # at micro_batch (or at 1 sample when infeasible)
    eval_estimate_mb: float  # evaluation peak at micro_batch (the trainer's evaluation batch)

    @property
    def feasible(self) -> bool:
        return self.micro_batch > 0


def activation_bytes_per_sample(
    n_features: int,
    d_model: int,
    n_layers: int,
    n_heads: int,
    context_length: int,
    ffn_mult: int = 4,
) -> int:
    t, d, f = context_length, d_model, ffn_mult * d_model
    per_layer = (
        t * (8 * d + 4 * f + 4) + 3 * n_heads * t * t
    )  # +4: the two norms' mean and rstd per position
    return BYTES_PER_FLOAT * (
        t * (n_features + d) + n_layers * per_layer + 6 * d
    )  # 6d: final norm and head


def eval_activation_bytes_per_sample(
    n_features: int, d_model: int, n_heads: int, context_length: int, ffn_mult: int = 4
) -> int:
    """Working set of one sample during no-grad evaluation: the input and one layer at a time."""
    t, d, f = context_length, d_model, ffn_mult * d_model
    return BYTES_PER_FLOAT * (t * (n_features + d) + t * (6 * d + 2 * f) + 2 * n_heads * t * t)


def plan_batch(
    n_params: int,
    n_features: int,
    d_model: int,
    n_layers: int,
    n_heads: int,
    context_length: int,
    effective_batch: int,
    memory_budget_mb: float,
    ffn_mult: int = 4,
) -> BatchPlan:
    """The largest micro-batch (<= effective_batch) whose estimate fits the budget, and the fewest
    accumulation steps that reach `effective_batch`, with the micro-batch then evened out so the
    steps are balanced (micro_batch * accum_steps >= effective_batch, overshooting by < accum_steps)."""
    if effective_batch < 1 or memory_budget_mb <= 0:
        raise ValueError(
            f"effective_batch must be >= 1 and memory_budget_mb > 0, got {effective_batch}, {memory_budget_mb}"
        )
    static = SAFETY_FACTOR * STATIC_BYTES_PER_PARAM * n_params
    per_sample = SAFETY_FACTOR * activation_bytes_per_sample(
        n_features, d_model, n_layers, n_heads, context_length, ffn_mult
    )
    per_eval_sample = SAFETY_FACTOR * eval_activation_bytes_per_sample(
        n_features, d_model, n_heads, context_length, ffn_mult
    )
    budget = memory_budget_mb * MIB
    fits = math.floor((budget - static) / per_sample) if budget > static else 0
    if fits < 1:
        return BatchPlan(
            0,
            0,
            0,
            static / MIB,
            per_sample / MIB,
            (static + per_sample) / MIB,
            (static + per_eval_sample) / MIB,
        )
    largest = min(fits, effective_batch)
    accum = math.ceil(effective_batch / largest)
    micro = math.ceil(effective_batch / accum)
    return BatchPlan(
        micro,
        accum,
        micro * accum,
        static / MIB,
        per_sample / MIB,
        (static + micro * per_sample) / MIB,
        (static + micro * per_eval_sample) / MIB,
    )
