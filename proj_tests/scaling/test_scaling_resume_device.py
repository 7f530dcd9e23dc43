"""A trial resumed from its checkpoint trains exactly as the uninterrupted one, on each device.

Dropout draws from the CPU generator on the CPU and from the device's own generator on a GPU, so
the checkpoint carries both; without the CUDA state a resumed GPU trial drew other dropout masks.
The CUDA case runs on a machine with a GPU (docs/benchmarks.md, GPU check)."""

import pytest
import torch
from scaling_helpers import synthetic_splits

from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer
from proj_assets.scaling.trainer import TrainConfig, train
from proj_assets.scaling.trial_checkpoint import TrainingCheckpoint
from proj_assets.scaling.windows import build_windows

CONFIG = TrainConfig(3e-3, 0.01, 4, 10, 0.0, 32, 2, 1.0, 600, 0)
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the device machine)"
        ),
    ),
]


def _trial(device: str, checkpoint=None, stop_after: int | None = None):
    data = build_windows(synthetic_splits(), 8).to(device)
    torch.manual_seed(1)
    model = TimeSeriesTransformer(ArchConfig(25, 16, 1, 2, dropout=0.3)).to(device)
    epochs: list[int] = []

    def on_epoch(epoch, _metrics):
        epochs.append(epoch)
        if stop_after is not None and len(epochs) == stop_after:
            raise KeyboardInterrupt  # the worker dies after this epoch's checkpoint

    try:
        return train(model, data, CONFIG, on_epoch=on_epoch, checkpoint=checkpoint)
    except KeyboardInterrupt:
        return None


@pytest.mark.parametrize("device", DEVICES)
def test_a_resumed_trial_equals_the_uninterrupted_one(device, tmp_path):
    whole = _trial(device)
    checkpoint = TrainingCheckpoint(tmp_path / "trial.pt", every_epochs=2)
    assert _trial(device, checkpoint, stop_after=3) is None  # killed in epoch 3, saved after 2
    torch.manual_seed(12345)  # the resuming process's generators start elsewhere
    if device == "cuda":
        torch.cuda.manual_seed(12345)
    resumed = _trial(device, checkpoint)
    assert resumed is not None and resumed.resumed_from_epoch == 2
    # bitwise on the CPU; a GPU's backward kernels may reorder sums (a wrong dropout mask moves
    # the loss by about 4% here, far outside this tolerance)
    rel = 0.0 if device == "cpu" else 1e-4
    assert [h["loss"] for h in resumed.history] == pytest.approx(
        [h["loss"] for h in whole.history], rel=rel, abs=0.0
    )
    assert resumed.test == pytest.approx(whole.test, rel=rel, abs=0.0)
