"""The 25-feature "tier a25" panel for one ticker, computed in polars from data up to day t only.

Every feature at row t uses rows <= t (rolling windows and exponential averages look backwards;
nothing is shifted forwards), which `no_lookahead` verifies by recomputing on truncated history.
Formulas are documented in docs/market.md.
"""

import math

import polars as pl

# Rows dropped at the start so every window is full (the longest window is 63 days).
WARMUP_ROWS = 63
ANNUALIZE = math.sqrt(252)

FEATURE_NAMES = [
    "ret_1",
    "ret_2",
    "ret_5",
    "ret_10",
    "ret_21",
    "ret_63",
    "vol_5",
    "vol_21",
    "vol_63",
    "vol_ratio_5_63",
    "range_hl",
    "range_co",
    "gap_open",
    "atr_14_pct",
    "rsi_14",
    "macd_hist_pct",
    "stoch_k_14",
    "sma_gap_20",
    "sma_gap_50",
    "bollinger_pctb_20",
    "volume_z_21",
    "volume_ratio_5_21",
    "vix_level",
    "vix_change_5",
    "vix_is_proxy",
]
# 1 where vix_level is the realized-volatility proxy (days before the index series starts).
PROXY_FLAG = "vix_is_proxy"


def _safe_div(num: pl.Expr, den: pl.Expr, default: float) -> pl.Expr:
    """num / den, or `default` where den is 0 (e.g. a constant volume series)."""
    return pl.when(den == 0).then(pl.lit(default)).otherwise(num / den)


def _price_features() -> list[pl.Expr]:
    close, high, low, opn = pl.col("close"), pl.col("high"), pl.col("low"), pl.col("open")
    prev_close = close.shift(1)
    log_ret = close.log().diff()
    returns = [(close / close.shift(k)).log().alias(f"ret_{k}") for k in (1, 2, 5, 10, 21, 63)]
    vols = [log_ret.rolling_std(w).alias(f"vol_{w}") for w in (5, 21, 63)]
    true_range = pl.max_horizontal(high, prev_close) - pl.min_horizontal(low, prev_close)
    gain = log_ret.clip(lower_bound=0).rolling_mean(14)
    loss = (-log_ret).clip(lower_bound=0).rolling_mean(14)
    macd = close.ewm_mean(span=12, adjust=False) - close.ewm_mean(span=26, adjust=False)
    low14, high14 = low.rolling_min(14), high.rolling_max(14)
    sma20, sd20 = close.rolling_mean(20), close.rolling_std(20)
    return [
        *returns,
        *vols,
        (log_ret.rolling_std(5) / log_ret.rolling_std(63)).alias("vol_ratio_5_63"),
        (high / low).log().alias("range_hl"),
        (close / opn).log().alias("range_co"),
        (opn / prev_close).log().alias("gap_open"),
        (true_range / close).rolling_mean(14).alias("atr_14_pct"),
        _safe_div(100 * gain, gain + loss, 50.0).alias("rsi_14"),
        ((macd - macd.ewm_mean(span=9, adjust=False)) / close).alias("macd_hist_pct"),
        _safe_div(close - low14, high14 - low14, 0.5).alias("stoch_k_14"),
        (close / sma20 - 1).alias("sma_gap_20"),
        (close / close.rolling_mean(50) - 1).alias("sma_gap_50"),
        _safe_div(close - (sma20 - 2 * sd20), 4 * sd20, 0.5).alias("bollinger_pctb_20"),
    ]


def _volume_features() -> list[pl.Expr]:
    log_vol = pl.col("volume").log1p()
    mean21, sd21 = log_vol.rolling_mean(21), log_vol.rolling_std(21)
    vol = pl.col("volume")
    return [
        _safe_div(log_vol - mean21, sd21, 0.0).alias("volume_z_21"),
        _safe_div(vol.rolling_mean(5), vol.rolling_mean(21), 1.0).alias("volume_ratio_5_21"),
    ]


def compute_features(
    prices: pl.DataFrame, vol_index: pl.DataFrame, fallback: str = "realized_vol"
) -> pl.DataFrame:
    """Features for one ticker.

    `prices`: date, open, high, low, close, volume (one ticker). `vol_index`: date, close of the
    volatility index (e.g. VIX, in points). The index is joined on date and forward-filled (only
    past values). Before its first value: `realized_vol` uses the annualized 21-day realized
    volatility and sets `vix_is_proxy`; `intersect` drops those days.
    Returns date and the 25 FEATURE_NAMES, warm-up rows removed.
    """
    if fallback not in ("realized_vol", "intersect"):
        raise ValueError(f"unknown vol_index fallback {fallback!r}")
    index = vol_index.select("date", (pl.col("close") / 100).alias("_vix"))
    frame = (
        prices.sort("date")
        .join(index, on="date", how="left")
        .with_columns(pl.col("_vix").forward_fill())
        .with_columns(*_price_features(), *_volume_features())
        .with_columns(
            pl.col("_vix").is_null().cast(pl.Float64).alias(PROXY_FLAG),
            pl.coalesce("_vix", pl.col("vol_21") * ANNUALIZE).alias("vix_level"),
        )
        .with_columns(
            (pl.col("vix_level") / pl.col("vix_level").shift(5)).log().alias("vix_change_5"),
            # vix_change_5 must compare two real index values: with `intersect`, drop the index's first 5 days too
            ((pl.col(PROXY_FLAG) == 0) & (pl.col(PROXY_FLAG).shift(5) == 0)).alias("_real_index"),
        )
        .slice(WARMUP_ROWS)
    )
    if fallback == "intersect":
        frame = frame.filter(pl.col("_real_index"))
    return frame.select("date", *FEATURE_NAMES)
