"""What the probes checks measure, as plain functions returning the offending rows."""

import polars as pl

MIN_SENTENCES_PER_GROUP = 4


def group_problems(corpus: pl.DataFrame) -> pl.DataFrame:
    """Groups without both labels or with too few sentences (a LOPO fold needs both classes to
    score), traces spread over several groups, and traces whose sentences are not 0..n-1."""
    groups = (
        corpus.group_by("group_id")
        .agg(n=pl.len(), positives=pl.col("label").sum())
        .with_columns(
            problem=pl.when(pl.col("n") < MIN_SENTENCES_PER_GROUP)
            .then(pl.lit(f"fewer than {MIN_SENTENCES_PER_GROUP} sentences"))
            .when(pl.col("positives") == 0)
            .then(pl.lit("no positive label"))
            .when(pl.col("positives") == pl.col("n"))
            .then(pl.lit("no negative label"))
        )
    )
    traces = (
        corpus.group_by("trace_id")
        .agg(
            n_groups=pl.col("group_id").n_unique(),
            group_id=pl.col("group_id").first(),
            n=pl.len(),
            n_declared=pl.col("n_sentences").first(),
            n_declared_distinct=pl.col("n_sentences").n_unique(),
            max_idx=pl.col("sentence_idx").max(),
        )
        .with_columns(
            problem=pl.when(pl.col("n_groups") > 1)
            .then(pl.lit("trace in several groups"))
            .when(pl.col("n_declared_distinct") > 1)
            .then(pl.lit("n_sentences differs within trace"))
            .when((pl.col("n") != pl.col("n_declared")) | (pl.col("max_idx") != pl.col("n") - 1))
            .then(pl.lit("sentences are not 0..n_sentences-1"))
        )
    )
    return pl.concat(
        [
            groups.filter(pl.col("problem").is_not_null()).select(
                "group_id", pl.lit(None, pl.Utf8).alias("trace_id"), "problem"
            ),
            traces.filter(pl.col("problem").is_not_null()).select(
                "group_id", "trace_id", "problem"
            ),
        ]
    )


def leakage_rows(results: pl.DataFrame, predictions: pl.DataFrame) -> pl.DataFrame:
    """Result rows whose held-out fold is among their training groups or is not the only test
    group, and prediction rows scored on a sentence from another group than the fold."""
    bad_results = results.filter(
        pl.col("train_groups").str.split(",").list.contains(pl.col("fold"))
        | (pl.col("test_groups") != pl.col("fold"))
    ).select("fold", pl.col("test_groups").alias("group_id"), pl.lit("result row").alias("where"))
    bad_predictions = predictions.filter(pl.col("group_id") != pl.col("fold")).select(
        "fold", "group_id", pl.lit("prediction row").alias("where")
    )
    return pl.concat([bad_results, bad_predictions.unique()])


def nonfinite_metric_rows(results: pl.DataFrame) -> pl.DataFrame:
    """Rows with a NaN/inf/null PR-AUC or base rate, or a missing ROC-AUC where both classes exist."""

    def bad(col: str) -> pl.Expr:
        return pl.col(col).is_null() | ~pl.col(col).is_finite()

    both_classes = (pl.col("n_test_positive") > 0) & (pl.col("n_test_positive") < pl.col("n_test"))
    return results.filter(
        bad("pr_auc") | bad("base_rate") | (both_classes & bad("roc_auc"))
    ).select("config_id", "fold", "role", "probe_seed", "pr_auc", "roc_auc", "base_rate")


def boundary_trace_rows(meta: dict) -> tuple[float, pl.DataFrame]:
    """(share of traces with a boundary token, one row per such trace with its count) from an
    activation cache's meta.json (extraction.boundary_tokens); a cache written before the counts
    existed is an error, not a pass."""
    if "boundary_tokens" not in meta:
        raise ValueError(
            "the activation cache has no boundary-token counts (written before extraction "
            "version exact-spans-3): re-materialize probes/features/token_activations"
        )
    counts = meta["boundary_tokens"]
    rows = pl.DataFrame(
        {
            "trace_id": list(counts["per_trace"]),
            "boundary_tokens": list(counts["per_trace"].values()),
        },
        schema={"trace_id": pl.Utf8, "boundary_tokens": pl.Int64},
    )
    return counts["traces_with_boundary_tokens"] / max(counts["traces"], 1), rows.sort(
        "boundary_tokens", descending=True
    )
