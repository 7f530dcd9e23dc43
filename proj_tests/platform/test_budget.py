"""Compute budget arithmetic: seconds × rate per device, per domain, warn at 80%, fail at 100%."""

import pytest

from proj_assets.platform.budget import BudgetState, Spend, budget_state, summarize_budget

RATES = {"cpu": 0.36, "cuda": 3.6}  # per hour: 0.0001 and 0.001 per second


def test_cost_is_seconds_times_device_rate_summed_per_domain():
    spends = [
        Spend("scaling", 100, "cpu"),
        Spend("scaling", 10, "cuda"),
        Spend("market", 50, "cpu"),
    ]
    rows = {r.domain: r for r in summarize_budget(spends, RATES, {"scaling": 0.1})}
    assert rows["scaling"].cost == pytest.approx(100 * 0.0001 + 10 * 0.001)
    assert rows["scaling"].seconds == 110 and rows["scaling"].materializations == 2
    assert rows["scaling"].fraction == pytest.approx(0.2)
    assert rows["market"].state == BudgetState.UNBUDGETED and rows["market"].fraction is None


def test_budget_without_spend_is_listed_at_zero():
    (row,) = summarize_budget([], RATES, {"sft": 1.0})
    assert (row.domain, row.cost, row.state) == ("sft", 0.0, BudgetState.OK)


@pytest.mark.parametrize(
    ("cost", "state"),
    [
        (0.79, BudgetState.OK),
        (0.8, BudgetState.WARN),
        (0.99, BudgetState.WARN),
        (1.0, BudgetState.OVER),
        (5.0, BudgetState.OVER),
    ],
)
def test_warn_at_80_percent_fail_at_100(cost, state):
    assert budget_state(cost, 1.0, 0.8) == state


def test_unknown_device_is_free_but_reported():
    (row,) = summarize_budget([Spend("probes", 3600, "tpu")], RATES, {"probes": 1.0})
    assert row.cost == 0 and row.unpriced_devices == ("tpu",)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="negative compute seconds"):
        summarize_budget([Spend("x", -1, "cpu")], RATES, {})
    with pytest.raises(ValueError, match="warn_fraction"):
        summarize_budget([], RATES, {}, warn_fraction=1.5)


def test_profile_rejects_non_positive_budget(tmp_path):
    from proj_assets.profiles import PROFILES_DIR, ProfileError, load_profile_file

    text = (PROFILES_DIR / "demo.yaml").read_text().replace("market: 0.005", "market: -1")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match="platform.budgets"):
        load_profile_file(path)
