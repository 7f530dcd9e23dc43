"""Embedded, runs execute in one process (the in-process executor: asset backfills, the UI's
Materialize and every job); the HPO job takes the multiprocess executor so its trial workers run
in parallel (bench/backfill_overhead.py measures what one process per run saves)."""

import sys
from pathlib import Path


def test_runs_execute_in_process_and_the_hpo_job_in_processes():
    from proj_assets.definitions import defs

    defs = defs()
    names = (
        "probes_sweep_job",
        "probes_manifest_job",
        "market_ohlcv_job",
        "sft_chain_job",
        "scaling_hpo_job",
    )
    executors = {name: defs.resolve_job_def(name).executor_def.name for name in names}
    assert executors == {**dict.fromkeys(names, "in_process"), "scaling_hpo_job": "multiprocess"}
    assert (
        defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    )  # asset backfills


def test_without_a_parallel_executor_every_job_keeps_the_default():
    from definitions_helpers import demo_profile

    from proj_assets.scaling.definitions import build_scaling

    jobs = build_scaling(demo_profile(), Path("/nonexistent")).jobs
    assert [job.name for job in jobs] == ["scaling_hpo_job"] and jobs[0].executor_def is not None
    from proj_assets.shared.jobs import asset_job

    (hpo,) = jobs
    plain = asset_job("plain", hpo.selection, "the same selection without an executor")
    assert plain.executor_def is None


def test_the_code_location_loads_without_torch():
    import subprocess

    code = "import sys, proj_assets.definitions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
