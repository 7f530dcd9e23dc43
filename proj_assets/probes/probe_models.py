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

import math
from dataclasses import dataclass

import torch

from proj_assets.probes.probe_types import TOKEN_PROBES


@dataclass
class ProbeInputs:
    """Standardised features of N sentences: position [N,P], pooled [N,D] and tokens [N,T,D] with a
    validity mask [N,T] (pooled/tokens are None when the probe does not need them)."""

    position: torch.Tensor
    pooled: torch.Tensor | None = None
    tokens: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.position.shape[0]

    def to(self, device: str) -> "ProbeInputs":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return ProbeInputs(move(self.position), move(self.pooled), move(self.tokens), move(self.mask))

    def rows(self, idx: torch.Tensor) -> "ProbeInputs":
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return ProbeInputs(self.position[idx], pick(self.pooled), pick(self.tokens), pick(self.mask))


def feature_width(probe_type: str, inputs: ProbeInputs) -> int:
    if probe_type == "position_baseline":
        return inputs.position.shape[1]
    if probe_type == "activations_plus_position":
        return inputs.pooled.shape[1] + inputs.position.shape[1]
    if probe_type == "linear_probe":
        return inputs.pooled.shape[1]
    return inputs.tokens.shape[2]


def init_params(probe_type: str, seeds: list[int], width: int, n_heads: int) -> dict[str, torch.Tensor]:
    """Parameters stacked over replicas; replica r is drawn from a generator seeded with seeds[r]."""
    heads = (2 * n_heads if probe_type == "attention_probe" else n_heads) if probe_type in TOKEN_PROBES else 1
    weights = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        weights.append(torch.randn(heads, width, generator=gen) / math.sqrt(width))
    w = torch.stack(weights)  # [R, K, width]
    return {"w": w.requires_grad_(), "b": torch.zeros(len(seeds), requires_grad=True)}


def _linear_features(probe_type: str, x: ProbeInputs) -> torch.Tensor:
    if probe_type == "position_baseline":
        return x.position
    if probe_type == "linear_probe":
        return x.pooled
    return torch.cat([x.pooled, x.position], dim=1)


def logits(probe_type: str, params: dict[str, torch.Tensor], x: ProbeInputs) -> torch.Tensor:
    """Logits [R, N] for every replica on the same N sentences."""
    w, b = params["w"], params["b"]
    R, K, D = w.shape
    if probe_type not in TOKEN_PROBES:
        return w[:, 0, :] @ _linear_features(probe_type, x).T + b[:, None]
    N, T, _ = x.tokens.shape
    flat = x.tokens.reshape(N * T, D)
    # 0 on real tokens, -inf on padding: one broadcast add instead of a masked copy per head
    pad = torch.zeros(N, T, 1, 1, device=x.tokens.device).masked_fill(~x.mask[:, :, None, None], float("-inf"))
    if probe_type == "attention_probe":
        H = K // 2  # separate query and value matmuls give contiguous [N, T, R, H] tensors
        scores = (flat @ (w[:, :H, :].reshape(R * H, D).T / math.sqrt(D))).reshape(N, T, R, H) + pad
        values = (flat @ w[:, H:, :].reshape(R * H, D).T).reshape(N, T, R, H)
        pooled = (torch.softmax(scores, dim=1) * values).sum(dim=1)  # [N, R, H]
    else:
        proj = (flat @ w.reshape(R * K, D).T).reshape(N, T, R, K)
        pooled = (proj + pad).amax(dim=1)  # hard max over tokens
    return pooled.sum(dim=2).T + b[:, None]
