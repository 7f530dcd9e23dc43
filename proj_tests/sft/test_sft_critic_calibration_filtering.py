"""The critic filters a shard only when the selected pilot shows it ranks answers within their task
type better than chance: at chance every row is kept and the check says why, a good critic
filters, and `sft.critic_force_filter` filters anyway. Real critic_scores materializations (the
real critic on a micro model) over stand-in pilot and shard rows."""

import numpy as np
import polars as pl

from proj_assets.partitions import sft_shard_partitions
from proj_assets.sft import keys as k
from proj_tests.sft.conftest import (
    SftRunner,
    crafted_pilot,
    stand_in,
    stand_in_base_model,
    stand_in_pilot,
    tiny,
)
from proj_tests.sft.test_sft_shard_and_model_gates import crafted_shard

TYPES = ["add", "sort", "count", "upper"]


def pilot_rows(separation: float, seed: int) -> pl.DataFrame:
    """120 clean pilot rows over four task types, a third correct, margins shifted by
    `separation` on correct answers (0: a critic at chance)."""
    rng = np.random.default_rng(seed)
    correct = rng.random(120) < 1 / 3
    margins = rng.normal(correct * separation, 1.0)
    return crafted_pilot(120, 0, 0).with_columns(
        pl.Series("task_type", [TYPES[i % 4] for i in range(120)]),
        pl.Series("critic_margin", margins.tolist()),
        pl.Series("answer_correct", correct.tolist()),
    )


def critic_run(runner: SftRunner, pilot: pl.DataFrame, model):
    shards = sft_shard_partitions(runner.cfg.n_shards)
    scale_shards = stand_in(k.SHARDS, lambda shard: crafted_shard(shard, 20, 0, 0), shards, "shard")
    stand_ins = [stand_in_pilot(pilot), scale_shards, model]
    assert runner([k.PILOT], runner.selected_pilot(), stand_ins).success
    result = runner([k.SHARDS, k.CRITIC], "shard_00", stand_ins)
    rows = result.output_for_node("sft__data__critic_scores")
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.path == k.CRITIC and e.check_name == k.CRITIC_AUC_CHECK
    ]
    return rows, check


def test_chance_critic_keeps_every_row_a_good_one_filters_and_forcing_works(
    tmp_path, instance, untrained_model_dir
):
    model = stand_in_base_model(untrained_model_dir)
    runner = SftRunner(tiny(), tmp_path, instance)
    assert runner([k.BASE_MODEL], stand_ins=[model]).success

    rows, check = critic_run(runner, pilot_rows(0.0, seed=1), model)
    assert rows["critic_keep"].all() and not rows["critic_filtering"].any()
    assert "critic not used, every row kept" in check.description
    assert "includes 0.5" in check.description
    assert check.metadata["filtering"].value is False

    rows, check = critic_run(runner, pilot_rows(2.0, seed=2), model)
    assert rows["critic_filtering"].all()
    assert rows["critic_keep"].to_list() == (rows["critic_margin"] >= threshold_of(rows)).to_list()
    assert rows["critic_keep"].sum() < rows.height  # the micro model's margins miss the threshold
    assert "critic filters" in check.description

    forced = SftRunner(tiny(critic_force_filter=True), tmp_path, instance)
    rows, check = critic_run(forced, pilot_rows(0.0, seed=1), model)
    assert rows["critic_filtering"].all()
    assert rows["critic_keep"].to_list() == (rows["critic_margin"] >= threshold_of(rows)).to_list()
    assert rows["critic_keep"].sum() < rows.height
    assert "critic_force_filter" in check.description


def threshold_of(rows: pl.DataFrame) -> float:
    return float(rows["critic_threshold"][0])
