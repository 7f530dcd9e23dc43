"""The Great Expectations 1.x suite for raw OHLCV, run on a pandas copy in an ephemeral context.

dagster-ge needs GE < 1.0, so the check calls GE itself. GE costs seconds to import: it is
imported inside `validate_ohlcv` only.
"""

import polars as pl

SUITE_NAME = "market_raw_ohlcv"


def _suite(gx):
    from great_expectations import expectations as gxe

    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for column in ("date", "open", "high", "low", "close", "volume", "ticker"):
        suite.add_expectation(gxe.ExpectColumnToExist(column=column))
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for column in ("open", "high", "low", "close"):
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True)
        )
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="date"))
    suite.add_expectation(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="low", or_equal=True)
    )
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    return suite


def validate_ohlcv(df: pl.DataFrame) -> tuple[bool, list[dict]]:
    """Run the suite; return (success, one summary per failed expectation)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("ohlcv")
        .add_dataframe_asset("ohlcv_frame")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": df.to_pandas()})
    )
    result = batch.validate(_suite(gx))
    failures = []
    for item in result.results:
        if not item.success:
            config = item.expectation_config
            details = item.result or {}
            failures.append(
                {
                    "expectation": config.type,
                    "column": config.kwargs.get("column")
                    or f"{config.kwargs.get('column_A')},{config.kwargs.get('column_B')}",
                    "unexpected_count": details.get("unexpected_count"),
                    "sample": [str(v) for v in (details.get("partial_unexpected_list") or [])[:5]],
                }
            )
    return bool(result.success), failures
