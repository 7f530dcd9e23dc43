"""DuckDB has one writer process at a time: concurrent partition runs must still lose nothing.

Several OS processes materialize `market/raw/ohlcv` partitions into one warehouse file at the
same moment (each through the real DuckDB I/O manager, which retries a locked file); afterwards
every partition holds exactly its rows, once.
"""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb

WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import dagster as dg
    from proj_assets.definitions import build_definitions, build_resources
    from proj_assets.profiles import load_profile
    from proj_resources import MarketSource

    root, csv_dir, ticker, go = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
    profile = load_profile("demo")
    ohlcv = next(a for a in build_definitions(profile, root).assets if a.key.path == ["market", "raw", "ohlcv"])
    resources = build_resources(profile, root)
    resources["market_source"] = MarketSource(kind="csv", csv_dir=csv_dir)
    while not go.exists():  # start every writer at the same moment
        time.sleep(0.01)
    result = dg.materialize([ohlcv], partition_key=ticker, resources=resources,
                            instance=dg.DagsterInstance.ephemeral())
    sys.exit(0 if result.success else 1)
""")


def test_concurrent_partition_writes_lose_nothing(tmp_path: Path, csv_dir: Path, arch_slice):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"
    # Every ticker once, and SP500 twice at the same time: a partition re-run races its twin.
    tickers = ["SP500", "NASDAQ", "VIX", "SP500"]
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(csv_dir), t, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for t in tickers
    ]
    time.sleep(6)  # let every worker import and wait at the barrier
    go.touch()
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), "\n".join(o[-2000:] for o in outputs)

    with duckdb.connect(str(tmp_path / "warehouse" / "demo.duckdb"), read_only=True) as conn:
        counts = dict(
            conn.execute("select ticker, count(*) from market_raw.ohlcv group by ticker").fetchall()
        )
        duplicated = conn.execute(
            "select count(*) from (select ticker, date from market_raw.ohlcv group by 1, 2 having count(*) > 1)"
        ).fetchone()[0]
    assert counts == {t: arch_slice[t].height for t in ("SP500", "NASDAQ", "VIX")}
    assert duplicated == 0
