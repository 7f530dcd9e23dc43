"""Resumable training state of one trial, saved every few epochs.

A trial killed mid-training (worker lost, preemption, OOM-killer) is retried with the same
parameters and seed; its retry finds this file and continues from the last saved epoch instead
of restarting. The state is a dict of tensors and plain values written with `torch.save` to a
temp name and renamed (a kill mid-write leaves the previous checkpoint intact), and read back with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


class TrainingCheckpoint:
    def __init__(self, path: Path, every_epochs: int):
        if every_epochs < 1:
            raise ValueError(f"every_epochs must be >= 1, got {every_epochs}")
        self.path, self.every_epochs = Path(path), every_epochs

    def due(self, epochs_done: int) -> bool:
        return epochs_done % self.every_epochs == 0

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        os.close(fd)
        try:
            torch.save(state, tmp)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self) -> dict | None:
        if not self.path.is_file():
            return None
        return torch.load(self.path, weights_only=True, map_location="cpu")

    def clear(self) -> None:
        """Remove the file once the trial finished (it is only needed to resume)."""
        self.path.unlink(missing_ok=True)
