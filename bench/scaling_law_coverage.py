"""Coverage and bias of the scaling-law fit in simulated studies (run:
PYTHONPATH=. .venv/bin/python bench/scaling_law_coverage.py).

Each study draws one loss per seed run at the research profile's budgets (scaling.budgets x
scaling.seed_runs, data/profiles/research.yaml) from loss = L_inf + a (N / N_0)^-b plus Gaussian
noise (sigma 0.005), fits it with `law_fit.fit_law` and records whether each 95% interval
covered the truth. Scenarios: weak signal (a = 0.02, b = 0.3), strong signal (a = 0.1, b = 0.3)
and no scaling (b = 0: the loss is L_inf + a at every N, so L_inf and a are not identified apart
and "scaling exists" is a false positive). Printed per scenario: coverage with its
Clopper-Pearson 95% interval (scipy binomtest); mean and median bias of the reported (Firth
bias-reduced) estimate and, as the baseline alongside, of plain least squares; the share of
studies whose row reports the estimate (not null: scaling found, estimate off its bounds); how
often the reported estimate lies in its interval; the rate of "scaling exists" claims; and the
old fit (curve_fit with L_inf capped at the smallest observed loss, percentile bootstrap of seed
runs within budgets) beside it on fewer studies (`--old-studies 0` skips it).
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import optimize, stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proj_assets.profiles import load_profile
from proj_assets.scaling.curve import PARAMETERS
from proj_assets.scaling.law_simulation import Simulation, Truth, simulate

SCENARIOS = {
    "weak": Truth(0.55, 0.02, 0.3),
    "strong": Truth(0.55, 0.10, 0.3),
    "no scaling": Truth(0.55, 0.02, 0.0),
}
SIGMA = 0.005


def _rate(hits: np.ndarray) -> str:
    k, n = int(hits.sum()), len(hits)
    ci = stats.binomtest(k, n).proportion_ci(0.95)
    return f"{k / n:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def _report(name: str, sim: Simulation, seconds: float) -> None:
    print(f"\n{name}: {sim.truth}, sigma {SIGMA}, {sim.studies} studies, {seconds:.0f} s")
    for p in PARAMETERS:
        mean, median = sim.bias(p)
        shown = sim.bias(p, reported_only=True) if sim.reported[p].any() else (np.nan, np.nan)
        ls_mean, ls_median = sim.bias(p, least_squares=True)
        print(
            f"  {p:6s} coverage {_rate(sim.covered[p])}  bias mean {mean:+.4f} median {median:+.4f}"
            f"  reported {sim.reported[p].mean():.3f} (bias of the reported: mean {shown[0]:+.4f}"
            f" median {shown[1]:+.4f})"
        )
        print(
            f"  {'':6s} least squares: bias mean {ls_mean:+.4f} median {ls_median:+.4f}; sd"
            f" {sim.estimates[p].std():.4f} (least squares {sim.least_squares[p].std():.4f});"
            f" point inside its interval {sim.point_inside[p].mean():.3f}"
        )
    print(f"  mean loss at the largest budget: band coverage {_rate(sim.covered['curve_at_max'])}")
    print(f"  'scaling exists' claimed {_rate(sim.scaling_claimed)}")
    print(f"  L_inf equal to the smallest observed loss: {int(sim.l_inf_at_min_loss.sum())}")


def _old_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The fit this replaced: L_inf in [0, min loss], a >= 0, b in [0, 5]."""
    lo, hi = float(y.min()), float(y.max())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optimize.curve_fit(
                lambda x, l_inf, a, b: l_inf + a * x**-b,
                x,
                y,
                p0=[0.9 * lo, max(hi - lo, 1e-3), 0.5],
                bounds=([0.0, 0.0, 0.0], [lo, np.inf, 5.0]),
                maxfev=20000,
            )[0]
    except (RuntimeError, ValueError):
        return None


def _old_baseline(n: np.ndarray, truth: Truth, studies: int, n_boot: int) -> None:
    rng, x = np.random.default_rng(1), n / n.min()
    groups = [np.flatnonzero(n == s) for s in np.unique(n)]
    estimates, covered, at_bound = [], [], 0
    for _ in range(studies):
        y = truth.loss(x) + rng.normal(0.0, SIGMA, n.size)
        point = _old_fit(x, y)
        if point is None:
            continue
        at_bound += bool(np.isclose(point[0], y.min(), rtol=0, atol=1e-6))
        boots = []
        for _ in range(n_boot):
            idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
            fitted = _old_fit(x[idx], y[idx])
            if fitted is not None:
                boots.append(fitted)
        low, high = np.percentile(boots, [2.5, 97.5], axis=0)
        true = np.array([truth.l_inf, truth.a, truth.b])
        estimates.append(point)
        covered.append((low <= true) & (true <= high))
    est, cov = np.array(estimates), np.array(covered)
    print(f"  old fit ({len(est)} studies, {n_boot} bootstrap resamples each):")
    for i, p in enumerate(PARAMETERS):
        bias = est[:, i] - getattr(truth, p)
        print(
            f"    {p:6s} coverage {_rate(cov[:, i])}  bias mean {bias.mean():+.4f} "
            f"median {np.median(bias):+.4f}"
        )
    print(f"    L_inf on its bound (the smallest observed loss): {at_bound} of {len(est)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--old-studies", type=int, default=200)
    parser.add_argument("--old-boot", type=int, default=100)
    args = parser.parse_args()
    scaling = load_profile("research").scaling
    n = np.repeat(np.array(sorted(scaling.budgets.values()), dtype=float), scaling.seed_runs)
    labels = sorted(scaling.budgets, key=scaling.budgets.__getitem__)
    print(f"design: budgets {labels} x {scaling.seed_runs} seed runs")
    for name, truth in SCENARIOS.items():
        start = time.perf_counter()
        sim = simulate(n, truth, SIGMA, args.studies, seed=0)
        _report(name, sim, time.perf_counter() - start)
        if args.old_studies:
            _old_baseline(n, truth, args.old_studies, args.old_boot)


if __name__ == "__main__":
    main()
