"""Changing a finished study (docs/scaling.md, "Changing a study"): the market end date, the rise
threshold, the architecture space and the context lengths, one at a time, on a finished two-cell
study. Each change supersedes exactly the cells it invalidates; every reader (best_trials, the
trial checks, seed runs, the scaling law) leaves the old rows out; re-running recomputes the
stale cells and runs nothing in the others; a stored grid the profile would not build is refused
with nothing written."""

import dagster as dg
import polars as pl

from proj_assets.scaling.assets import ARCH_GRID, BEST_TRIALS, SCALING_CURVE, TRIALS
from proj_assets.scaling.assets_law import SEED_RUNS
from proj_resources.fingerprints import FINGERPRINT

CELLS = [dg.MultiPartitionKey({"budget": b, "horizon": "h1"}) for b in ("2k", "6k")]
TRAINER = {"max_epochs": 2, "patience": 1, "effective_batch": 64, "max_train_windows": 128}
SMALL = {"budgets": {"2k": 2000, "6k": 6000}, "n_trials": 2, "trainer": TRAINER}
H1 = {"horizons": [1]}


def _finished(world, **overrides):
    """A study whose two cells (2k/h1, 6k/h1) and best trials are materialized."""
    w = world(market=H1, **SMALL, **overrides)
    assert w.run([ARCH_GRID]).success
    for cell in CELLS:
        assert w.run([TRIALS], cell).success
    assert w.run([BEST_TRIALS]).success
    return w


def _metadata(result, key) -> dict:
    node = "__".join(key)
    return result.asset_materializations_for_node(node)[0].metadata


def _data_version(result, key) -> str:
    """The Dagster data version a materialization reported (what Unsynced markers compare)."""
    return result.asset_materializations_for_node("__".join(key))[0].tags["dagster/data_version"]


def _run_trials(w, cell) -> tuple[int, str]:
    """Materialize one trials partition (its checks must pass): trials run now, data version."""
    result = w.run([TRIALS], cell)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    return _metadata(result, TRIALS)["trials_run_now"].value, _data_version(result, TRIALS)


def _trials_run_now(w, cell) -> int:
    return _run_trials(w, cell)[0]


def _best_staleness(w) -> dict:
    result = w.run([BEST_TRIALS])
    assert result.success
    return _metadata(result, BEST_TRIALS)["staleness"].value


def _best(w) -> pl.DataFrame:
    return w.warehouse.query("select * from scaling_hpo.best_trials order by budget_params")


def _trials(w) -> pl.DataFrame:
    return w.warehouse.query("select * from scaling_hpo.trials order by budget_params, study")


def test_a_new_market_end_supersedes_every_cell_until_it_reruns(world):
    w = _finished(world)
    old = _trials(w)
    changed = world(market={**H1, "end": "2016-06-30"}, **SMALL)  # fewer days: other splits
    report = _best_staleness(changed)
    assert report["changed_inputs"] == ["data"] and report["current_rows"] == 0
    assert report["cells_without_current_rows"] == ["2k/h1", "6k/h1"]
    assert _best(changed).height == 0  # no cell chooses among trials trained on other data

    assert _trials_run_now(changed, CELLS[0]) >= SMALL["n_trials"]  # a new study version
    table = _trials(changed).filter(pl.col("budget") == "2k")
    kept = table.join(
        old.select("study", "trial_number", pl.col("trial_run_id").alias("trained_in")),
        on=["study", "trial_number"],
    )
    assert kept.height == old.filter(pl.col("budget") == "2k").height  # history kept
    assert kept["trial_run_id"].null_count() == 0  # and still names the run that trained it
    assert (kept["trial_run_id"] == kept["trained_in"]).all()
    assert _best_staleness(changed)["cells_without_current_rows"] == ["6k/h1"]
    best = _best(changed)
    assert best["budget"].to_list() == ["2k"]  # 6k/h1 has no current trial yet
    assert best[FINGERPRINT][0] not in set(old[FINGERPRINT])

    # a backfill of both cells: the current one runs nothing, the stale one its new study
    assert [_trials_run_now(changed, cell) > 0 for cell in CELLS] == [False, True]
    assert _best_staleness(changed)["cells_without_current_rows"] == []
    assert _best(changed)["budget"].to_list() == ["2k", "6k"]


def test_a_new_rise_threshold_makes_seed_runs_refuse_and_the_law_drop_old_runs(world):
    w = _finished(world, seed_runs=2)
    assert w.run([SEED_RUNS], CELLS[0]).success
    rise = {**H1, "rise_threshold": 0.02}  # other labels: features and prices stay
    changed = world(market=rise, refresh=("processed",), **SMALL, seed_runs=2)

    refused = changed.run([SEED_RUNS], CELLS[0])  # best_trials still names the old trial
    assert not refused.success and refused.get_asset_materialization_events() == []
    (failure,) = refused.get_step_failure_events()
    message = failure.event_specific_data.error.message
    assert "trained on other inputs (data changed)" in message and "scaling/hpo/trials" in message

    assert _trials_run_now(changed, CELLS[0]) > 0
    assert _best_staleness(changed)["cells_without_current_rows"] == ["6k/h1"]
    curve = changed.run([SCALING_CURVE])
    assert curve.success
    law_rows = _metadata(curve, SCALING_CURVE)["seed_runs_staleness"].value
    assert (law_rows["current_rows"], law_rows["superseded_rows"]) == (0, 2)  # old runs out
    assert "best_trial_inputs" in law_rows["changed_inputs"]

    assert changed.run([SEED_RUNS], CELLS[0]).success
    curve = changed.run([SCALING_CURVE])
    law_rows = _metadata(curve, SCALING_CURVE)["seed_runs_staleness"].value
    assert (law_rows["current_rows"], law_rows["superseded_rows"]) == (2, 0)


def test_a_wider_arch_space_needs_a_new_grid_and_supersedes_only_the_budgets_it_changes(world):
    w = _finished(world)
    grid_version = _data_version(w.run([ARCH_GRID]), ARCH_GRID)
    ran, trials_version = _run_trials(w, CELLS[0])  # finished: nothing to run
    assert ran == 0
    before = _trials(w)
    wider = world(
        market=H1,
        refresh=(),
        arch={
            "d_model_min": 8,
            "d_model_max": 48,
            "d_model_step": 4,
            "n_layers_max": 8,  # 6k gains depths 5..8 at d_model 8; 2k's grid is unchanged
            "n_heads": [1, 2, 4],
            "min_head_dim": 4,
            "tolerance": 0.25,
        },
        **SMALL,
    )
    refused = wider.run([TRIALS], CELLS[1])  # the stored grid is the old profile's
    assert not refused.success and refused.get_asset_materialization_events() == []
    (failure,) = refused.get_step_failure_events()
    message = failure.event_specific_data.error.message
    assert "re-materialize scaling/design/arch_grid" in message and "scaling.arch" in message
    assert _trials(wider).equals(before)  # nothing written

    regrid = wider.run([ARCH_GRID])
    assert regrid.success and _data_version(regrid, ARCH_GRID) != grid_version
    report = _best_staleness(wider)
    assert report["changed_inputs"] == ["grid"]
    assert report["cells_without_current_rows"] == ["6k/h1"]  # 2k/h1 is still current
    assert _run_trials(wider, CELLS[0]) == (0, trials_version)  # same content, same version
    assert _trials_run_now(wider, CELLS[1]) > 0
    assert _trials(wider).filter(pl.col("budget") == "6k")["n_layers"].max() > 4


def test_more_context_lengths_open_a_new_study_instead_of_crashing(world):
    old_rows = _trials(_finished(world)).height
    longer = world(market=H1, refresh=(), search={"context_lengths": [4, 8, 16]}, **SMALL)
    assert not longer.run([TRIALS], CELLS[0]).success  # the grid's memory plan is for context 8
    assert longer.run([ARCH_GRID]).success
    report = _best_staleness(longer)
    assert "search" in report["changed_inputs"] and report["current_rows"] == 0
    assert [_trials_run_now(longer, cell) > 0 for cell in CELLS] == [True, True]
    table = _trials(longer)
    assert table.filter(pl.col("state") == "FAIL").height == 0  # no dynamic-value-space crash
    assert _trials_run_now(longer, CELLS[0]) == 0
    report = _best_staleness(longer)
    assert (report["current_rows"], report["superseded_rows"]) == (
        table.height - old_rows,
        old_rows,
    )
    assert _best(longer).height == 2
