"""Market test helpers: a small synthetic price frame with a volatility index, and helpers to
materialize the market group in-process against a temporary warehouse."""

import math
from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl

N_ROWS = 80
INDEX_START_ROW = 70  # the synthetic volatility index starts here (rows 63..69 use the proxy)
INDEX_MISSING_ROW = 74  # one day without an index value: forward-filled from the day before


def business_days(n: int, start: date = date(2020, 1, 1)) -> list[date]:
    days, day = [], start
    while len(days) < n:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def synthetic_prices(n: int = N_ROWS, seed: int = 7) -> pl.DataFrame:
    """A consistent OHLCV random walk on business days (open/high/low bracket the close)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.012, n)))
    prev = np.concatenate([[100.0], close[:-1]])
    opn = prev * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(opn, close) * (1 + rng.uniform(0.001, 0.01, n))
    low = np.minimum(opn, close) * (1 - rng.uniform(0.001, 0.01, n))
    volume = rng.integers(100_000, 1_000_000, n).astype(float)
    return pl.DataFrame(
        {
            "date": business_days(n),
            "open": opn,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def synthetic_index(prices: pl.DataFrame, seed: int = 11) -> pl.DataFrame:
    """A volatility index (points) from INDEX_START_ROW on, with one missing day."""
    rng = np.random.default_rng(seed)
    dates = prices["date"].to_list()[INDEX_START_ROW:]
    frame = pl.DataFrame({"date": dates, "close": rng.uniform(12, 30, len(dates))})
    return frame.filter(pl.col("date") != prices["date"][INDEX_MISSING_ROW])


def materialize(
    market_defs, resources, instance, keys, partition_key=None, checks: bool = True
) -> dg.ExecuteInProcessResult:
    """One in-process run of `keys` (with their checks unless `checks=False`); never raises."""
    selection = dg.AssetSelection.assets(*[dg.AssetKey(k) for k in keys])
    return dg.materialize(
        market_defs,
        resources=resources,
        instance=instance,
        partition_key=partition_key,
        selection=selection if checks else selection.without_checks(),
        raise_on_error=False,
    )


def failed_checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}


def step_failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Per failed step, the error message and the messages of its causes (the user's exception)."""
    messages = []
    for event in result.get_step_failure_events():
        error, parts = event.event_specific_data.error, []
        while error is not None:
            parts.append(error.message)
            error = error.cause
        messages.append("\n".join(parts))
    return messages


def unrounded_floats(metadata: dict) -> list[str]:
    """Metadata entries holding a float (also inside a JSON value) with more than 4 significant
    digits: 'name=value' for each."""
    found = []

    def walk(name: str, value) -> None:
        value = getattr(value, "value", value)  # FloatMetadataValue, JsonMetadataValue, ...
        if isinstance(value, float) and math.isfinite(value) and value != float(f"{value:.4g}"):
            found.append(f"{name}={value!r}")
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{name}.{key}", inner)
        elif isinstance(value, list | tuple):
            for i, inner in enumerate(value):
                walk(f"{name}[{i}]", inner)

    for name, value in metadata.items():
        walk(name, value)
    return found
