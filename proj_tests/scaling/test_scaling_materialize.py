"""The scaling group in-process on a temporary warehouse: one budget x horizon partition end to
end, a failing blocking check on the trials stopping `best_trials` in this run and later ones, and a
failed blocking market check stopping the seed re-runs (gates read from the asset graph)."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from proj_assets.market import assets as market_assets
from proj_assets.market.assets import FEATURES
from proj_assets.market.features import compute_features
from proj_assets.profiles import Profile, load_profile, profile_path
from proj_assets.scaling.assets import (
    ARCH_GRID,
    BEST_TRIALS,
    EXPERIMENT_RESULTS,
    SCALING_CURVE,
    TRIALS,
)
from proj_assets.scaling.assets_law import SEED_RUNS
from proj_resources import Warehouse

PARTITION = dg.MultiPartitionKey({"budget": "2k", "horizon": "h1"})
PROVENANCE = [
    "git_sha",
    "code_version",
    "run_id",
    "seed",
    "params_hash",
    "model_id",
    "model_revision",
]


def _profile_at_a_path(folder: Path, name: str) -> Profile:
    """The demo profile saved as `folder`/profiles/lab.yaml with field `name` set to `name`,
    loaded from that path (as the code location loads PROJ_PROFILE=<path>)."""
    raw = {**yaml.safe_load(profile_path("demo").read_text()), "name": name}
    path = folder / "profiles" / "lab.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(raw))
    return load_profile(str(path))


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _law_from_copied_seed_runs(run, warehouse: Warehouse) -> None:
    """The 2k seed runs (and the best trial they re-ran, so they count as current) copied to two
    larger sizes with lower losses: the law is fitted on the test and on the validation loss, one
    row each."""
    with warehouse.get_connection() as conn:
        for budget, scale, drop in (("6k", 3, 0.02), ("20k", 10, 0.03)):
            conn.execute(
                "insert into scaling_hpo.best_trials select * replace (? as budget) "
                "from scaling_hpo.best_trials where budget = '2k'",
                [budget],
            )
            conn.execute(
                "insert into scaling_hpo.seed_runs select * replace (? as budget, n_params * ? as "
                "n_params, test_loss - ? as test_loss, val_loss - ? as val_loss) "
                "from scaling_hpo.seed_runs where budget = '2k'",
                [budget, scale, drop, drop],
            )
    assert run([SCALING_CURVE]).success
    fits = warehouse.query("select * from scaling_report.scaling_curve order by loss_split")
    assert fits.select("horizon", "loss_split", "n_runs").rows() == [
        ("h1", "test", 6),
        ("h1", "val", 6),
    ]


def test_one_partition_materializes_end_to_end(world, tmp_path):
    # a profile given as a file path keys its studies and CSV by its `name` field, not the file name
    w = world(_profile_at_a_path(tmp_path, "my_lab"), seed_runs=2)
    settings, run, warehouse = w.settings, w.run, w.warehouse
    assert run([ARCH_GRID]).success
    result = run([TRIALS], PARTITION)
    assert result.success
    assert _checks(result) == {
        "extremes_covered": True,
        "all_params_logged": True,
        "trials_complete": True,
    }
    assert (w.root / "optuna" / "my_lab" / "2k__h1.log").is_file()
    assert [p.name for p in (w.root / "optuna").iterdir()] == ["my_lab"]
    report = run([BEST_TRIALS, EXPERIMENT_RESULTS])
    assert report.success
    assert run([SEED_RUNS], PARTITION).success
    curve = run([SCALING_CURVE])  # one budget: no law fitted yet, and the metadata says so
    assert curve.success
    meta = curve.asset_materializations_for_node("scaling__report__scaling_curve")[0].metadata
    assert meta["not_identified"].value == "no fit: no horizon has runs at 3 budgets"

    grid = warehouse.query("select * from scaling_design.arch_grid")
    assert set(grid["budget"]) == {"2k", "6k", "20k"} and (grid["micro_batch"] > 0).all()
    trials = warehouse.query("select * from scaling_hpo.trials order by trial_number")
    assert (
        trials.height == settings.n_trials
        and set(trials["budget"]) == {"2k"}
        and set(trials["horizon"]) == {"h1"}
    )
    assert trials.select(PROVENANCE[:5]).null_count().sum_horizontal()[0] == 0
    assert (
        trials["n_heads"].null_count() == 0
        and trials["effective_batch"].min() >= settings.trainer.effective_batch
    )
    assert (
        trials["trial_seed"].n_unique() == trials.height
    )  # each trial's own seed, not the provenance seed
    best = warehouse.query("select * from scaling_hpo.best_trials")
    assert (
        best.height == 1
        and best["val_loss"][0] == trials.filter(pl.col("state") == "COMPLETE")["val_loss"].min()
    )
    runs = warehouse.query("select * from scaling_hpo.seed_runs order by run_seed")
    assert (
        runs.height == 2 and runs["run_seed"].n_unique() == 2 and runs["val_loss"].null_count() == 0
    )
    assert (runs["d_model"][0], runs["lr"][0]) == (best["d_model"][0], best["lr"][0])
    _reevaluate_without_training(runs.row(0, named=True), settings, warehouse)
    results = warehouse.query("select * from scaling_report.experiment_results")
    assert results["n_trials"].to_list() == [settings.n_trials]
    csv_meta = report.asset_materializations_for_node("scaling__report__experiment_results")[
        0
    ].metadata
    assert Path(csv_meta["path"].value).parts[-3:] == (
        "scaling",
        "my_lab",
        "experiment_results.csv",
    )
    assert pl.read_csv(csv_meta["path"].value)["n_trials"].to_list() == [settings.n_trials]

    again = run([TRIALS], PARTITION)  # resumes: nothing to add
    assert again.success
    meta = again.asset_materializations_for_node("scaling__hpo__trials")[0].metadata
    assert meta["trials_run_now"].value == 0 and meta["trials_total"].value == settings.n_trials
    _law_from_copied_seed_runs(run, warehouse)


def _reevaluate_without_training(run: dict, settings, warehouse):
    """The stored safetensors weights give back the run's validation loss with no training."""
    from proj_assets.market.panel import split_arrays
    from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer
    from proj_assets.scaling.model_store import load_state
    from proj_assets.scaling.trainer import evaluate
    from proj_assets.scaling.windows import build_windows
    from proj_resources.hashing import sha256_file

    assert (
        run["model_path"].endswith(".safetensors")
        and sha256_file(run["model_path"]) == run["model_sha256"]
    )
    state, spec = load_state(run["model_path"])
    assert spec["config"]["seed"] == run["run_seed"] and spec["data_version"] and spec["git_sha"]
    config = spec["config"]
    model = TimeSeriesTransformer(
        ArchConfig(
            25,
            config["d_model"],
            config["n_layers"],
            config["n_heads"],
            settings.arch.ffn_mult,
            config["dropout"],
        )
    )
    model.load_state_dict(state)
    assert sum(p.numel() for p in model.parameters()) == run["n_params"]
    tables = [
        warehouse.query(f"select * from market_processed.{t}")
        for t in ("features", "targets", "splits")
    ]
    arrays = split_arrays(*tables, 1)
    data = build_windows(
        {"train": arrays.train, "val": arrays.val, "test": arrays.test},
        config["context_length"],
        settings.trainer.max_train_windows,
    )
    assert evaluate(model, data, "val", 64)["loss"] == pytest.approx(run["val_loss"], rel=1e-5)


def test_failed_extremes_check_blocks_best_trials_now_and_later(world, monkeypatch):
    import math

    from proj_assets.scaling.model import TimeSeriesTransformer

    run = world(n_trials=2).run
    forward = TimeSeriesTransformer.forward

    def widest_diverges(
        self, windows
    ):  # the d_model_max extreme's loss becomes NaN: that trial fails
        out = forward(self, windows)
        return out * math.nan if self.config.d_model == 12 else out

    monkeypatch.setattr(TimeSeriesTransformer, "forward", widest_diverges)
    assert run([ARCH_GRID]).success
    result = run([TRIALS, BEST_TRIALS], PARTITION)
    assert _checks(result)["extremes_covered"] is False
    assert [m.asset_key for m in result.get_asset_materialization_events()] == [dg.AssetKey(TRIALS)]
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "extremes_covered"
    )
    assert evaluation.metadata["measured"].value > 0 and evaluation.metadata["threshold"].value == 0

    later = run([BEST_TRIALS])
    assert not later.success
    (message,) = _failure_messages(later)
    assert "refusing to run" in message and "extremes_covered" in message


def _failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.event_specific_data.error.message for e in result.get_step_failure_events()]


def test_failed_market_gate_blocks_seed_runs(world, monkeypatch):
    """The seed re-runs train on the market panel: while a blocking market check on it failed
    they refuse, naming the check (the gate comes from the graph: they used to train ungated)."""
    w = world(seed_runs=2)
    assert w.run([ARCH_GRID]).success
    assert w.run([TRIALS], PARTITION).success
    assert w.run([BEST_TRIALS]).success

    def looks_ahead(*args, **kwargs):  # tomorrow's return today: finite, but no_lookahead sees it
        return compute_features(*args, **kwargs).with_columns(
            pl.col("ret_1").shift(-1).fill_null(0.0)
        )

    monkeypatch.setattr(market_assets, "compute_features", looks_ahead)
    leaked = w.run([FEATURES])
    assert _checks(leaked) == {"features_finite_after_warmup": True, "no_lookahead": False}

    refused = w.run([SEED_RUNS], PARTITION)
    assert not refused.success
    (message,) = _failure_messages(refused)
    assert (
        "refusing to run" in message and "market/processed/features:no_lookahead failed" in message
    )
    assert refused.get_asset_materialization_events() == []
    assert not w.warehouse.table_exists("scaling_hpo", "seed_runs")
