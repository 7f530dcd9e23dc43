"""Light partitioned jobs run in one process per run (in-process executor) when embedded; the HPO
job keeps the multiprocess executor so its trial workers run in parallel (bench/backfill_overhead.py
measures what this saves per launched run)."""

import sys

import dagster as dg


def test_light_jobs_run_in_process_and_the_hpo_job_in_processes():
    from proj_assets.definitions import defs

    executors = {name: defs.resolve_job_def(name).executor_def.name
                 for name in ("probes_sweep_job", "probes_manifest_job", "scaling_hpo_job")}
    assert executors == {"probes_sweep_job": "in_process", "probes_manifest_job": "in_process",
                         "scaling_hpo_job": "multiprocess"}


def test_without_a_light_executor_every_job_keeps_the_default():
    from proj_assets.ops.jobs import domain_jobs
    from proj_assets.probes import assets as probes_assets

    jobs = domain_jobs(dg.load_assets_from_modules([probes_assets]), light_executor=None)
    assert jobs and all(job.executor_def is None for job in jobs)


def test_the_code_location_loads_without_torch():
    import subprocess

    code = "import sys, proj_assets.definitions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
