"""Probes whose parameters carry a leading replica dimension R, so many seeds (and the
shuffled-label control) train together in one batched computation.

Every replica's parameters are drawn from its own seeded generator, so replica r of a batched
run starts exactly where a single-replica run with the same seed starts.

  position_baseline          logistic regression on position features only
  linear_probe               logistic regression on pooled activations (mean / max / last token)
  activations_plus_position  logistic regression on pooled activations and position features
  attention_probe            H heads, each a learned query with softmax pooling over tokens
  multimax_probe             H heads, each a hard max over tokens of a learned projection
"""

import dataclasses
import math
from dataclasses import dataclass, fields

import torch
from torch.utils.checkpoint import checkpoint

from proj_assets.probes.probe_types import TOKEN_PROBES
from proj_assets.probes.segment_ops import segment_max, segment_softmax_pool

CHUNK_TOKENS = 16384  # tokens converted to the matmul dtype at a time
# A chunk's forward is kept for backward when its intermediates stay under this, else it is
# recomputed in backward (checkpointed): small folds skip the recomputation, research-sized ones
# (16384 tokens x 1536 dims) keep the peak RSS bound.
KEEP_BYTES = 48 * 2**20


def _kept_bytes(tokens: int, replicas: int, heads: int, dim: int, itemsize: int = 4) -> int:
    """Bytes autograd keeps for one chunk: its tokens (in the matmul dtype) and ~4 float32
    [tokens, replicas x heads] tensors."""
    return tokens * (itemsize * dim + 16 * replicas * heads)


def matmul_dtype(setting: str, device: str) -> torch.dtype:
    """The dtype token probes multiply tokens by weights in (float32 accumulation either way):
    `auto` is bfloat16 where `device` has native bfloat16 matmuls (a CUDA GPU that supports it; a
    CPU with AVX512-BF16 or AMX, through oneDNN: ~4x float32 on this machine's EPYC), else float32."""
    if setting in ("float32", "bfloat16"):
        return getattr(torch, setting)
    if setting != "auto":
        raise ValueError(f"unknown matmul dtype {setting!r} (auto, float32 or bfloat16)")
    if device.startswith("cuda"):
        native = torch.cuda.is_bf16_supported()
    else:
        native = (
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    return torch.bfloat16 if native else torch.float32


@dataclass
class ProbeInputs:
    """Features of N sentences: standardised position [N,P] and pooled [N,D] features, and for
    token probes the tokens *packed* (no padding) as float16 [total_tokens, D], centred on the
    training-token mean (folds.center_in_place), with each sentence's token count, plus the
    training-token std [D] applied on the fly (folded into the probe weights), so no float32 copy
    of the tokens is ever kept. `token_starts`, when
    set, is the row of `tokens` where each sentence's tokens begin: `rows` (a minibatch) shares
    its parent's tokens and each chunk is copied out, in the matmul dtype, when it is computed, so a
    minibatch costs an index, not a second copy of the tokens."""

    position: torch.Tensor
    pooled: torch.Tensor | None = None
    tokens: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    token_std: torch.Tensor | None = None
    token_starts: torch.Tensor | None = None

    @classmethod
    def from_padded(cls, position, pooled, tokens, mask) -> "ProbeInputs":
        """From padded tokens [N,T,D] and mask [N,T] (tests and small callers): packed, fp16, unit std;
        the tokens are taken as centred already."""
        return cls(
            position,
            pooled,
            tokens[mask].to(torch.float16),
            mask.sum(1).to(torch.int64),
            torch.ones(tokens.shape[2]),
        )

    def __len__(self) -> int:
        return self.position.shape[0]

    def to(self, device: str | torch.device) -> "ProbeInputs":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        if self.token_starts is not None:
            # token_starts is only set (by `rows`) on inputs with tokens and lengths
            assert self.tokens is not None and self.lengths is not None
            if self.tokens.device != torch.device(device):
                # moving a minibatch moves its own tokens, not the parent's
                own = self.tokens.index_select(0, token_rows(self.token_starts, self.lengths))
                return dataclasses.replace(self, tokens=own, token_starts=None).to(device)
        return ProbeInputs(
            self.position.to(device), *(move(getattr(self, f.name)) for f in fields(self)[1:])
        )

    def rows(self, idx: torch.Tensor) -> "ProbeInputs":
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        starts = None
        if self.tokens is not None:
            assert self.lengths is not None  # packed tokens always come with their lengths
            starts = (
                self.token_starts
                if self.token_starts is not None
                else torch.cumsum(self.lengths, 0) - self.lengths
            )
            starts = starts[idx]
        return ProbeInputs(
            self.position[idx],
            pick(self.pooled),
            self.tokens,
            pick(self.lengths),
            self.token_std,
            starts,
        )


def token_rows(
    starts: torch.Tensor, lengths: torch.Tensor, total: int | None = None
) -> torch.Tensor:
    """The rows of the packed tokens of sentences (first row, count), sentence after sentence: one
    index for one gather, never a copy per sentence. `total` (= lengths.sum()) spares a host sync."""
    total = int(lengths.sum()) if total is None else total
    offsets = torch.cumsum(lengths, 0) - lengths
    return torch.repeat_interleave(starts - offsets, lengths, output_size=total) + torch.arange(
        total, device=starts.device
    )


def feature_width(probe_type: str, inputs: ProbeInputs) -> int:
    if probe_type == "position_baseline":
        return inputs.position.shape[1]
    if probe_type == "activations_plus_position":
        assert inputs.pooled is not None  # the pooled probes are given pooled features
        return inputs.pooled.shape[1] + inputs.position.shape[1]
    if probe_type == "linear_probe":
        assert inputs.pooled is not None
        return inputs.pooled.shape[1]
    assert inputs.tokens is not None  # token probes are given their tokens
    return inputs.tokens.shape[1]


def init_params(
    probe_type: str, seeds: list[int], width: int, n_heads: int
) -> dict[str, torch.Tensor]:
    """Parameters stacked over replicas; replica r is drawn from a generator seeded with seeds[r]."""
    heads = (
        (2 * n_heads if probe_type == "attention_probe" else n_heads)
        if probe_type in TOKEN_PROBES
        else 1
    )
    weights = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        weights.append(torch.randn(heads, width, generator=gen) / math.sqrt(width))
    w = torch.stack(weights)  # [R, K, width]
    return {"w": w.requires_grad_(), "b": torch.zeros(len(seeds), requires_grad=True)}


def _linear_features(probe_type: str, x: ProbeInputs) -> torch.Tensor:
    if probe_type == "position_baseline":
        return x.position
    assert x.pooled is not None  # the pooled probes are given pooled features
    if probe_type == "linear_probe":
        return x.pooled
    return torch.cat([x.pooled, x.position], dim=1)


def chunk_pooled(
    tokens: torch.Tensor,
    rows: torch.Tensor | None,
    segment: torch.Tensor,
    n: int,
    w: torch.Tensor,
    attention: bool,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Per-sentence pooled head outputs [n, R, H] for one chunk of packed float16 tokens (the `rows`
    of `tokens` when given: one gather, inside the checkpoint when there is one). Tokens and weights
    are multiplied in `dtype`; the products are float32 from there on."""
    R, K, D = w.shape
    x = (tokens if rows is None else tokens.index_select(0, rows)).to(dtype)
    if attention:  # 1/sqrt(D) folded into the (small) query weights, not applied to the scores
        H = K // 2
        q, v = w[:, :H].reshape(R * H, D) / math.sqrt(D), w[:, H:].reshape(R * H, D)
        # queries and values in one matmul: the tokens are read once forward and once backward
        projected = (x @ torch.cat([q, v]).to(dtype).T).float()  # [tokens, 2 R H]
        scores, values = projected.split(R * H, dim=1)
        return segment_softmax_pool(scores, values, segment, n).reshape(n, R, H)
    proj = (x @ w.reshape(R * K, D).to(dtype).T).float()
    return segment_max(proj, segment, n).reshape(n, R, K)  # hard max over each sentence's tokens


def _token_logits(
    probe_type: str, w: torch.Tensor, b: torch.Tensor, x: ProbeInputs, dtype: torch.dtype
) -> torch.Tensor:
    """Standardisation folded into the weights: the tokens are centred, so (t / std) @ w = t @ (w / std)."""
    # token probes are given their packed tokens, lengths and the training-token std
    assert x.tokens is not None and x.lengths is not None and x.token_std is not None
    R, K, D = w.shape
    scaled = w / x.token_std
    ends = torch.cumsum(x.lengths, 0).tolist()
    itemsize = torch.empty(0, dtype=dtype).element_size()
    pooled, first, tok0 = [], 0, 0
    while first < len(ends):
        last = first
        while last + 1 < len(ends) and ends[last + 1] - tok0 <= CHUNK_TOKENS:
            last += 1
        seg = torch.repeat_interleave(
            torch.arange(last + 1 - first, device=w.device), x.lengths[first : last + 1]
        )
        chunk = (
            (x.tokens[tok0 : ends[last]], None)
            if x.token_starts is None
            else (
                x.tokens,
                token_rows(
                    x.token_starts[first : last + 1], x.lengths[first : last + 1], ends[last] - tok0
                ),
            )
        )
        args = (*chunk, seg, last + 1 - first, scaled, probe_type == "attention_probe", dtype)
        recompute = (
            scaled.requires_grad
            and x.tokens.device.type == "cpu"  # a CPU memory knob, not for CUDA
            and _kept_bytes(ends[last] - tok0, R, K, D, itemsize) > KEEP_BYTES
        )
        pooled.append(
            checkpoint(chunk_pooled, *args, use_reentrant=False)
            if recompute
            else chunk_pooled(*args)
        )
        first, tok0 = last + 1, ends[last]
    return torch.cat(pooled).sum(dim=2).T + b[:, None]


def logits(
    probe_type: str,
    params: dict[str, torch.Tensor],
    x: ProbeInputs,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Logits [R, N] for every replica on the same N sentences (token probes multiply in `dtype`)."""
    w, b = params["w"], params["b"]
    if probe_type in TOKEN_PROBES:
        return _token_logits(probe_type, w, b, x, dtype)
    return w[:, 0, :] @ _linear_features(probe_type, x).T + b[:, None]
