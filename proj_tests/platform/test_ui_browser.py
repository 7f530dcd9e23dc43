"""The UI as a person uses it: `dg dev` on a temporary instance holding real market runs (two
tickers that pass their gates and the features built from them, one ticker from a CSV with a bad
row), headless Chromium (Debian package, driven by Playwright) opens the lineage graph, a failed
gate with its rule and offending rows, and a plot; then it materializes the status report from its
asset page and sees its check result. Screenshots stay in test-artifacts/ui/. Slow: `make test-slow`."""

import re
import shutil
import socket
import subprocess
import urllib.request

import dagster as dg
import pytest
from platform_instance import PROJECT, dagster_process, instance_at, wait_until, write_home

pytestmark = pytest.mark.slow
SHOTS = PROJECT / "test-artifacts" / "ui"
STATUS = dg.AssetKey(["platform", "report", "status"])
OHLCV, FEATURES = (
    dg.AssetKey(["market", "raw", "ohlcv"]),
    dg.AssetKey(["market", "processed", "features"]),
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    """The Debian chromium, installed by `make browser` when missing (never a browser download)."""
    if not shutil.which("chromium"):
        subprocess.run(["make", "-C", str(PROJECT), "browser"], check=False, timeout=900)
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed and `make browser` could not install it (needs root and apt)"
        )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _dismiss_welcome(page) -> None:
    """A fresh instance greets a new browser with a community dialog; a person clicks Skip."""
    skip = page.get_by_role("button", name="Skip", exact=True)
    try:
        skip.wait_for(timeout=15_000)
    except Exception:
        return
    skip.click()


def _market_runs(home, tmp_path) -> None:
    """SP500 and VIX from the bundled data (gates pass) and the features built from them (a plot);
    NASDAQ from a CSV whose row 3 has high < low, so its `ohlc_consistent` gate fails."""
    import polars as pl
    from definitions_helpers import assets_by_key, demo_profile, domain_defs

    from proj_resources import MarketSource
    from proj_resources.market_sources import load_arch

    market = domain_defs("market", demo_profile(), home / "data")
    resources = dict(market.resources)
    ohlcv = assets_by_key(market)[tuple(OHLCV.path)]
    raw_checks = [c for c in market.asset_checks if any(k.asset_key == OHLCV for k in c.check_keys)]
    csv = tmp_path / "csv"
    csv.mkdir()
    bad = (
        load_arch("NASDAQ")
        .tail(300)
        .with_row_index()
        .with_columns(
            high=pl.when(pl.col("index") == 3).then(pl.col("low") - 1).otherwise(pl.col("high"))
        )
        .drop("index")
    )
    bad.select("date", "open", "high", "low", "close", "volume").write_csv(csv / "NASDAQ.csv")
    with instance_at(home) as instance:
        for ticker, source in (
            ("SP500", resources["market_source"]),
            ("VIX", resources["market_source"]),
            ("NASDAQ", MarketSource(kind="csv", csv_dir=str(csv))),
        ):
            result = dg.materialize(
                [ohlcv, *raw_checks],
                instance=instance,
                partition_key=ticker,
                resources={**resources, "market_source": source},
                raise_on_error=False,
            )
            failed = {
                e.asset_check_key.name for e in result.get_asset_check_evaluations() if not e.passed
            }
            assert ("ohlc_consistent" in failed) if ticker == "NASDAQ" else not failed, (
                ticker,
                failed,
            )
        features = dg.materialize(
            [*market.assets, *market.asset_checks],
            selection=[FEATURES],
            instance=instance,
            resources=resources,
        )
        assert features.success


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / name))
    assert (SHOTS / name).stat().st_size > 10_000


def test_lineage_failed_gate_plot_and_materialize_from_the_ui(tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    home, port = tmp_path / "home", _free_port()
    url = f"http://127.0.0.1:{port}"
    write_home(home)
    with instance_at(home) as instance:  # create the storage before the first run
        instance.get_runs(limit=1)
    _market_runs(home, tmp_path)
    with dagster_process(home, ["dg", "dev", "-h", "127.0.0.1", "-p", str(port)]):
        wait_until(lambda: _serving(url), 180, "the webserver to answer /server_info", interval=2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(  # a fresh profile folder per test
                str(tmp_path / "chromium-profile"),
                executable_path=chromium,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1600, "height": 1000},
            )
            page = browser.new_page()
            page.goto(f"{url}/asset-groups", wait_until="networkidle", timeout=120_000)
            _dismiss_welcome(page)
            for text in ("market", "scaling", "probes", "sft", "platform"):
                page.get_by_text(text, exact=True).first.wait_for(timeout=60_000)
            _shot(page, "lineage_graph.png")

            # the failed gate: which check, which partition, the rule it broke and the offending row
            page.goto(
                f"{url}/assets/market/raw/ohlcv?view=checks",
                wait_until="networkidle",
                timeout=120_000,
            )
            page.get_by_text("ohlc_consistent").first.click()
            page.get_by_text("Failed").first.wait_for(timeout=60_000)
            page.get_by_text("offending_rows at most allowed = 0").first.wait_for(timeout=60_000)
            _shot(page, "failed_gate.png")

            # the plot: the features' close-price figure, an inline PNG
            page.goto(
                f"{url}/assets/market/processed/features", wait_until="networkidle", timeout=120_000
            )
            page.get_by_text("target_series").first.wait_for(timeout=60_000)
            page.get_by_text("[Show Markdown]").first.click()
            image = page.locator("img[src^='data:image/png']").first
            image.wait_for(timeout=60_000)
            assert image.evaluate("img => img.naturalWidth") > 300
            _shot(page, "plot.png")
            page.keyboard.press("Escape")

            page.goto(
                f"{url}/assets/platform/report/status", wait_until="networkidle", timeout=120_000
            )
            page.get_by_role("button").filter(
                has_text=re.compile(r"^\s*Materialize\s*$")
            ).first.click()
            with instance_at(home) as instance:
                run = wait_until(
                    lambda: [
                        r for r in instance.get_runs(limit=5) if STATUS in (r.asset_selection or ())
                    ],
                    60,
                    "the UI to launch a run of the status note",
                )[0]
                done = wait_until(
                    lambda: (r := instance.get_run_by_id(run.run_id)).is_finished and r,
                    400,
                    "the launched run to finish",
                    interval=2,
                )
                assert done.status == dg.DagsterRunStatus.SUCCESS
                note = (
                    instance.get_latest_materialization_event(STATUS)
                    .asset_materialization.metadata["report"]
                    .value
                )
            assert (
                "`market/raw/ohlcv:ohlc_consistent` [NASDAQ]" in note
            )  # the open gate, in the note
            page.goto(
                f"{url}/assets/platform/report/status?view=checks",
                wait_until="networkidle",
                timeout=120_000,
            )
            page.get_by_text("compute_within_budget").first.wait_for(timeout=60_000)
            page.get_by_text("Passed").first.wait_for(timeout=60_000)
            _shot(page, "status_checks.png")
            browser.close()
