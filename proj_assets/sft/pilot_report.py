"""The side-by-side table of pilot iterations (pure): one row per iteration with its sampling
settings, QC rates and program accuracy, whether its gates passed and whether scaling uses it."""

import json

import polars as pl


def compare_iterations(
    rows: pl.DataFrame, gates_passed: dict[str, bool], selected: str
) -> pl.DataFrame:
    """`rows`: pilot rows with `pilot_iteration`, `sampling_params` (JSON), `runaway`, `token_limit`,
    `answer_correct`. Sorted by runaway rate, then token-limit rate."""
    if rows.height == 0:
        raise ValueError("no pilot rows to compare: materialize at least one pilot iteration")
    table = rows.group_by("pilot_iteration").agg(
        pl.col("sampling_params").first(),
        pl.len().alias("n"),
        pl.col("runaway").cast(pl.Float64).mean().alias("runaway_rate"),
        pl.col("token_limit").cast(pl.Float64).mean().alias("token_limit_rate"),
        pl.col("answer_correct").cast(pl.Float64).mean().alias("program_accuracy"),
    )
    settings = [json.loads(s) for s in table["sampling_params"]]
    return (
        table.with_columns(
            pl.Series("temperature", [s["temperature"] for s in settings], dtype=pl.Float64),
            pl.Series("top_p", [s["top_p"] for s in settings], dtype=pl.Float64),
            pl.Series("max_new_tokens", [s["max_new_tokens"] for s in settings], dtype=pl.Int64),
            pl.Series("n_stops", [len(s["stop"]) for s in settings], dtype=pl.Int64),
            pl.Series("stop", [json.dumps(s["stop"]) for s in settings]),
            pl.Series("seed", [s["seed"] for s in settings], dtype=pl.Int64),
            pl.Series(
                "gates_passed", [gates_passed.get(k, False) for k in table["pilot_iteration"]]
            ),
            (pl.col("pilot_iteration") == selected).alias("selected"),
        )
        .drop("sampling_params")
        .sort(["runaway_rate", "token_limit_rate", "pilot_iteration"])
    )
