"""Memory-safe batching arithmetic and the trainer: accumulation, early stopping, limits, OOM."""

import math
import signal

import pytest
import torch
from scaling_helpers import synthetic_splits

from proj_assets.scaling.graceful import GracefulStop
from proj_assets.scaling.memory import MIB, SAFETY_FACTOR, activation_bytes_per_sample, plan_batch
from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer, count_parameters
from proj_assets.scaling.trainer import (
    EarlyStopping,
    OutOfMemory,
    TrainConfig,
    accumulate_gradients,
    train,
)
from proj_assets.scaling.windows import PanelError, build_windows


def _plan(budget_mb, effective=256, d=16, n=2, h=2, t=16):
    return plan_batch(count_parameters(25, d, n), 25, d, n, h, t, effective, budget_mb)


def test_batch_plan_fits_budget_and_reaches_effective_batch():
    for budget in (1, 2, 4, 16, 64, 1024):
        plan = _plan(budget)
        if not plan.feasible:
            continue
        assert 1 <= plan.micro_batch <= 256
        assert plan.micro_batch * plan.accum_steps == plan.effective_batch >= 256
        assert (
            plan.effective_batch - 256 < plan.accum_steps
        )  # balanced steps overshoot by < one per step
        assert plan.estimate_mb <= budget
        fewer = (
            plan.accum_steps - 1
        )  # the fewest accumulation steps: one fewer would not fit the budget
        assert fewer == 0 or plan.static_mb + -(-256 // fewer) * plan.per_sample_mb > budget


def test_batch_plan_hand_computed_example():
    per_sample = SAFETY_FACTOR * activation_bytes_per_sample(25, 16, 2, 2, 16) / MIB
    static = SAFETY_FACTOR * 16 * count_parameters(25, 16, 2) / MIB
    budget = static + 100.5 * per_sample  # room for exactly 100 samples
    plan = _plan(budget)
    assert (
        plan.accum_steps == math.ceil(256 / 100) == 3
        and plan.micro_batch == math.ceil(256 / 3) == 86
    )
    assert _plan(static / 2).micro_batch == 0 and not _plan(static / 2).feasible
    with pytest.raises(ValueError, match="effective_batch"):
        _plan(10, effective=0)


def test_windows_are_gathered_on_the_device_the_panel_is_on():
    """The meta device stands in for a GPU: any host tensor mixed into the gather fails as it did
    on CUDA (bench/gpu_check.py found the window offsets built on the CPU)."""
    data = build_windows(synthetic_splits(), 6)
    x, y = data.to("meta").batch(data.ends["train"][:4].to("meta"))
    assert x.device.type == y.device.type == "meta"
    assert tuple(x.shape) == (4, 6, data.n_features) and tuple(y.shape) == (4,)
    cpu_x, _ = data.batch(data.ends["train"][:4])
    torch.testing.assert_close(cpu_x[:, -1], data.features[data.ends["train"][:4]])


def test_accumulated_gradients_equal_full_batch_gradient():
    data = build_windows(synthetic_splits(), 6)
    torch.manual_seed(0)
    model = TimeSeriesTransformer(ArchConfig(25, 8, 2, 2, dropout=0.0))
    step = data.ends["train"][:48]
    grads = []
    for micro in (48, 8, 5):  # one pass, 6 equal micro-batches, uneven micro-batches
        model.zero_grad()
        loss = accumulate_gradients(model, data, step, micro)
        grads.append((loss, [p.grad.clone() for p in model.parameters()]))
    for loss, grad in grads[1:]:
        assert loss == pytest.approx(grads[0][0], rel=1e-5)
        for a, b in zip(grad, grads[0][1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_early_stopping_patience_and_min_delta():
    stopper = EarlyStopping(patience=2, min_delta=0.01)
    assert stopper.update(1.0) and not stopper.should_stop
    assert not stopper.update(0.995)  # improvement below min_delta does not count
    assert not stopper.should_stop
    assert stopper.update(0.9)  # real improvement resets the count
    assert not stopper.update(0.95) and not stopper.update(0.91)
    assert stopper.should_stop and stopper.best == 0.9


def _config(**kw):
    base = dict(
        lr=3e-3,
        weight_decay=0.01,
        max_epochs=6,
        patience=1,
        min_delta=0.0,
        micro_batch=16,
        accum_steps=2,
        grad_clip=1.0,
        time_limit_s=60,
        seed=5,
    )
    return TrainConfig(**{**base, **kw})


def _train(config, **kw):
    torch.manual_seed(config.seed)
    model = TimeSeriesTransformer(ArchConfig(25, 8, 1, 2, dropout=0.1))
    return train(model, build_windows(synthetic_splits(), 4), config, **kw)


def test_training_is_deterministic_and_reports_metrics():
    first, second = (
        _train(_config(max_epochs=2, patience=5)),
        _train(_config(max_epochs=2, patience=5)),
    )
    assert first.history == second.history and first.epochs_run == 2
    assert set(first.val) == {"loss", "roc_auc", "pr_auc", "accuracy"} and set(first.test) == set(
        first.val
    )
    assert first.val["roc_auc"] > 0.6  # the synthetic label is learnable


def test_early_stop_flag_time_limit_and_interrupt():
    stopped = _train(
        _config(lr=0.3, max_epochs=30, patience=1, min_delta=10.0)
    )  # no epoch can improve by 10
    assert stopped.early_stopped and stopped.epochs_run == 2 and stopped.best_epoch == 0
    limited = _train(_config(max_epochs=30, time_limit_s=1e-9))
    assert limited.time_limited and limited.epochs_run == 1 and not limited.early_stopped
    interrupted = _train(_config(), should_stop=lambda: True)
    assert interrupted.interrupted and interrupted.epochs_run == 0 and interrupted.test == {}


def test_out_of_memory_becomes_a_clear_error(monkeypatch):
    def explode(self, windows):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(TimeSeriesTransformer, "forward", explode)
    with pytest.raises(OutOfMemory, match="micro_batch=16"):
        _train(_config())


def test_graceful_stop_defers_the_signal_until_the_block_ends():
    with pytest.raises(KeyboardInterrupt):
        with GracefulStop() as stop:
            signal.raise_signal(signal.SIGINT)
            assert stop()  # still running: only the flag is set
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_bad_panel_gets_a_clear_error():
    splits = synthetic_splits()
    x, y = splits["val"]
    y = y.copy()
    y[3] = 0.5
    with pytest.raises(PanelError, match="split 'val': label at row 3 is 0.5, expected 0 or 1"):
        build_windows({**splits, "val": (x, y)}, 4)
    with pytest.raises(PanelError, match="split 'test' has no row"):
        build_windows({**splits, "test": (splits["test"][0][:0], splits["test"][1][:0])}, 4)
