"""The scaling law loss(N) = L_inf + a * (N / N_0)^(-b) fitted by least squares, with profile
likelihood intervals and a test of whether loss falls with N at all. Pure (no dagster).

Why this estimator. Each seed run is one observation y = L_inf + a x^-b + e, x = N / N_0 (N_0 the
smallest parameter count), e ~ Normal(0, sigma^2) independent and equal across budgets. For a
fixed b the law is linear in (L_inf, a), so the fit profiles b (variable projection): on a grid
of b in [0, B_MAX], refined with scipy's bounded scalar minimiser, the best (L_inf, a) is a
two-parameter nonnegative least-squares solve. The constraints are physical only: L_inf >= 0 (a
log-loss cannot be negative), a >= 0 and b >= 0 (loss does not grow with N under the law). The
old fit also capped L_inf at the smallest observed loss; with noisy seed runs that cap was hit
in most simulated studies and dragged b down (docs/scaling.md has the numbers).

Intervals are profile likelihood intervals: a value theta of one parameter is in the 95%
interval when refitting the others with it held fixed raises the residual sum of squares by at
most F(0.95; 1, n - 3) * s^2 (s^2 = RSS / (n - 3)), the likelihood-ratio interval of nonlinear
regression (Bates & Watts 1988, ch. 6). Unlike Wald intervals from the curvature at the optimum
they follow the curved, often one-sided shape of a weakly identified b; an end the data do not
set stops at a bound (L_inf = 0, a = 0, b = B_MAX) and is marked open (`Interval`).

The point estimate is not the least-squares one. With four budgets the least-squares b is
right-skewed (at the weak-signal scenario of the simulation its mean lies 0.07 above the truth
though its median is on it): where the data barely tell b from L_inf, large b fit about as well.
The reported (L_inf, a, b) minimise Firth's (1993) bias-reduced criterion instead, the
least-squares criterion plus the Jeffreys-prior penalty: RSS / (2 s^2) - 1/2 log det(J'J), J the
Jacobian of the law and s^2 the least-squares noise estimate. det(J'J) = a^2 det G(b), G the Gram
matrix of (1, x^-b, x^-b log x), so for a fixed b the minimum over (L_inf, a) is in closed form
and b is profiled as above. The penalty removes the first-order bias and falls where b is not
identified; the least-squares estimates are kept beside it (`least_squares`).

Whether scaling exists is a separate, exact test: under "loss does not depend on N" b is not
identified, so the likelihood-ratio F is not F-distributed there. The test is the one-sided
t-test of the slope of loss on log N (scipy `linregress`, alternative "less"), exact under the
same noise assumption. The b interval reaches 0 exactly when that test does not reject.
`bench/scaling_law_coverage.py` measures coverage, bias and the test's error rate by simulation,
and how often the bias-reduced point falls outside its interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

B_MAX = 5.0  # the largest exponent searched; an interval reaching it is open above
B_GRID = np.linspace(0.0, B_MAX, 501)  # b = 0 is the constant law (L_inf + a, any split)
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A profile interval; `open_low` / `open_high` mark an end set by a bound, not by the data."""

    low: float
    high: float
    open_low: bool
    open_high: bool


@dataclass(frozen=True)
class LawFit:
    l_inf: float
    a: float
    b: float
    rss: float  # of the least-squares fit: sets the noise, the intervals and the band
    n_obs: int
    n_budgets: int
    n0: float
    threshold: float  # the largest RSS inside the 95% profile region
    intervals: dict[str, Interval]
    scaling_p: float
    least_squares: tuple[float, float, float]  # (L_inf, a, b) without the bias correction

    def predict(self, n_params: np.ndarray) -> np.ndarray:
        return self.l_inf + self.a * (np.asarray(n_params, dtype=float) / self.n0) ** -self.b

    @property
    def sigma(self) -> float:
        """The seed-to-seed noise: residual standard deviation on n - 3 degrees of freedom."""
        return math.sqrt(self.rss / (self.n_obs - 3))


def _solve(y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of z (one b each), min ||y - L - a z||^2 over L >= 0, a >= 0: (L, a, rss). The
    problem is convex, so the unconstrained optimum when feasible, else the better edge."""
    y_bar, z_bar = y.mean(), z.mean(axis=1)
    yc, zc = y - y_bar, z - z_bar[:, None]
    szz, szy, syy = (zc**2).sum(axis=1), zc @ yc, float(yc @ yc)
    safe = np.where(szz > 1e-300, szz, 1.0)
    a_free = np.where(szz > 1e-300, szy / safe, -1.0)  # b = 0: z is constant, use the edges
    l_free = y_bar - a_free * z_bar
    rss_free = syy - np.where(szz > 1e-300, szy**2 / safe, 0.0)
    zz, zy = (z**2).sum(axis=1), z @ y
    a_edge = np.maximum(zy / zz, 0.0)  # L = 0
    rss_l0 = float(y @ y) - 2 * a_edge * zy + a_edge**2 * zz
    l_edge = max(y_bar, 0.0)  # a = 0
    rss_a0 = float(((y - l_edge) ** 2).sum())
    free = (a_free >= 0) & (l_free >= 0)
    use_l0 = ~free & (rss_l0 <= rss_a0)
    l_hat = np.where(free, l_free, np.where(use_l0, 0.0, l_edge))
    a_hat = np.where(free, a_free, np.where(use_l0, a_edge, 0.0))
    rss = np.where(free, rss_free, np.minimum(rss_l0, rss_a0))
    return l_hat, a_hat, np.maximum(rss, 0.0)


def _penalised_solve(
    y: np.ndarray, z: np.ndarray, log_x: np.ndarray, s2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of z (one b each), min over L >= 0, a > 0 of Firth's criterion
    RSS / (2 s2) - log a - 1/2 log det G(b): (L, a, criterion). Quadratic in (L, a) plus -log a,
    so convex; its stationary a solves a quadratic (with L free, else on the edge L = 0). Rows
    where G is singular (b = 0: the law is a constant) get +inf."""
    y_bar, z_bar = y.mean(), z.mean(axis=1)
    yc, zc = y - y_bar, z - z_bar[:, None]
    szz, szy = (zc**2).sum(axis=1), zc @ yc
    zz, zy = (z**2).sum(axis=1), z @ y
    with np.errstate(divide="ignore", invalid="ignore"):
        a_free = (szy + np.sqrt(szy**2 + 4 * szz * s2)) / (2 * szz)
        l_free = y_bar - a_free * z_bar
        edge = ~(l_free >= 0)
        a_hat = np.where(edge, (zy + np.sqrt(zy**2 + 4 * zz * s2)) / (2 * zz), a_free)
        l_hat = np.where(edge, 0.0, l_free)
        rss = ((y[None, :] - l_hat[:, None] - a_hat[:, None] * z) ** 2).sum(axis=1)
        columns = np.stack([np.ones_like(z), z, z * log_x[None, :]], axis=1)
        sign, log_det = np.linalg.slogdet(columns @ columns.transpose(0, 2, 1))
        criterion = rss / (2 * s2) - np.log(a_hat) - 0.5 * log_det
    valid = (sign > 0) & np.isfinite(criterion)
    return l_hat, a_hat, np.where(valid, criterion, np.inf)


class _Profiles:
    """Residual sums of squares of the law with one parameter held fixed, the others refitted."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y
        self.z = x[None, :] ** -B_GRID[:, None]

    def _z(self, b: float) -> np.ndarray:
        return self.x[None, :] ** -b

    def _min_over_b(self, rss_of_z) -> tuple[float, float]:
        """min over b of rss_of_z(z): the grid, then scipy's bounded minimiser around its best."""
        grid = rss_of_z(self.z)
        k = int(np.argmin(grid))
        lo, hi = B_GRID[max(k - 1, 0)], B_GRID[min(k + 1, len(B_GRID) - 1)]
        best = optimize.minimize_scalar(
            lambda b: float(rss_of_z(self._z(b))[0]),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-6},
        )
        if best.fun < grid[k]:
            return float(best.fun), float(best.x)
        return float(grid[k]), float(B_GRID[k])

    def on_grid(self) -> np.ndarray:
        return _solve(self.y, self.z)[2]

    def at_b(self, b: float) -> float:
        return float(_solve(self.y, self._z(b))[2][0])

    def at_l_inf(self, l_inf: float) -> float:
        r = self.y - l_inf

        def rss(z: np.ndarray) -> np.ndarray:
            a = np.maximum((z @ r) / (z**2).sum(axis=1), 0.0)
            return float(r @ r) - 2 * a * (z @ r) + a**2 * (z**2).sum(axis=1)

        return self._min_over_b(rss)[0]

    def at_a(self, a: float) -> float:
        def rss(z: np.ndarray) -> np.ndarray:
            r = self.y[None, :] - a * z
            level = np.maximum(r.mean(axis=1), 0.0)
            return ((r - level[:, None]) ** 2).sum(axis=1)

        return self._min_over_b(rss)[0]

    def best(self) -> tuple[float, float, float, float]:
        """(L_inf, a, b, rss) at the least-squares optimum."""
        rss, b = self._min_over_b(lambda z: _solve(self.y, z)[2])
        l_hat, a_hat, _ = _solve(self.y, self._z(b))
        return float(l_hat[0]), float(a_hat[0]), b, rss

    def bias_reduced(self, s2: float) -> tuple[float, float, float]:
        """(L_inf, a, b) minimising Firth's criterion with the noise variance s2."""
        log_x = np.log(self.x)
        _, b = self._min_over_b(lambda z: _penalised_solve(self.y, z, log_x, s2)[2])
        l_hat, a_hat, _ = _penalised_solve(self.y, self._z(b), log_x, s2)
        return float(l_hat[0]), float(a_hat[0]), b


def _crossing(profile, start: float, stop: float, threshold: float) -> tuple[float, bool]:
    """Where `profile` first rises above `threshold` going from `start` (inside) to `stop`:
    a scan of 40 steps, then scipy's brentq in the bracket; (stop, True) if it never does."""
    steps = np.linspace(start, stop, 41)[1:]
    previous = start
    for value in steps:
        if profile(value) > threshold:
            root = optimize.brentq(lambda t: profile(t) - threshold, previous, value, xtol=1e-7)
            return float(root), False
        previous = value
    return float(stop), True


def scaling_p_value(n_params: np.ndarray, loss: np.ndarray) -> float:
    """One-sided p-value of "loss falls with log N" (scipy linregress, alternative "less")."""
    return float(stats.linregress(np.log(n_params), loss, alternative="less").pvalue)


def fit_law(n_params: np.ndarray, loss: np.ndarray) -> LawFit:
    """Least-squares fit of the law with 95% profile intervals; needs >= 3 distinct parameter
    counts and more observations than parameters, losses finite and positive."""
    n_params, y = np.asarray(n_params, dtype=float), np.asarray(loss, dtype=float)
    sizes = np.unique(n_params)
    if len(sizes) < 3:
        raise ValueError(
            f"the saturating law needs at least 3 distinct parameter counts, got {sizes.tolist()}"
        )
    if len(y) <= 3:
        raise ValueError(f"{len(y)} runs cannot estimate 3 parameters and the noise; need >= 4")
    if (y <= 0).any() or not np.isfinite(y).all():
        raise ValueError("losses must be positive and finite")
    n0 = float(sizes[0])
    profiles = _Profiles(n_params / n0, y)
    l_ls, a_ls, b_ls, rss = profiles.best()
    dof = len(y) - 3
    # an exact fit leaves nothing to correct (and no noise to scale the penalty by)
    l_hat, a_hat, b_hat = profiles.bias_reduced(rss / dof) if rss > 0 else (l_ls, a_ls, b_ls)
    threshold = rss + stats.f.ppf(LEVEL, 1, dof) * max(rss, 1e-300) / dof
    p_value = scaling_p_value(n_params, y)
    spread = float(y.max() - y.min()) + math.sqrt(threshold)
    intervals = {
        "l_inf": _interval(profiles.at_l_inf, l_ls, 0.0, float(y.max()) + spread, threshold),
        "a": _interval(profiles.at_a, a_ls, 0.0, float(y.max()) + spread, threshold),
        "b": _b_interval(profiles, threshold, p_value),
    }
    return LawFit(
        l_hat,
        a_hat,
        b_hat,
        rss,
        len(y),
        len(sizes),
        n0,
        threshold,
        intervals,
        p_value,
        (l_ls, a_ls, b_ls),
    )


def _interval(profile, estimate: float, lower: float, upper: float, threshold: float) -> Interval:
    if estimate <= lower or profile(lower) <= threshold:
        low, open_low = lower, True
    else:
        low, open_low = _crossing(profile, estimate, lower, threshold)
    high, open_high = _crossing(profile, estimate, upper, threshold)
    return Interval(low, high, open_low, open_high)


def _b_interval(profiles: _Profiles, threshold: float, p_value: float) -> Interval:
    """The b values whose profile stays under the threshold (their hull, ends refined by
    brentq), with 0 included exactly when the scaling test does not reject."""
    grid, rss = B_GRID[1:], profiles.on_grid()[1:]  # b = 0 is decided by the exact test
    inside = np.flatnonzero(rss <= threshold)
    no_scaling = p_value >= 1 - LEVEL
    if not len(inside):  # the threshold is met only between grid points, around the optimum
        inside = np.array([int(np.argmin(rss))])
    first, last = inside[0], inside[-1]
    if no_scaling or first == 0:
        low = 0.0 if no_scaling else float(grid[0])
        open_low = True
    else:
        low = optimize.brentq(
            lambda t: profiles.at_b(t) - threshold, grid[first - 1], grid[first], xtol=1e-7
        )
        open_low = False
    if last == len(grid) - 1:
        return Interval(float(low), B_MAX, open_low, True)
    high = optimize.brentq(
        lambda t: profiles.at_b(t) - threshold, grid[last], grid[last + 1], xtol=1e-7
    )
    return Interval(float(low), float(high), open_low, False)


def mean_band(fit: LawFit, n_params: np.ndarray, loss: np.ndarray, grid: np.ndarray) -> tuple:
    """Pointwise 95% profile interval of the mean loss at each parameter count of `grid`: the
    range of L_inf + a (N / N_0)^-b over every (L_inf, a, b) whose RSS is within the fit's
    threshold. For each b the law is linear, so that range is closed-form (the OLS prediction
    interval's shape); L_inf and a are left unconstrained here, which can only widen it."""
    x, y = np.asarray(n_params, dtype=float) / fit.n0, np.asarray(loss, dtype=float)
    b = np.append(B_GRID[1:], fit.b)[:, None] if fit.b > 0 else B_GRID[1:, None]
    z, zg = x[None, :] ** -b, (np.asarray(grid, dtype=float)[None, :] / fit.n0) ** -b
    n, sz, szz = len(y), z.sum(axis=1, keepdims=True), (z**2).sum(axis=1, keepdims=True)
    det = n * szz - sz**2
    sy, szy = y.sum(), (z * y).sum(axis=1, keepdims=True)
    l_hat, a_hat = (szz * sy - sz * szy) / det, (n * szy - sz * sy) / det
    rss = ((y[None, :] - l_hat - a_hat * z) ** 2).sum(axis=1, keepdims=True)
    leverage = (szz - 2 * sz * zg + n * zg**2) / det
    half = np.sqrt(leverage * np.clip(fit.threshold - rss, 0.0, None))
    inside = np.broadcast_to(rss <= fit.threshold, half.shape)
    centre = l_hat + a_hat * zg
    low = np.where(inside, centre - half, np.inf).min(axis=0)
    high = np.where(inside, centre + half, -np.inf).max(axis=0)
    return low, high
