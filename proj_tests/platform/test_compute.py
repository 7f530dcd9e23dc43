"""Compute: a missing GPU is a clear error; the meter records seconds and their cost."""

import time

import numpy as np
import pytest
import torch

from proj_resources import Compute
from proj_resources.compute import DeviceUnavailableError


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cuda_without_gpu_is_a_clear_error(no_cuda):
    with pytest.raises(
        DeviceUnavailableError,
        match=r"compute.device is 'cuda' but torch.cuda.is_available\(\) is False",
    ):
        Compute(device="cuda").torch_device()
    with pytest.raises(DeviceUnavailableError):
        with Compute(device="cuda").meter():
            pass


def test_auto_and_cpu_resolve_without_gpu(no_cuda):
    assert Compute(device="auto").torch_device() == "cpu"
    assert Compute(device="cpu").torch_device() == "cpu"


def test_unknown_device_is_an_error():
    with pytest.raises(DeviceUnavailableError, match="unknown compute.device 'tpu'"):
        Compute(device="tpu").torch_device()


def test_meter_records_seconds_and_cost():
    compute = Compute(device="cpu", cost_per_hour={"cpu": 36.0, "cuda": 2.5})
    with compute.meter() as meter:
        time.sleep(0.05)
    assert 0.05 <= meter.seconds < 5
    assert meter.cost == pytest.approx(meter.seconds / 3600 * 36.0)
    meta = meter.metadata()
    assert meta["compute_device"] == "cpu"
    assert meta["compute_seconds"] == round(meter.seconds, 3)
    assert meta["compute_cost"] == round(meter.cost, 6) > 0


def test_meter_records_time_when_the_block_fails():
    with pytest.raises(ValueError):
        with Compute().meter() as meter:
            time.sleep(0.02)
            raise ValueError("work failed")
    assert meter.seconds >= 0.02


def test_seed_everything_is_reproducible():
    compute = Compute(seed=10, threads=1)
    assert compute.seed_everything(offset=5) == 15
    first = (np.random.rand(3), torch.rand(3))
    compute.seed_everything(offset=5)
    second = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(first[0], second[0]) and torch.equal(first[1], second[1])
    compute.seed_everything(offset=6)
    assert not np.array_equal(np.random.rand(3), first[0])
