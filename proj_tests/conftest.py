"""Shared fixtures: a temporary data folder and Dagster instance, tiny market fixtures.

PROJ_DATA_DIR and DAGSTER_HOME are pointed at temporary folders before anything imports the
definitions, so no test writes to the project's data/ folder or its Dagster instance.
"""

import os
import tempfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

os.environ.setdefault("PROJ_DATA_DIR", tempfile.mkdtemp(prefix="proj_test_data_"))
# Never the project's own instance (by default the entry points use <data dir>/dagster/<profile>).
_dagster_home = Path(tempfile.mkdtemp(prefix="proj_test_dagster_home_"))
(_dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
os.environ["DAGSTER_HOME"] = str(_dagster_home)
# Only for subprocesses that load the code location; in-process tests build from a Profile object
# (definitions_helpers.py).
os.environ.setdefault("PROJ_PROFILE", "demo")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def instance():
    """A real, temporary Dagster instance (sqlite storage in a temp dir)."""
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def resources(tmp_path: Path) -> dict:
    """The demo profile's resources with every output under tmp_path."""
    from definitions_helpers import demo_profile

    from proj_assets.definitions import build_resources

    return build_resources(demo_profile(), tmp_path)


def write_ohlcv_csv(path: Path, df: pl.DataFrame) -> Path:
    """Write canonical OHLCV rows (date, open, high, low, close, volume) as a CSV fixture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.select("date", "open", "high", "low", "close", "volume").write_csv(path)
    return path


@pytest.fixture(scope="session")
def arch_slice() -> dict[str, pl.DataFrame]:
    """Real bundled data for the demo tickers, cut to 2013-06..2016-12 to keep tests fast
    (VIX starts 2014, so both the proxy and the real index appear)."""
    from proj_resources.market_sources import load_arch

    lo, hi = pl.date(2013, 6, 1), pl.date(2016, 12, 31)
    return {
        t: load_arch(t).filter(pl.col("date").is_between(lo, hi))
        for t in ("SP500", "NASDAQ", "VIX")
    }


@pytest.fixture
def csv_dir(tmp_path: Path, arch_slice) -> Path:
    """A CSV source folder (one file per demo ticker) holding valid data."""
    folder = tmp_path / "csv"
    for ticker, df in arch_slice.items():
        write_ohlcv_csv(folder / f"{ticker}.csv", df)
    return folder
