"""Plain values from core modules as Dagster metadata a person can read.

The UI draws a chart for every float (and int) entry of a materialization, one point per
materialization or partition. For a value that is a series (a metric per partition, seconds per
run) that chart is the point; for a one-off figure of a report (a confidence bound, a rate in a
summary) it is a one-point chart that crowds out the rest. So floats become text with 4
significant digits unless they are named as a series, and `Markdown` renders as markdown.
"""

import math

import dagster as dg

from proj_assets.shared.markdown import Markdown, format_number


def ui_metadata(values: dict, series: tuple[str, ...] = ()) -> dict:
    """`values` for `add_output_metadata`/`MaterializeResult`: `shared.markdown.Markdown` as
    markdown, floats not listed in `series` as rounded text (NaN as "nan"), the rest unchanged."""
    out: dict = {}
    for key, value in values.items():
        if isinstance(value, Markdown):
            out[key] = dg.MetadataValue.md(value)
        elif isinstance(value, float) and key not in series:
            out[key] = dg.MetadataValue.text(
                format_number(value) if math.isfinite(value) else str(value)
            )
        else:
            out[key] = value
    return out
