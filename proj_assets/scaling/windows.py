"""Sliding windows over the time-ordered panel: the window of `context_length` rows ending at row t
predicts y[t].

The three splits are stacked in time order so that the first windows of validation and test may
look back into the rows before them (past features only, never labels); a window never crosses
into the future. Windows are gathered per batch from one [n_rows, n_features] tensor, not copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SPLITS = ("train", "val", "test")


class PanelError(ValueError):
    """The arrays handed to the trainer are not a usable panel."""


@dataclass
class WindowData:
    features: torch.Tensor  # [n_rows, n_features] float32, all splits stacked in time order
    labels: torch.Tensor  # [n_rows] float32
    ends: dict[str, torch.Tensor]  # split -> int64 row indices that end a window
    context_length: int

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def batch(self, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows [len(ends), context_length, n_features] and their labels [len(ends)]."""
        offsets = torch.arange(-self.context_length + 1, 1, device=ends.device)
        return self.features[ends.unsqueeze(1) + offsets], self.labels[ends]

    def to(self, device: str) -> WindowData:
        return WindowData(
            self.features.to(device),
            self.labels.to(device),
            {k: v.to(device) for k, v in self.ends.items()},
            self.context_length,
        )


def _validate(name: str, x: np.ndarray, y: np.ndarray, n_features: int | None) -> None:
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise PanelError(
            f"split {name!r}: expected X [n, features] and y [n], got {x.shape} and {y.shape}"
        )
    if n_features is not None and x.shape[1] != n_features:
        raise PanelError(
            f"split {name!r}: {x.shape[1]} features, expected {n_features} like the other splits"
        )
    if not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x))[0][0])
        raise PanelError(f"split {name!r}: non-finite feature value at row {row}")
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        row = int(np.argmax(bad))
        raise PanelError(f"split {name!r}: label at row {row} is {float(y[row])}, expected 0 or 1")


def build_windows(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    context_length: int,
    max_train_windows: int | None = None,
) -> WindowData:
    """Stack train/val/test and index the rows that can end a full window.

    `max_train_windows` keeps only the most recent training windows (a smaller, recent slice).
    """
    if context_length < 1:
        raise PanelError(f"context_length must be >= 1, got {context_length}")
    xs, ys, ends, start, n_features = [], [], {}, 0, None
    for name in SPLITS:
        x, y = splits[name]
        _validate(name, x, y, n_features)
        n_features = x.shape[1]
        idx = np.arange(start, start + len(x))
        ends[name] = torch.from_numpy(idx[idx >= context_length - 1])
        xs.append(x)
        ys.append(y)
        start += len(x)
    if max_train_windows is not None:
        ends["train"] = ends["train"][-max_train_windows:]
    for name in SPLITS:
        if len(ends[name]) == 0:
            raise PanelError(
                f"split {name!r} has no row with {context_length - 1} rows of history before it"
            )
    features = torch.from_numpy(np.concatenate(xs).astype(np.float32))
    labels = torch.from_numpy(np.concatenate(ys).astype(np.float32))
    return WindowData(features, labels, ends, context_length)
