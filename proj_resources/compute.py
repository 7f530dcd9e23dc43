"""Compute resource: which device, how many threads, the base seed, a memory budget, a cost meter."""

import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
import numpy as np


class DeviceUnavailableError(RuntimeError):
    """The profile asks for a device this machine does not have."""


@dataclass
class Meter:
    """Filled in when the metered block ends: seconds of wall time and their cost."""

    device_kind: str
    rate_per_hour: float
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def cost(self) -> float:
        return self.seconds / 3600.0 * self.rate_per_hour

    def metadata(self) -> dict:
        return {
            "compute_seconds": round(self.seconds, 3),
            "compute_device": self.device_kind,
            "compute_cost": round(self.cost, 6),
        }


class Compute(dg.ConfigurableResource):
    device: str = "cpu"  # cpu | cuda | auto
    threads: int = 2
    seed: int = 1234
    memory_budget_mb: int = 2048
    cost_per_hour: dict[str, float] = {"cpu": 0.05, "cuda": 2.5}

    def torch_device(self) -> str:
        """Resolve `auto`; asking for `cuda` without a GPU is a clear error, not a silent CPU run."""
        import torch

        has_cuda = torch.cuda.is_available()
        if self.device == "auto":
            return "cuda" if has_cuda else "cpu"
        if self.device == "cuda" and not has_cuda:
            raise DeviceUnavailableError(
                "profile compute.device is 'cuda' but torch.cuda.is_available() is False on this "
                "machine; use device 'cpu' or 'auto'"
            )
        if self.device not in ("cpu", "cuda"):
            raise DeviceUnavailableError(
                f"unknown compute.device {self.device!r} (cpu, cuda or auto)"
            )
        return self.device

    def seed_everything(self, offset: int = 0, threads: int | None = None) -> int:
        """Seed python, numpy and torch with `seed + offset` and set torch's thread count (`threads`,
        a domain's own setting, else `self.threads`); return the seed."""
        import torch

        seed = self.seed + offset
        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)
        torch.set_num_threads(threads or self.threads)
        return seed

    @contextlib.contextmanager
    def meter(self) -> Iterator[Meter]:
        """Time a block of work; the yielded Meter holds seconds and cost afterwards."""
        kind = self.torch_device()
        meter = Meter(device_kind=kind, rate_per_hour=self.cost_per_hour.get(kind, 0.0))
        start = time.perf_counter()
        try:
            yield meter
        finally:
            meter.seconds = time.perf_counter() - start
