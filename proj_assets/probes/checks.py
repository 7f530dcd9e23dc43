"""probes domain asset checks: corpus structure, activation cache integrity, fold leakage, finite
metrics and the release gate. A tripwire is switched off only by naming it in the profile's
`probes.disabled_tripwires`; it then still measures, reports WARN and records that it was off."""

from collections.abc import Callable
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from proj_assets.partitions import probe_config_fold_partitions
from proj_assets.probes.activation_cache import (
    cache_problem,
    index_problems,
    nonfinite_rows,
    open_cache,
)
from proj_assets.probes.assets import (
    ACTIVATIONS,
    CORPUS,
    FOLD_RESULTS,
    MANIFEST,
    SUMMARY,
    activation_folders,
)
from proj_assets.probes.assets_folds import current_results, expected_inputs, run_partitions
from proj_assets.probes.assets_sweep import stored_predictions
from proj_assets.probes.corpus import with_sentence_uid
from proj_assets.probes.quality import (
    boundary_trace_rows,
    group_problems,
    leakage_rows,
    nonfinite_metric_rows,
)
from proj_assets.probes.results_store import predictions_relpath, read_partitions, select_current
from proj_assets.probes.settings import ProbesSettings
from proj_assets.shared.check_results import (
    offending_rows_result,
    range_check_events,
    threshold_result,
)
from proj_resources import ArtifactStore, Warehouse
from proj_resources.fingerprints import FINGERPRINT
from proj_resources.models import ModelSource


def _tripwire(settings: ProbesSettings, name: str) -> dict:
    """Severity and metadata for check `name`: WARN plus a record when the profile disabled it."""
    if name in settings.disabled_tripwires:
        return {"severity": dg.AssetCheckSeverity.WARN, "tripwire_disabled": True}
    return {"severity": dg.AssetCheckSeverity.ERROR, "tripwire_disabled": False}


def _rows_result(
    settings: ProbesSettings, name: str, offending: pl.DataFrame, total: int, what: str
) -> dg.AssetCheckResult:
    return offending_rows_result(offending, total, what, **_tripwire(settings, name))


_CACHE_INS = {"corpus": dg.AssetIn(CORPUS)}


def _unreadable(folder, layer: int) -> pl.DataFrame | None:
    """One offending row when a cache folder fails its size/checksum verification (never read)."""
    problem = cache_problem(folder)
    return (
        None
        if problem is None
        else pl.DataFrame({"layer": [layer], "problem": [f"{problem} (cache {folder.name})"]})
    )


def _cache_rows(
    folders: dict, rows_of: Callable[[np.ndarray, pl.DataFrame], pl.DataFrame]
) -> tuple[pl.DataFrame, int]:
    """Offending rows of every layer's cache (`rows_of(array, index)`, or one row for a
    cache that fails verification, never read) and how many index rows were read."""
    offending, total = [], 0
    for layer, (_spec, folder) in folders.items():
        if (broken := _unreadable(folder, layer)) is not None:
            offending.append(broken)
            continue
        array, index, _meta = open_cache(folder)
        offending.append(rows_of(array, index).with_columns(layer=pl.lit(layer)))
        total += index.height
    return pl.concat(offending, how="diagonal_relaxed"), total


def _run_rows(
    context: dg.AssetCheckExecutionContext,
    warehouse: Warehouse,
    manifest: pl.DataFrame,
    corpus: pl.DataFrame,
) -> dict[tuple[str, str], pl.DataFrame]:
    """(config_id, fold) -> its current rows (of the current inputs), for every partition the run
    materialized (one, or a range), in one query."""
    wanted = [(k["config"], k["fold"]) for k in run_partitions(context)]
    with warehouse.get_connection() as conn:
        rows, _stale = select_current(
            read_partitions(conn, wanted), expected_inputs(manifest, corpus, wanted)
        )
    found = rows.partition_by("config_id", "fold", as_dict=True)
    return {key: found.get(key, rows.clear()) for key in wanted}


# check name -> (description, what an offending row is)
FOLD_CHECKS = {
    "no_group_leakage": (
        "The held-out group is the only test group and never among the training groups.",
        "rows that leak a group",
    ),
    "metrics_finite": (
        "PR-AUC and base rate are finite on every row; ROC-AUC wherever the test set has both "
        "classes.",
        "rows with non-finite metrics",
    ),
}


def probes_checks(settings: ProbesSettings) -> list[dg.AssetChecksDefinition]:
    """The probes checks for `settings` (tripwires it disables report WARN)."""

    @dg.asset_check(asset=CORPUS, blocking=True)
    def groups_and_labels_valid(corpus: pl.DataFrame) -> dg.AssetCheckResult:
        """Every group has both labels and enough sentences; traces are whole and in one group."""
        problems = group_problems(corpus)
        return _rows_result(
            settings,
            "groups_and_labels_valid",
            problems,
            corpus["group_id"].n_unique(),
            "groups or traces with problems",
        )

    @dg.asset_check(asset=ACTIVATIONS, blocking=True, additional_ins=_CACHE_INS)
    def activations_finite(
        corpus: pl.DataFrame, artifacts: ArtifactStore, probe_model: ModelSource
    ) -> dg.AssetCheckResult:
        """No NaN or inf in any cached activation."""
        offending, total = _cache_rows(
            activation_folders(settings, corpus, artifacts, probe_model),
            lambda array, index: nonfinite_rows(array, index).with_columns(
                problem=pl.lit("non-finite")
            ),
        )
        return _rows_result(
            settings,
            "activations_finite",
            offending,
            total,
            "sentences with non-finite activations (or unreadable caches)",
        )

    @dg.asset_check(asset=ACTIVATIONS, blocking=True, additional_ins=_CACHE_INS)
    def index_matches_cache(
        corpus: pl.DataFrame, artifacts: ArtifactStore, probe_model: ModelSource
    ) -> dg.AssetCheckResult:
        """The index covers every corpus sentence once and tiles the activation array exactly."""
        uids = set(with_sentence_uid(corpus)["uid"].to_list())
        offending, total = _cache_rows(
            activation_folders(settings, corpus, artifacts, probe_model),
            lambda array, index: index_problems(index, array.shape[0], uids),
        )
        return _rows_result(
            settings,
            "index_matches_cache",
            offending,
            total,
            "index rows that do not match the cache (or unreadable caches)",
        )

    @dg.asset_check(asset=ACTIVATIONS, blocking=True, additional_ins=_CACHE_INS)
    def boundary_tokens_within_share(
        corpus: pl.DataFrame, artifacts: ArtifactStore, probe_model: ModelSource
    ) -> dg.AssetCheckResult:
        """Few traces have a token spanning two sentences (given to the later sentence): the share of
        such traces stays at or below probes.model.max_boundary_trace_share."""
        limit = settings.model.max_boundary_trace_share
        folders = activation_folders(settings, corpus, artifacts, probe_model)
        layer, (_spec, folder) = next(
            iter(folders.items())
        )  # every layer's cache shares one tokenization
        if (broken := _unreadable(folder, layer)) is not None:
            return threshold_result(
                False,
                1.0,
                limit,
                offending=broken,
                description="unreadable cache",
                quantity="traces_with_boundary_tokens_share",
                threshold_name="max_share",
                must_be="at most",
                **_tripwire(settings, "boundary_tokens_within_share"),
            )
        share, rows = boundary_trace_rows(open_cache(folder)[2])
        return threshold_result(
            share <= limit,
            share,
            limit,
            offending=rows if rows.height else None,
            description=f"{share:.1%} of traces have a token spanning two sentences "
            f"(at most {limit:.1%} allowed)",
            quantity="traces_with_boundary_tokens_share",
            threshold_name="max_share",
            must_be="at most",
            **_tripwire(settings, "boundary_tokens_within_share"),
        )

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                name,
                asset=FOLD_RESULTS,
                blocking=True,
                description=text,
                partitions_def=probe_config_fold_partitions,
                additional_deps=[MANIFEST, CORPUS],
            )
            for name, (text, _what) in FOLD_CHECKS.items()
        ],
        can_subset=True,
        ins={"manifest": dg.AssetIn(MANIFEST), "corpus": dg.AssetIn(CORPUS)},
    )
    def fold_checks(
        context: dg.AssetCheckExecutionContext,
        manifest: pl.DataFrame,
        corpus: pl.DataFrame,
        artifacts: ArtifactStore,
        warehouse: Warehouse,
    ):
        """Both fold checks in one step (one query for the run's partitions, one step per run): per
        partition of the run and over all of them (range_check_events)."""
        rows = _run_rows(context, warehouse, manifest, corpus)
        selected = {key.name for key in context.selected_asset_check_keys}
        offending: dict[str, dict[str, tuple[pl.DataFrame, int]]] = {
            name: {} for name in FOLD_CHECKS if name in selected
        }
        for (config_id, fold), frame in rows.items():
            partition = str(dg.MultiPartitionKey({"config": config_id, "fold": fold}))
            if (
                frame.height == 0
            ):  # its rows are of other inputs (history): nothing current to check
                raise dg.Failure(
                    f"partition {partition} has no rows of the current inputs: re-run it"
                )
            if "no_group_leakage" in offending:
                relpath = predictions_relpath(config_id, fold, frame[FINGERPRINT][0])
                predictions = pl.read_parquet(artifacts.path(relpath))
                offending["no_group_leakage"][partition] = (
                    leakage_rows(frame, predictions).with_columns(config_id=pl.lit(config_id)),
                    frame.height + predictions.height,
                )
            if "metrics_finite" in offending:
                offending["metrics_finite"][partition] = (
                    nonfinite_metric_rows(frame),
                    frame.height,
                )
        for name, parts in offending.items():
            what = FOLD_CHECKS[name][1]
            results = {
                k: _rows_result(settings, name, bad, total, what)
                for k, (bad, total) in parts.items()
            }
            overall = _rows_result(
                settings,
                name,
                pl.concat([b for b, _t in parts.values()], how="diagonal_relaxed"),
                sum(t for _b, t in parts.values()),
                what,
            )
            yield from range_check_events(context, name, results, overall)

    @dg.asset_check(
        asset=SUMMARY,
        blocking=True,
        additional_ins={"manifest": dg.AssetIn(MANIFEST), "corpus": dg.AssetIn(CORPUS)},
    )
    def release_gate(
        manifest: pl.DataFrame, corpus: pl.DataFrame, warehouse: Warehouse, artifacts: ArtifactStore
    ) -> dg.AssetCheckResult:
        """The config chosen without each fold beats the position baseline and the shuffled-label
        control on that fold (nested LOPO) in chance-corrected PR-AUC, by a one-sided sign-flip
        test over folds at 2.5% (release.release_decision)."""
        from proj_assets.probes.evaluation import nested_confirmation
        from proj_assets.probes.release import (
            chance_corrected,
            flat_confirmation,
            release_decision,
        )
        from proj_assets.probes.sweep_spec import stage1_id

        results, stale = current_results(warehouse, manifest, corpus)
        confirmed = chance_corrected(
            nested_confirmation(results, stage1_id), stored_predictions(artifacts, results)
        )
        decision = release_decision(confirmed, settings.release_margin)
        # metadata entries only (threshold_result's `**extra`); the severity is _tripwire's
        summary: dict[str, Any] = flat_confirmation(decision["summary"])
        return threshold_result(
            decision["passed"],
            decision["measured"],
            decision["threshold"],
            decision["reason"],
            offending=None if decision["passed"] else confirmed,
            must_be="above",
            quantity="min_gain_ci_low_vs_baseline_and_control",
            threshold_name="release_margin",
            **summary,
            **_tripwire(settings, "release_gate"),
            staleness=dg.MetadataValue.json(stale),
        )

    return [
        groups_and_labels_valid,
        activations_finite,
        index_matches_cache,
        boundary_tokens_within_share,
        fold_checks,
        release_gate,
    ]
