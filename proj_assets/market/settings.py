"""Market section of a profile: data source, tickers, targets and split fractions."""

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from proj_assets.settings_base import Section

FORBIDDEN_KEY_CHARS = set("|,[]")


class SplitFractions(Section):
    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _leaves_test(self):
        if self.train + self.val >= 1:
            raise ValueError(
                f"train + val must be < 1 so a test split remains (got {self.train + self.val})"
            )
        return self


class MarketSettings(Section):
    source: Literal["arch", "csv", "yfinance"] = "arch"
    csv_dir: str | None = None
    start: str | None = None  # ISO date, inclusive; None = all history
    end: str | None = None
    tickers: list[str]
    target_ticker: str
    vol_index_ticker: str
    # What the volatility-index features do on days before the index series starts:
    # "realized_vol" substitutes the target's annualized 21-day realized volatility and sets
    # vix_is_proxy = 1; "intersect" drops those days (a shorter panel).
    vol_index_fallback: Literal["realized_vol", "intersect"] = "realized_vol"
    # The WARN check `vol_index_proxy_share_low_and_even` on the splits: it warns when a split's
    # vix_level is more than `proxy_max_share` proxy, or when the proxy shares of the splits
    # differ by more than `proxy_max_spread` (largest minus smallest).
    proxy_max_share: float = Field(0.5, ge=0, le=1)
    proxy_max_spread: float = Field(0.2, ge=0, le=1)
    horizons: list[int] = Field(default_factory=lambda: [1, 3, 5])
    rise_threshold: float = Field(0.01, gt=0, lt=1)
    splits: SplitFractions = Field(default_factory=SplitFractions)

    @field_validator("tickers")
    @classmethod
    def _valid_keys(cls, tickers: list[str]) -> list[str]:
        if not tickers:
            raise ValueError("at least one ticker is required")
        for t in tickers:
            if FORBIDDEN_KEY_CHARS & set(t):
                raise ValueError(f"ticker {t!r} contains one of {sorted(FORBIDDEN_KEY_CHARS)}")
        if len(set(tickers)) != len(tickers):
            raise ValueError("tickers must be unique")
        return tickers

    @field_validator("horizons")
    @classmethod
    def _positive_horizons(cls, horizons: list[int]) -> list[int]:
        if not horizons or any(h < 1 for h in horizons) or len(set(horizons)) != len(horizons):
            raise ValueError("horizons must be unique positive integers")
        return sorted(horizons)

    @field_validator("csv_dir")
    @classmethod
    def _resolve_csv_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        base = Path((info.context or {}).get("profile_dir", "."))
        path = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
        if not path.is_dir():
            raise ValueError(f"csv_dir does not exist or is not a directory: {path}")
        return str(path)

    @field_validator("target_ticker", "vol_index_ticker")
    @classmethod
    def _in_tickers(cls, value: str, info: ValidationInfo) -> str:
        tickers = info.data.get("tickers")  # absent when tickers itself was invalid
        if tickers is not None and value not in tickers:
            raise ValueError(f"{value!r} is not in tickers {tickers}")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.source == "csv" and self.csv_dir is None:
            raise ValueError("source 'csv' needs csv_dir")
        return self
