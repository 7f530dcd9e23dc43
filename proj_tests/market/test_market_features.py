"""The 25 features against an independent, loop-by-loop computation on a small synthetic frame."""

import math
import statistics

import numpy as np
import polars as pl
import pytest
from market_helpers import INDEX_MISSING_ROW, INDEX_START_ROW, N_ROWS

from proj_assets.market.features import FEATURE_NAMES, PROXY_FLAG, WARMUP_ROWS, compute_features

REL = 1e-9


def _ema(values: list[float], span: int) -> list[float]:
    """Exponential moving average, recursive form (pandas/polars adjust=False)."""
    alpha = 2 / (span + 1)
    out = [values[0]]
    for x in values[1:]:
        out.append(alpha * x + (1 - alpha) * out[-1])
    return out


def _window(values: list, i: int, w: int) -> list:
    return values[i - w + 1 : i + 1]


def reference_features(prices: pl.DataFrame, index: pl.DataFrame, i: int) -> dict[str, float]:
    """Every feature at row i, written out with plain python from the documented formulas."""
    o, h, lo, c, v = (prices[col].to_list() for col in ("open", "high", "low", "close", "volume"))
    lr = [math.nan] + [math.log(c[j] / c[j - 1]) for j in range(1, len(c))]
    f = {f"ret_{k}": math.log(c[i] / c[i - k]) for k in (1, 2, 5, 10, 21, 63)}
    for w in (5, 21, 63):
        f[f"vol_{w}"] = statistics.stdev(_window(lr, i, w))
    f["vol_ratio_5_63"] = f["vol_5"] / f["vol_63"]
    f["range_hl"] = math.log(h[i] / lo[i])
    f["range_co"] = math.log(c[i] / o[i])
    f["gap_open"] = math.log(o[i] / c[i - 1])
    f["atr_14_pct"] = statistics.fmean(
        (max(h[j], c[j - 1]) - min(lo[j], c[j - 1])) / c[j] for j in range(i - 13, i + 1)
    )
    gain = statistics.fmean(max(x, 0.0) for x in _window(lr, i, 14))
    loss = statistics.fmean(max(-x, 0.0) for x in _window(lr, i, 14))
    f["rsi_14"] = 50.0 if gain + loss == 0 else 100 * gain / (gain + loss)
    macd = [a - b for a, b in zip(_ema(c, 12), _ema(c, 26), strict=False)]
    f["macd_hist_pct"] = (macd[i] - _ema(macd, 9)[i]) / c[i]
    low14, high14 = min(_window(lo, i, 14)), max(_window(h, i, 14))
    f["stoch_k_14"] = (c[i] - low14) / (high14 - low14)
    sma20, sd20 = statistics.fmean(_window(c, i, 20)), statistics.stdev(_window(c, i, 20))
    f["sma_gap_20"] = c[i] / sma20 - 1
    f["sma_gap_50"] = c[i] / statistics.fmean(_window(c, i, 50)) - 1
    f["bollinger_pctb_20"] = (c[i] - (sma20 - 2 * sd20)) / (4 * sd20)
    log_vol = [math.log1p(x) for x in v]
    f["volume_z_21"] = (log_vol[i] - statistics.fmean(_window(log_vol, i, 21))) / statistics.stdev(
        _window(log_vol, i, 21)
    )
    f["volume_ratio_5_21"] = statistics.fmean(_window(v, i, 5)) / statistics.fmean(
        _window(v, i, 21)
    )
    f["vix_level"], f[PROXY_FLAG] = _vix(prices, index, lr, i)
    f["vix_change_5"] = math.log(f["vix_level"] / _vix(prices, index, lr, i - 5)[0])
    return f


def _vix(prices: pl.DataFrame, index: pl.DataFrame, lr: list[float], i: int) -> tuple[float, float]:
    """Index close / 100 on day i (or the last earlier index day); before the index starts, the
    annualized 21-day realized volatility, flagged as a proxy."""
    known = {d: x for d, x in index.select("date", "close").iter_rows()}
    for j in range(i, -1, -1):
        if prices["date"][j] in known:
            return known[prices["date"][j]] / 100, 0.0
    return statistics.stdev(_window(lr, i, 21)) * math.sqrt(252), 1.0


def test_exactly_25_features_and_warmup_removed(prices, vol_index):
    table = compute_features(prices, vol_index)
    assert len(FEATURE_NAMES) == 25 and len(set(FEATURE_NAMES)) == 25
    assert table.columns == ["date", *FEATURE_NAMES]
    assert table.height == N_ROWS - WARMUP_ROWS
    assert table["date"].to_list() == prices["date"].to_list()[WARMUP_ROWS:]
    assert table.select(pl.all_horizontal(pl.col(FEATURE_NAMES).is_finite())).to_series().all()


def test_every_feature_matches_hand_computation(prices, vol_index):
    table = compute_features(prices, vol_index)
    for offset, row in enumerate(table.iter_rows(named=True)):
        expected = reference_features(prices, vol_index, WARMUP_ROWS + offset)
        assert set(expected) == set(FEATURE_NAMES)
        for name in FEATURE_NAMES:
            assert row[name] == pytest.approx(expected[name], rel=REL, abs=1e-12), (
                row["date"],
                name,
            )


def test_vix_level_uses_index_then_proxy(prices, vol_index):
    table = compute_features(prices, vol_index)
    proxy = table.filter(pl.col(PROXY_FLAG) == 1)
    real = table.filter(pl.col(PROXY_FLAG) == 0)
    assert proxy["date"].to_list() == prices["date"].to_list()[WARMUP_ROWS:INDEX_START_ROW]
    assert proxy["vix_level"].to_list() == pytest.approx(
        (proxy["vol_21"] * math.sqrt(252)).to_list(), rel=REL
    )
    index_by_date = dict(vol_index.iter_rows())
    first = real.filter(pl.col("date") == prices["date"][INDEX_START_ROW])
    assert first["vix_level"][0] == pytest.approx(
        index_by_date[prices["date"][INDEX_START_ROW]] / 100
    )
    # the missing index day carries the previous day's value forward (never the next day's)
    missing = real.filter(pl.col("date") == prices["date"][INDEX_MISSING_ROW])
    assert missing["vix_level"][0] == pytest.approx(
        index_by_date[prices["date"][INDEX_MISSING_ROW - 1]] / 100
    )


def test_intersect_drops_proxy_rows(prices, vol_index):
    table = compute_features(prices, vol_index, fallback="intersect")
    assert table.height > 0
    assert table[PROXY_FLAG].sum() == 0
    assert table["date"].min() >= prices["date"][INDEX_START_ROW]
    full = compute_features(prices, vol_index, fallback="realized_vol")
    assert table.height < full.height


def test_intersect_vix_change_uses_only_the_real_index(prices, vol_index):
    """With `intersect` the panel must not contain any value derived from the proxy: the
    5-day index change of the first index days would compare the index with the proxy."""
    table = compute_features(prices, vol_index, fallback="intersect")
    full = (
        prices.select("date")
        .join(vol_index, on="date", how="left")
        .with_columns((pl.col("close") / 100).forward_fill().alias("vix"))
    )
    expected = full.with_columns(
        (pl.col("vix") / pl.col("vix").shift(5)).log().alias("change")
    ).drop_nulls("change")
    joined = table.join(expected.select("date", "change"), on="date", how="left")
    assert joined["change"].null_count() == 0, (
        "rows whose 5-day index change needs pre-index (proxy) days"
    )
    assert joined["vix_change_5"].to_list() == pytest.approx(joined["change"].to_list(), rel=REL)


def test_unknown_fallback_is_an_error(prices, vol_index):
    with pytest.raises(ValueError, match="fallback"):
        compute_features(prices, vol_index, fallback="zeros")


def test_constant_volume_gives_finite_volume_features(prices, vol_index):
    flat = prices.with_columns(pl.lit(5_000_000.0).alias("volume"))
    table = compute_features(flat, vol_index)
    assert table["volume_z_21"].is_finite().all() and table["volume_ratio_5_21"].is_finite().all()
    assert table["volume_z_21"].to_list() == pytest.approx([0.0] * table.height, abs=1e-9)
    assert table["volume_ratio_5_21"].to_list() == pytest.approx([1.0] * table.height)


def test_zero_volume_gives_finite_volume_features(prices, vol_index):
    """An index series (volume 0 every day) must not produce NaN from 0 / 0."""
    table = compute_features(prices.with_columns(pl.lit(0.0).alias("volume")), vol_index)
    assert np.isfinite(table.select("volume_z_21", "volume_ratio_5_21").to_numpy()).all()


def test_intersect_keeps_every_day_when_the_index_covers_the_history(prices):
    """Only days without 5 prior index days are dropped: a full-history index loses none."""
    full_index = prices.select("date", pl.Series("close", np.linspace(15, 25, prices.height)))
    intersect = compute_features(prices, full_index, fallback="intersect")
    assert intersect.height == N_ROWS - WARMUP_ROWS
    assert intersect.equals(compute_features(prices, full_index, fallback="realized_vol"))
