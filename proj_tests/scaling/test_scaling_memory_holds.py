"""The memory estimate holds: per layer it counts what autograd saves (measured with saved-tensor
hooks); and a trial's peak is its own, not the process's high-water mark of an earlier trial."""

import mmap

import numpy as np
import pytest
import torch
from scaling_helpers import N_FEATURES

from proj_assets.scaling.memory import activation_bytes_per_sample
from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer
from proj_assets.scaling.trainer import TrainConfig, train
from proj_assets.scaling.windows import build_windows
from proj_assets.shared.process_memory import current_rss_mb, peak_rss_mb, reset_peak_rss


def saved_bytes_per_sample(
    d_model: int, n_layers: int, n_heads: int, context: int, batch: int = 2
) -> float:
    """Bytes autograd keeps for backward per sample (storages, parameters excluded)."""
    model = TimeSeriesTransformer(ArchConfig(N_FEATURES, d_model, n_layers, n_heads)).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(batch, context, N_FEATURES))
    return sum(kept.values()) / batch


@pytest.mark.parametrize(
    "d_model,n_layers,n_heads,context", [(64, 2, 2, 32), (32, 3, 4, 64), (128, 1, 8, 16)]
)
def test_the_activation_estimate_covers_what_autograd_saves(d_model, n_layers, n_heads, context):
    saved = saved_bytes_per_sample(d_model, n_layers, n_heads, context)
    estimate = activation_bytes_per_sample(N_FEATURES, d_model, n_layers, n_heads, context)
    assert saved <= estimate <= 1.1 * saved  # covers it, and not by a wide margin


def _splits(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    def make(k: int):
        return (
            rng.normal(size=(k, N_FEATURES)).astype(np.float32),
            (rng.random(k) > 0.5).astype(np.float32),
        )

    return {"train": make(n), "val": make(64), "test": make(64)}


def _trial(d_model: int, n_layers: int, micro_batch: int):
    torch.manual_seed(0)
    model = TimeSeriesTransformer(ArchConfig(N_FEATURES, d_model, n_layers, 2))
    config = TrainConfig(
        lr=1e-3,
        weight_decay=0.0,
        max_epochs=1,
        patience=1,
        min_delta=0.0,
        micro_batch=micro_batch,
        accum_steps=1,
        grad_clip=1.0,
        time_limit_s=60,
        seed=0,
    )
    return train(model, build_windows(_splits(2 * micro_batch + 32), 32), config)


def test_a_trials_peak_is_its_own_not_an_earlier_trials():
    if not reset_peak_rss():
        pytest.skip("this kernel does not let a process reset its VmHWM")
    big = _trial(128, 4, 256)
    assert big.peak_above_start_mb > 50  # the big trial's activations
    # 320 MB touched and unmapped (an anonymous mapping, so no allocator setting an earlier test
    # left in this process can keep it resident): the high-water mark is above it now
    with mmap.mmap(-1, 320 << 20) as spike:
        pages = np.frombuffer(spike, dtype=np.uint8)
        pages[::4096] = 1
        del pages
    high_water, before = peak_rss_mb(), current_rss_mb()
    assert high_water - before > 300  # it was resident, and it is gone
    small = _trial(16, 1, 8)
    assert small.peak_memory_mb < high_water - 200, (
        f"rss before the small trial {before:.0f} MB, high water {high_water:.0f} MB"
    )  # the old process-wide peak would be >= high_water
    assert 0 <= small.peak_above_start_mb < 20 < big.peak_above_start_mb
