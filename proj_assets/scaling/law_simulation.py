"""Simulated scaling studies: seed-run losses drawn from a known law, fitted by `law_fit`, to
measure how often the 95% intervals cover the truth, the estimates' bias and how often the
scaling test claims scaling that is not there. Pure; `bench/scaling_law_coverage.py` prints it
and a test pins a small seeded case."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from proj_assets.scaling.curve import PARAMETERS, fit_row
from proj_assets.scaling.law_fit import LEVEL, fit_law, mean_band


@dataclass(frozen=True)
class Truth:
    l_inf: float
    a: float
    b: float

    def loss(self, x: np.ndarray | float) -> np.ndarray:
        """The mean loss at x = N / N_0."""
        return self.l_inf + self.a * np.asarray(x, dtype=float) ** -self.b


@dataclass(frozen=True)
class Simulation:
    """Per study: the reported (bias-reduced) and the least-squares estimates, whether each
    interval covered the truth and held the reported estimate, whether the table row reported
    each estimate and whether the scaling test rejected."""

    truth: Truth
    estimates: dict[str, np.ndarray]
    least_squares: dict[str, np.ndarray]
    point_inside: dict[str, np.ndarray]  # the reported estimate lies in its own interval
    covered: dict[str, np.ndarray]  # PARAMETERS and "curve_at_max" (the band at the largest N)
    reported: dict[str, np.ndarray]  # the table row shows the estimate (not null)
    scaling_claimed: np.ndarray
    l_inf_at_min_loss: np.ndarray  # the old fit's failure: L_inf equal to the smallest loss

    @property
    def studies(self) -> int:
        return len(self.scaling_claimed)

    def bias(
        self, name: str, reported_only: bool = False, least_squares: bool = False
    ) -> tuple[float, float]:
        """(mean, median) of estimate - truth over every study, or over the studies whose table
        row shows the estimate (the others show null: not identified or on a bound); of the
        least-squares estimate instead of the reported one with `least_squares`."""
        estimates = self.least_squares if least_squares else self.estimates
        error = estimates[name] - getattr(self.truth, name)
        if reported_only:
            error = error[self.reported[name]]
        return float(error.mean()), float(np.median(error))


def simulate(
    n_params: np.ndarray, truth: Truth, sigma: float, studies: int, seed: int = 0
) -> Simulation:
    """`studies` studies at the design `n_params` (one entry per seed run), Gaussian noise."""
    n_params = np.asarray(n_params, dtype=float)
    x = n_params / n_params.min()
    rng, mean, at_max = np.random.default_rng(seed), truth.loss(x), float(truth.loss(x.max()))
    largest = np.array([n_params.max()])
    rows: list[dict] = []
    for _ in range(studies):
        loss = mean + rng.normal(0.0, sigma, n_params.size)
        fit = fit_law(n_params, loss)
        low, high = mean_band(fit, n_params, loss, largest)
        row = fit_row(fit)
        rows.append(
            {
                **{f"est_{p}": getattr(fit, p) for p in PARAMETERS},
                **{f"ls_{p}": v for p, v in zip(PARAMETERS, fit.least_squares, strict=True)},
                **{
                    f"inside_{p}": fit.intervals[p].low <= getattr(fit, p) <= fit.intervals[p].high
                    for p in PARAMETERS
                },
                **{
                    f"cov_{p}": fit.intervals[p].low <= getattr(truth, p) <= fit.intervals[p].high
                    for p in PARAMETERS
                },
                "cov_curve_at_max": bool(low[0] <= at_max <= high[0]),
                **{f"shown_{p}": row[p] is not None for p in PARAMETERS},
                "claimed": fit.scaling_p < 1 - LEVEL,
                "at_min": bool(np.isclose(fit.l_inf, loss.min(), rtol=0, atol=1e-9)),
            }
        )

    def column(key: str) -> np.ndarray:
        return np.array([r[key] for r in rows])

    return Simulation(
        truth,
        {p: column(f"est_{p}") for p in PARAMETERS},
        {p: column(f"ls_{p}") for p in PARAMETERS},
        {p: column(f"inside_{p}") for p in PARAMETERS},
        {p: column(f"cov_{p}") for p in (*PARAMETERS, "curve_at_max")},
        {p: column(f"shown_{p}") for p in PARAMETERS},
        column("claimed"),
        column("at_min"),
    )
