"""A small encoder-only time-series transformer and its exact, analytic parameter count.

The model reads a window of `context_length` feature rows (the window ending at row t) and returns
one logit for the binary label of row t. Positions use a fixed sinusoidal encoding (a buffer, not a
parameter), so the parameter count depends only on (n_features, d_model, n_layers, ffn_mult) and
not on the context length or the number of heads: attention projections are d_model x d_model
whatever the split into heads. `count_parameters` is the convention the budgets use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from proj_assets.scaling.param_count import (
    count_parameters,  # noqa: F401  (the model's exact count, torch-free)
)


@dataclass(frozen=True)
class ArchConfig:
    n_features: int
    d_model: int
    n_layers: int
    n_heads: int
    ffn_mult: int = 4
    dropout: float = 0.1

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads {self.n_heads} must divide d_model {self.d_model}")
        if min(self.n_features, self.d_model, self.n_layers, self.n_heads, self.ffn_mult) < 1:
            raise ValueError(f"every size must be >= 1, got {asdict(self)}")


def sinusoidal_positions(length: int, d_model: int, device=None) -> torch.Tensor:
    """[length, d_model] fixed sinusoidal encoding (Vaswani et al.); odd d_model is handled."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(
        torch.arange(0, d_model, 2, device=device, dtype=torch.float32)
        * (-math.log(10000.0) / d_model)
    )
    table = torch.zeros(length, d_model, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : d_model // 2]
    return table


class TimeSeriesTransformer(nn.Module):
    """Pre-norm encoder over [batch, time, features] windows; the last position's state -> one logit."""

    def __init__(self, config: ArchConfig):
        super().__init__()
        self.config = config
        self.input_proj = nn.Linear(config.n_features, config.d_model)
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.n_heads,
            dim_feedforward=config.ffn_mult * config.d_model,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=config.n_layers, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, 1)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """windows [batch, time, n_features] -> logits [batch]."""
        hidden = self.input_proj(windows)
        hidden = hidden + sinusoidal_positions(
            windows.shape[1], self.config.d_model, windows.device
        )
        hidden = self.encoder(hidden)
        return self.head(self.norm(hidden[:, -1])).squeeze(-1)


def numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_on_meta(config: ArchConfig) -> int:
    """Instantiate on the `meta` device (no memory allocated) and return sum(p.numel())."""
    with torch.device("meta"):
        return numel(TimeSeriesTransformer(config))
