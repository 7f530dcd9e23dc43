"""The UI as a person uses it: `dagster dev` on a temporary instance, headless Chromium (Debian
package, driven by Playwright) opens the asset graph, materializes the status report from its
asset page and sees its check result. Screenshots stay in test-artifacts/ui/. Slow: `make test-slow`."""

import re
import shutil
import socket
import subprocess
import time
import urllib.request

import dagster as dg
import pytest
from ops_instance import PROJECT, dagster_process, instance_at, wait_for

pytestmark = pytest.mark.slow
SHOTS = PROJECT / "test-artifacts" / "ui"
STATUS = dg.AssetKey(["platform", "report", "status"])
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    """The Debian chromium, installed by `make browser` when missing (never a browser download)."""
    if not shutil.which("chromium"):
        subprocess.run(["make", "-C", str(PROJECT), "browser"], check=False, timeout=900)
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed and `make browser` could not install it (needs root and apt)")
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
    except Exception:  # noqa: BLE001 - no dialog this time
        return
    skip.click()


def test_materialize_from_the_ui_and_see_check_results(tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    SHOTS.mkdir(parents=True, exist_ok=True)
    home, port = tmp_path / "home", _free_port()
    url = f"http://127.0.0.1:{port}"
    with dagster_process(home, ["dagster", "dev", "-h", "127.0.0.1", "-p", str(port)]):
        wait_for(lambda: _serving(url), 180, "the webserver to answer /server_info", interval=2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(  # a fresh profile folder per test
                str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1600, "height": 1000})
            page = browser.new_page()
            page.goto(f"{url}/asset-groups", wait_until="networkidle", timeout=120_000)
            _dismiss_welcome(page)
            for group in ("market", "platform"):
                page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(SHOTS / "asset_graph.png"))

            page.goto(f"{url}/assets/platform/report/status", wait_until="networkidle", timeout=120_000)
            page.screenshot(path=str(SHOTS / "status_asset_page.png"))
            page.get_by_role("button").filter(has_text=re.compile(r"^\s*Materialize\s*$")).first.click()
            with instance_at(home) as instance:
                run = wait_for(lambda: instance.get_runs(limit=1), 60, "the UI to launch a run")[0]
                done = wait_for(lambda: (r := instance.get_run_by_id(run.run_id)).is_finished and r, 400,
                                "the launched run to finish", interval=2)
                assert done.status == dg.DagsterRunStatus.SUCCESS
                assert instance.get_latest_materialization_event(STATUS) is not None
            page.goto(f"{url}/assets/platform/report/status?view=checks", wait_until="networkidle", timeout=120_000)
            page.get_by_text("compute_within_budget").first.wait_for(timeout=60_000)
            page.get_by_text("Passed").first.wait_for(timeout=60_000)
            page.screenshot(path=str(SHOTS / "status_checks.png"))
            browser.close()
    assert (SHOTS / "asset_graph.png").stat().st_size > 10_000
