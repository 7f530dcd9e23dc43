"""Results readable in the UI: tables with 4 significant digits and short cells, one-off floats as
text (no one-point charts), markdown rendered as markdown, gate metadata that names the quantity,
the direction and the threshold."""

import math

import dagster as dg
import polars as pl
import pytest

from proj_assets.shared.check_results import offending_rows_result, threshold_result
from proj_assets.shared.markdown import Markdown, figure_image, new_figure, table_markdown
from proj_assets.shared.metadata import ui_metadata


def test_table_rounds_to_4_significant_digits_and_shortens_long_cells():
    rows = pl.DataFrame(
        {
            "config_id": ["3f9c2a7be1d04c5a9e8f7a6b5c4d3e2f1"],
            "pr_auc": [0.123456789012345],
            "loss": [12345.678901],
            "tiny": [0.000012345678],
            "n": [1234567],
            "ok": [True],
            "missing": [None],
        },
        schema_overrides={"missing": pl.Float64},
    )
    text = table_markdown(rows)
    row = text.splitlines()[2]
    assert (
        row == "| 3f9c2a7be1d04c5a9e8f7a6… | 0.1235 | 1.235e+04 | 1.235e-05 | 1234567 | True |  |"
    )
    assert isinstance(text, Markdown)
    long = table_markdown(pl.DataFrame({"x": list(range(15))}), limit=10)
    assert long.endswith("_5 more rows not shown_") and "| 9 |" in long and "| 10 |" not in long
    assert table_markdown(pl.DataFrame({"x": []})) == "_no rows_"


def test_ui_metadata_makes_one_off_floats_text_keeps_series_and_renders_markdown():
    fig, ax = new_figure()
    ax.plot([1, 2], [3, 4])
    meta = ui_metadata(
        {
            "plot": figure_image(fig, "curve"),
            "table": table_markdown(pl.DataFrame({"a": [1.5]})),
            "ci_low": 0.123456789,
            "nan": math.nan,
            "pr_auc_mean": 0.5,
            "rows": 12,
            "label": "x",
        },
        series=("pr_auc_mean",),
    )
    assert isinstance(meta["plot"], dg.MarkdownMetadataValue) and meta["plot"].value.startswith(
        "![curve](data:image/png"
    )
    assert isinstance(meta["table"], dg.MarkdownMetadataValue)
    assert meta["ci_low"] == dg.MetadataValue.text("0.1235") and meta[
        "nan"
    ] == dg.MetadataValue.text("nan")
    assert meta["pr_auc_mean"] == 0.5 and meta["rows"] == 12 and meta["label"] == "x"


@pytest.mark.parametrize(
    "passed, measured, threshold, expected",
    [
        (True, 0.02, 0.05, "below"),
        (False, 0.2, 0.05, "below"),  # a rate that must stay under a maximum
        (True, 0.9, 0.7, "above"),
        (False, 0.5, 0.7, "above"),  # an AUC that must exceed a minimum
        (True, 0, 0, "at most"),  # zero offending rows
    ],
)
def test_direction_is_derived_from_the_result(passed, measured, threshold, expected):
    result = threshold_result(passed, measured, threshold, "d")
    assert result.metadata["must_be"].value.split(" = ")[0] == f"measured {expected} threshold"


def test_named_gate_metadata_reads_as_a_rule():
    result = threshold_result(
        False,
        0.312345678,
        0.01,
        "no improvement",
        quantity="mcnemar_p",
        threshold_name="alpha",
        must_be="below",
    )
    meta = result.metadata
    assert meta["must_be"].value == "mcnemar_p below alpha = 0.01"
    assert meta["measured"].value == 0.3123 and meta["threshold"].value == 0.01
    with pytest.raises(ValueError, match="must_be: expected one of"):
        threshold_result(True, 1, 2, "d", must_be="smaller")
    bad = offending_rows_result(
        pl.DataFrame({"row": [3], "high": [1.0]}), 10, "rows with high < low"
    )
    assert (
        bad.metadata["must_be"].value == "offending_rows at most allowed = 0"
        and bad.metadata["n_failing"].value == 1
    )


def test_gate_metadata_rounds_every_float_also_nested():
    result = threshold_result(
        False,
        measured=0.0123456789,
        threshold=1 / 3,
        description="effect too small",
        cohens_h=0.123456789,
        per_split={"train": 2 / 3, "shares": [0.987654321, 5]},
        n_pairs=120,
        table=Markdown("| a |\n|---|"),
    )
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    assert meta["measured"] == 0.01235 and meta["threshold"] == 0.3333
    assert meta["cohens_h"] == 0.1235 and isinstance(meta["cohens_h"], float)
    assert meta["per_split"] == {"train": 0.6667, "shares": [0.9877, 5]}
    assert meta["n_pairs"] == 120
    assert isinstance(result.metadata["table"], dg.MarkdownMetadataValue)
    assert meta["must_be"] == "measured above threshold = 0.3333"
