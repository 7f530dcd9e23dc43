"""How much of each split's volatility-index feature is the realized-volatility proxy.

When the index series starts late (the bundled VIX starts in 2014), the earliest split is all
proxy and the latest all real: `vix_level` then means a different thing in training than in
testing, and `vix_is_proxy` is constant in train, so a model cannot learn what it signals.
"""

import polars as pl

from proj_assets.market.features import PROXY_FLAG


def proxy_share_by_split(features: pl.DataFrame, splits: pl.DataFrame) -> pl.DataFrame:
    """One row per split (in the splits' order): split, n_rows, proxy_rows, proxy_share.

    A split's rows are the feature rows dated within its [start_date, end_date]."""
    rows = []
    for split in splits.iter_rows(named=True):
        inside = features.filter(pl.col("date").is_between(split["start_date"], split["end_date"]))
        proxy = int(inside[PROXY_FLAG].sum())
        rows.append(
            {
                "split": split["split"],
                "n_rows": inside.height,
                "proxy_rows": proxy,
                "proxy_share": proxy / inside.height if inside.height else 0.0,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "split": pl.Utf8,
            "n_rows": pl.Int64,
            "proxy_rows": pl.Int64,
            "proxy_share": pl.Float64,
        },
    )


def proxy_share_problems(shares: pl.DataFrame, max_share: float, max_spread: float) -> list[str]:
    """Why the shares are a problem: a split whose share exceeds `max_share` (mostly proxy), and
    a difference between the largest and smallest share above `max_spread`. Empty: none."""
    problems = [
        f"split {row['split']!r} is {row['proxy_share']:.0%} proxy (more than {max_share:.0%})"
        for row in shares.iter_rows(named=True)
        if row["proxy_share"] > max_share
    ]
    spread = proxy_share_spread(shares)
    if spread > max_spread:
        problems.append(
            f"proxy share differs by {spread:.0%} across splits (more than {max_spread:.0%})"
        )
    return problems


def proxy_share_spread(shares: pl.DataFrame) -> float:
    """Largest minus smallest proxy share across the splits."""
    values = shares["proxy_share"].to_list()
    return max(values) - min(values)
