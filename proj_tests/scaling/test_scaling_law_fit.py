"""The scaling-law estimator (law_fit.py): least squares against scipy, profile intervals against
curve_fit's Wald intervals where the law is well identified, the bias-reduced estimate against a
generic minimiser of Firth's criterion, L_inf free of the observed losses, the scaling test on
flat data, and a seeded simulation pinning coverage and bias."""

import numpy as np
import pytest
from scipy import optimize, stats

from proj_assets.profiles import load_profile
from proj_assets.scaling.curve import fit_row
from proj_assets.scaling.law_fit import B_MAX, fit_law, mean_band
from proj_assets.scaling.law_simulation import Truth, simulate

DEVIATIONS = np.array([-0.01, -0.005, 0.0, 0.005, 0.01])  # sum to 0 within each budget


def _research_design() -> np.ndarray:
    scaling = load_profile("research").scaling
    return np.repeat(np.array(sorted(scaling.budgets.values()), dtype=float), scaling.seed_runs)


def _law(x, l_inf, a, b):
    return l_inf + a * x**-b


def test_least_squares_and_profile_intervals_match_scipy_where_the_law_is_well_identified():
    rng = np.random.default_rng(3)
    n = np.repeat([2e3, 6e3, 2e4, 6e4, 2e5], 4)
    loss = _law(n / 2e3, 0.6, 0.1, 0.5) + rng.normal(0, 2e-4, n.size)
    fit = fit_law(n, loss)
    params, cov = optimize.curve_fit(_law, n / 2e3, loss, p0=[0.5, 0.1, 0.4])
    assert list(fit.least_squares) == pytest.approx(params, rel=1e-4)
    # this little noise leaves the bias correction little to do
    assert [fit.l_inf, fit.a, fit.b] == pytest.approx(params, rel=1e-2)
    # near-linear here, so the likelihood-ratio interval is the Wald interval with t(n - 3)
    half = stats.t.ppf(0.975, n.size - 3) * np.sqrt(np.diag(cov))
    for i, name in enumerate(("l_inf", "a", "b")):
        interval = fit.intervals[name]
        assert not (interval.open_low or interval.open_high)
        assert interval.low == pytest.approx(params[i] - half[i], rel=0.01)
        assert interval.high == pytest.approx(params[i] + half[i], rel=0.01)
    low, high = mean_band(fit, n, loss, np.geomspace(2e3, 2e5, 20))
    fitted = fit.predict(np.geomspace(2e3, 2e5, 20))
    assert np.all(low <= fitted) and np.all(fitted <= high) and np.all(high - low < 1e-3)


def _firth_criterion(theta, x, y, s2):
    """RSS / (2 s2) - 1/2 log det(J'J) with the law's Jacobian written out (not profiled)."""
    l_inf, a, b = theta
    z = x**-b
    jacobian = np.column_stack([np.ones_like(x), z, -a * z * np.log(x)])
    sign, log_det = np.linalg.slogdet(jacobian.T @ jacobian)
    rss = float(((y - l_inf - a * z) ** 2).sum())
    return rss / (2 * s2) - 0.5 * log_det if sign > 0 else np.inf


def test_the_reported_estimate_minimises_firths_criterion_and_lies_in_its_intervals():
    n = _research_design()
    x = n / n.min()
    rng = np.random.default_rng(7)
    for _ in range(5):
        loss = _law(x, 0.55, 0.02, 0.3) + rng.normal(0, 0.005, n.size)
        fit = fit_law(n, loss)
        s2 = fit.rss / (n.size - 3)
        starts = [fit.least_squares, (0.55, 0.02, 0.3), (0.5, 0.05, 1.0)]
        direct = min(
            (
                optimize.minimize(
                    _firth_criterion,
                    np.maximum(start, 1e-3),
                    args=(x, loss, s2),
                    method="Nelder-Mead",
                    bounds=[(0.0, None), (1e-9, None), (0.0, B_MAX)],
                    options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20_000},
                )
                for start in starts
            ),
            key=lambda result: result.fun,
        )
        assert [fit.l_inf, fit.a, fit.b] == pytest.approx(direct.x, abs=2e-3)
        assert _firth_criterion((fit.l_inf, fit.a, fit.b), x, loss, s2) <= direct.fun + 1e-6
        for name in ("l_inf", "a", "b"):
            interval = fit.intervals[name]
            assert interval.low <= getattr(fit, name) <= interval.high


def test_l_inf_is_not_capped_by_the_smallest_observed_loss():
    # budget means exactly on the law, seeds spread around them: the smallest seed-run loss
    # (0.5463) lies below the true L_inf 0.55, the cap the old fit imposed
    n = _research_design()
    loss = _law(n / n.min(), 0.55, 0.05, 0.3) + np.tile(DEVIATIONS, 4)
    assert loss.min() < 0.55
    fit = fit_law(n, loss)
    assert list(fit.least_squares) == pytest.approx([0.55, 0.05, 0.3], abs=1e-5)
    assert [fit.l_inf, fit.a, fit.b] == pytest.approx([0.55, 0.05, 0.3], abs=5e-3)
    interval = fit.intervals["l_inf"]
    assert interval.low < 0.55 < interval.high and not interval.open_low
    row = fit_row(fit)
    assert row["l_inf"] == pytest.approx(fit.l_inf) and row["scaling_exists"]


def test_loss_that_does_not_fall_with_n_reports_no_estimate_and_says_why():
    # the demo's h3/h5 shape: loss flat or rising with N; the old fit showed L_inf = 0.000
    n = _research_design()
    loss = 0.66 + 0.002 * np.log10(n / n.min()) + np.tile(DEVIATIONS, 4)
    fit = fit_law(n, loss)
    row = fit_row(fit)
    assert fit.scaling_p > 0.5 and not row["scaling_exists"]
    assert row["l_inf"] is None and row["a"] is None and row["b"] is None
    assert row["l_inf_ci_low"] == 0.0 and row["b_ci_low"] == 0.0
    assert "no significant fall of loss with N" in row["not_identified"]
    assert "l_inf interval reaches the physical bound 0" in row["not_identified"]


def test_a_steep_drop_at_the_smallest_budget_leaves_b_open_above():
    n = _research_design()
    loss = _law(n / n.min(), 0.55, 0.05, 4.0) + np.tile(DEVIATIONS, 4)
    fit = fit_law(n, loss)
    assert fit.intervals["b"].open_high and fit.intervals["b"].high == B_MAX
    assert "b interval reaches the search bound 5" in fit_row(fit)["not_identified"]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="at least 3 distinct"):
        fit_law(np.array([10.0, 10.0, 20.0, 20.0]), np.array([0.5, 0.4, 0.3, 0.3]))
    with pytest.raises(ValueError, match="need >= 4"):
        fit_law(np.array([10.0, 20.0, 40.0]), np.array([0.5, 0.4, 0.3]))
    with pytest.raises(ValueError, match="positive and finite"):
        fit_law(np.array([10.0, 20.0, 40.0, 40.0]), np.array([0.5, np.nan, 0.3, 0.3]))


def test_seeded_simulation_pins_coverage_bias_and_the_scaling_tests_error_rate():
    """A small seeded run of bench/scaling_law_coverage.py (docs/benchmarks.md has 1,000 studies)."""
    n = _research_design()
    weak = simulate(n, Truth(0.55, 0.02, 0.3), 0.005, 60, seed=0)
    for name in ("l_inf", "a", "b", "curve_at_max"):
        assert weak.covered[name].mean() >= 0.85, name
    assert abs(weak.bias("b")[1]) <= 0.05 and weak.scaling_claimed.mean() >= 0.95
    # least squares' right skew (mean +0.07 here) is what the bias correction removes
    assert abs(weak.bias("b")[0]) <= 0.03 < weak.bias("b", least_squares=True)[0]
    assert all(weak.point_inside[p].all() for p in ("l_inf", "a", "b"))
    assert not weak.l_inf_at_min_loss.any()
    strong = simulate(n, Truth(0.55, 0.10, 0.3), 0.005, 60, seed=0)
    assert all(strong.covered[p].mean() >= 0.85 for p in ("l_inf", "a", "b"))
    assert abs(strong.bias("b")[0]) <= 0.03 and strong.reported["b"].all()
    null = simulate(n, Truth(0.55, 0.02, 0.0), 0.005, 60, seed=0)
    assert null.scaling_claimed.mean() <= 0.10 and null.covered["b"].mean() >= 0.9
    assert null.reported["l_inf"].mean() <= 0.10  # L_inf apart from a is not identified
