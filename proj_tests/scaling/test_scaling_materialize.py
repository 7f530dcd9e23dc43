"""The scaling group in-process on a temporary warehouse: one budget x horizon partition end to
end, and a failing blocking check on the trials stopping `best_trials` in this run and later ones."""

import dagster as dg
import polars as pl
import pytest
from scaling_helpers import tiny_settings

from proj_assets.market.assets import FEATURES, OHLCV, SPLITS, TARGETS
from proj_assets.scaling import assets as scaling_assets
from proj_assets.scaling import checks as scaling_checks
from proj_assets.scaling import assets_law
from proj_assets.scaling.assets import ARCH_GRID, BEST_TRIALS, EXPERIMENT_RESULTS, SCALING_CURVE, TRIALS
from proj_assets.scaling.assets_law import SEED_RUNS

PARTITION = dg.MultiPartitionKey({"budget": "2k", "horizon": "h1"})
PROVENANCE = ["git_sha", "code_version", "run_id", "seed", "params_hash", "model_id", "model_revision"]


@pytest.fixture(scope="module")
def defs():
    from proj_assets.market import assets as market_assets
    from proj_assets.market import checks as market_checks

    modules = [market_assets, scaling_assets, assets_law]
    return [*dg.load_assets_from_modules(modules), *dg.load_asset_checks_from_modules([market_checks, scaling_checks])]


def _run(defs, resources, instance, keys, partition_key=None):
    return dg.materialize(defs, resources=resources, instance=instance, partition_key=partition_key,
                          selection=[dg.AssetKey(k) for k in keys], raise_on_error=False)


@pytest.fixture(scope="module")
def market_world(defs, tmp_path_factory, arch_slice):
    """One instance and warehouse with the market group (and its checks) materialized once from
    CSV files; each test then runs scaling assets on top with its own study folder."""
    from proj_assets.definitions import build_resources
    from proj_assets.profiles import load_profile
    from proj_resources import MarketSource

    root = tmp_path_factory.mktemp("scaling_world")
    (root / "csv").mkdir()
    for ticker, frame in arch_slice.items():
        frame.select("date", "open", "high", "low", "close", "volume").write_csv(root / "csv" / f"{ticker}.csv")
    resources = {**build_resources(load_profile(), root),
                 "market_source": MarketSource(kind="csv", csv_dir=str(root / "csv"))}
    with dg.instance_for_test() as instance:
        for ticker in ("SP500", "NASDAQ", "VIX"):
            assert _run(defs, resources, instance, [OHLCV], ticker).success
        assert _run(defs, resources, instance, [FEATURES, TARGETS, SPLITS]).success
        yield resources, instance


@pytest.fixture
def world(market_world, tmp_path, monkeypatch):
    monkeypatch.setenv("PROJ_DATA_DIR", str(tmp_path / "data"))
    return market_world


def _use_settings(monkeypatch, **overrides):
    settings = tiny_settings(budgets={"2k": 2000, "6k": 6000, "20k": 20000},
                             arch={"d_model_min": 8, "d_model_max": 48, "d_model_step": 4, "n_layers_max": 4,
                                   "n_heads": [1, 2, 4], "min_head_dim": 4, "tolerance": 0.25}, **overrides)
    monkeypatch.setattr(scaling_assets, "_settings", settings)
    monkeypatch.setattr(scaling_checks, "_settings", settings)
    return settings


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_one_partition_materializes_end_to_end(defs, world, monkeypatch):
    settings = _use_settings(monkeypatch, seed_runs=2)
    scaling_resources, instance = world
    assert _run(defs, scaling_resources, instance, [ARCH_GRID]).success
    result = _run(defs, scaling_resources, instance, [TRIALS], PARTITION)
    assert result.success
    assert _checks(result) == {"extremes_covered": True, "all_params_logged": True, "trials_complete": True}
    report = _run(defs, scaling_resources, instance, [BEST_TRIALS, EXPERIMENT_RESULTS])
    assert report.success
    assert _run(defs, scaling_resources, instance, [SEED_RUNS], PARTITION).success
    assert _run(defs, scaling_resources, instance, [SCALING_CURVE]).success  # one budget: no law fitted yet

    warehouse = scaling_resources["warehouse"]
    grid = warehouse.query("select * from scaling_design.arch_grid")
    assert set(grid["budget"]) == {"2k", "6k", "20k"} and (grid["micro_batch"] > 0).all()
    trials = warehouse.query("select * from scaling_hpo.trials order by trial_number")
    assert trials.height == settings.n_trials and set(trials["budget"]) == {"2k"} and set(trials["horizon"]) == {"h1"}
    assert trials.select(PROVENANCE[:5]).null_count().sum_horizontal()[0] == 0
    assert trials["n_heads"].null_count() == 0 and trials["effective_batch"].min() >= settings.trainer.effective_batch
    assert trials["trial_seed"].n_unique() == trials.height  # each trial's own seed, not the provenance seed
    best = warehouse.query("select * from scaling_hpo.best_trials")
    assert best.height == 1 and best["val_loss"][0] == trials.filter(pl.col("state") == "COMPLETE")["val_loss"].min()
    runs = warehouse.query("select * from scaling_hpo.seed_runs order by run_seed")
    assert runs.height == 2 and runs["run_seed"].n_unique() == 2 and runs["val_loss"].null_count() == 0
    assert (runs["d_model"][0], runs["lr"][0]) == (best["d_model"][0], best["lr"][0])
    _reevaluate_without_training(runs.row(0, named=True), settings, warehouse)
    results = warehouse.query("select * from scaling_report.experiment_results")
    assert results["n_trials"].to_list() == [settings.n_trials]
    csv_meta = report.asset_materializations_for_node("scaling__report__experiment_results")[0].metadata
    assert pl.read_csv(csv_meta["path"].value)["n_trials"].to_list() == [settings.n_trials]

    again = _run(defs, scaling_resources, instance, [TRIALS], PARTITION)  # resumes: nothing to add
    assert again.success
    meta = again.asset_materializations_for_node("scaling__hpo__trials")[0].metadata
    assert meta["trials_run_now"].value == 0 and meta["trials_total"].value == settings.n_trials


def _reevaluate_without_training(run: dict, settings, warehouse):
    """The stored safetensors weights give back the run's validation loss with no training."""
    from proj_assets.market.panel import split_arrays
    from proj_assets.scaling.model import ArchConfig, TimeSeriesTransformer
    from proj_assets.scaling.trainer import evaluate
    from proj_assets.scaling.windows import build_windows
    from proj_assets.scaling.model_store import load_state
    from proj_resources.hashing import sha256_file

    assert run["model_path"].endswith(".safetensors") and sha256_file(run["model_path"]) == run["model_sha256"]
    state, spec = load_state(run["model_path"])
    assert spec["config"]["seed"] == run["run_seed"] and spec["data_version"] and spec["git_sha"]
    config = spec["config"]
    model = TimeSeriesTransformer(ArchConfig(25, config["d_model"], config["n_layers"], config["n_heads"],
                                             settings.arch.ffn_mult, config["dropout"]))
    model.load_state_dict(state)
    assert sum(p.numel() for p in model.parameters()) == run["n_params"]
    tables = [warehouse.query(f"select * from market_processed.{t}") for t in ("features", "targets", "splits")]
    arrays = split_arrays(*tables, 1)
    data = build_windows({"train": arrays.train, "val": arrays.val, "test": arrays.test}, config["context_length"],
                         settings.trainer.max_train_windows)
    assert evaluate(model, data, "val", 64)["loss"] == pytest.approx(run["val_loss"], rel=1e-5)


def test_failed_extremes_check_blocks_best_trials_now_and_later(defs, world, monkeypatch):
    import math

    from proj_assets.scaling.model import TimeSeriesTransformer

    _use_settings(monkeypatch, n_trials=2)
    forward = TimeSeriesTransformer.forward

    def widest_diverges(self, windows):  # the d_model_max extreme's loss becomes NaN: that trial fails
        out = forward(self, windows)
        return out * math.nan if self.config.d_model == 12 else out

    monkeypatch.setattr(TimeSeriesTransformer, "forward", widest_diverges)
    scaling_resources, instance = world
    assert _run(defs, scaling_resources, instance, [ARCH_GRID]).success
    result = _run(defs, scaling_resources, instance, [TRIALS, BEST_TRIALS], PARTITION)
    assert _checks(result)["extremes_covered"] is False
    assert [m.asset_key for m in result.get_asset_materialization_events()] == [dg.AssetKey(TRIALS)]
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "extremes_covered")
    assert evaluation.metadata["measured"].value > 0 and evaluation.metadata["threshold"].value == 0

    later = _run(defs, scaling_resources, instance, [BEST_TRIALS])
    assert not later.success
    (message,) = [e.event_specific_data.error.message for e in later.get_step_failure_events()]
    assert "refusing to run" in message and "extremes_covered" in message
