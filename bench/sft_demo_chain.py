"""Time the whole SFT demo chain in-process on the active profile (default demo) and print the
evaluation (strict and lenient judges, runaway and token-limit rates), the critic's AUC and the
training-set filter counts. Baseline in the same run: the cold base-model build, against which the cached
re-materialization (content-addressed hit) is reported as a ratio.

    PROJ_DATA_DIR=$(mktemp -d) .venv/bin/python bench/sft_demo_chain.py
"""

import os
import tempfile
import time
from pathlib import Path

if "PROJ_DATA_DIR" not in os.environ:  # a fresh folder: the base model is built cold
    os.environ["PROJ_DATA_DIR"] = tempfile.mkdtemp(prefix="sft_bench_")

import dagster as dg
import polars as pl

from proj_assets.definitions import build_definitions
from proj_assets.partitions import sft_shard_partitions
from proj_assets.profiles import data_dir, load_profile
from proj_assets.sft import keys as k
from proj_assets.sft.iterations import iterations, selected_iteration


def main() -> None:
    profile, root = (
        load_profile(),
        Path(data_dir()),
    )  # a script: the active profile (PROJ_PROFILE) is its input
    cfg = profile.sft
    location = build_definitions(
        profile, root
    )  # as the code location builds it: the gates resolved
    defs = [
        *location.assets,
        *location.asset_checks,
    ]  # every run holds them; the selection picks what runs
    resources = location.resources
    timings: dict[str, float] = {}
    with dg.instance_for_test() as instance:

        def run(label, keys, partition=None):
            start = time.perf_counter()
            result = dg.materialize(
                defs,
                selection=[dg.AssetKey(x) for x in keys],
                partition_key=partition,
                resources=resources,
                instance=instance,
                raise_on_error=False,
            )
            timings[label] = time.perf_counter() - start
            for e in result.get_asset_check_evaluations():
                print(
                    f"  check {e.asset_key.to_user_string()}:{e.check_name} passed={e.passed} "
                    f"{ {m: getattr(v, 'value', v) for m, v in e.metadata.items() if m in ('measured', 'threshold')} }"
                )
            return result

        total = time.perf_counter()
        run("base_model (cold)", [k.BASE_MODEL])
        run("base_model (cached)", [k.BASE_MODEL])
        run("test set + pilot settings", [k.TEST_INSTRUCTIONS, k.PILOT_SETTINGS])
        for n, key in enumerate(iterations(cfg)):
            run(
                f"pilot iteration {n}{' (selected)' if key == selected_iteration(cfg) else ''}",
                [k.PILOT],
                key,
            )
        run("pilot comparison", [k.PILOT_COMPARISON])
        for shard in sft_shard_partitions(cfg.n_shards).get_partition_keys():
            run(f"shard {shard} + critic", [k.SHARDS, k.CRITIC], shard)
        run("training set", [k.TRAINING_SET])
        run("adapter", [k.ADAPTER])
        run("paired eval + stats", [k.PAIRED, k.STATS])
        elapsed = time.perf_counter() - total
        instance_meta = {}
        for key in (k.PILOT, k.CRITIC, k.TRAINING_SET, k.ADAPTER):
            partition = selected_iteration(cfg) if key == k.PILOT else None
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None
                ),
                limit=1,
            ).records
            meta = records[0].asset_materialization.metadata if records else {}
            instance_meta[tuple(key)] = {m: getattr(v, "value", v) for m, v in meta.items()}
    for label, seconds in timings.items():
        print(f"{label:28s} {seconds:7.1f} s")
    print(f"{'chain total (incl. cached)':28s} {elapsed:7.1f} s")
    print(
        f"cached/cold base model ratio: {timings['base_model (cached)'] / timings['base_model (cold)']:.3f}"
    )
    if not resources["warehouse"].table_exists("sft_eval", "stats"):
        print("the chain stopped before the evaluation (a gate refused): see the check lines above")
        return
    warehouse = resources["warehouse"]
    stats = warehouse.query("select * from sft_eval.stats")
    with pl.Config(tbl_cols=14, tbl_width_chars=200):
        print("pilot iterations:")
        print(warehouse.query("select * from sft_report.pilot_comparison"))
        print("strict exact match (the stage gate's judge):")
        print(
            stats.select(
                "scope",
                "n",
                "base_accuracy",
                "few_shot_accuracy",
                "sft_accuracy",
                "cohens_h_vs_base",
                "mcnemar_p_vs_base",
                "p_bh_vs_base",
                "cohens_h_vs_few_shot",
                "mcnemar_p_vs_few_shot",
            )
        )
        print("lenient judge and QC rates:")
        print(
            stats.select(
                "scope",
                "base_lenient_accuracy",
                "few_shot_lenient_accuracy",
                "sft_lenient_accuracy",
                "base_runaway_rate",
                "few_shot_runaway_rate",
                "sft_runaway_rate",
                "base_token_limit_rate",
                "sft_token_limit_rate",
            )
        )
    for key in (k.PILOT, k.CRITIC, k.TRAINING_SET, k.ADAPTER):
        meta = instance_meta[tuple(key)]
        shown = {
            m: meta[m]
            for m in (
                "critic_auc",
                "critic_threshold_chosen",
                "critic_position_prior",
                "threshold",
                "keep_rate",
                "generated",
                "dropped_runaway",
                "dropped_token_limit",
                "dropped_by_critic",
                "dropped_duplicates",
                "dropped_test_overlap",
                "kept",
                "critic_precision",
                "candidate_accuracy",
                "epochs_run",
                "best_epoch",
                "validation_losses",
                "runaway_rate",
                "token_limit_rate",
            )
            if m in meta
        }
        print(f"{'/'.join(key)}: {shown}")


if __name__ == "__main__":
    main()
