"""Markdown for the UI, as plain text: tables a person can read and figures as inline images.

Pure (no dagster), so core modules build their tables and plots here; the shell turns `Markdown`
into a markdown metadata value (`shared.metadata.ui_metadata`, `check_results.markdown_table`,
`plots.figure_markdown`). Numbers keep 4 significant digits and long text cells are shortened,
so a table fits the UI's metadata panel instead of running off its right edge.
"""

import base64
import io
import math

import polars as pl

SIGNIFICANT_DIGITS = 4
MAX_CELL_CHARS = 24


class Markdown(str):
    """Text that the UI should render as markdown (a table or an image), not show verbatim."""


def format_number(value: float | int | None) -> str:
    """4 significant digits for floats (`0.007123`, `1.235e+06`), integers as they are."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.{SIGNIFICANT_DIGITS}g}"


def round_floats(value):
    """`value` with every float, also inside dicts, lists and tuples, cut to 4 significant
    digits (`format_number`), so metadata shows 0.1235, not 0.12345678901; NaN and inf stay."""
    if isinstance(value, float):
        return float(format_number(value))
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    if type(value) in (list, tuple):  # plain ones: Dagster's metadata values are tuples too
        return type(value)(round_floats(v) for v in value)
    return value


def _cell(value) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return format_number(value)
    text = "" if value is None else str(value).replace("|", "/").replace("\n", " ")
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def table_markdown(rows: pl.DataFrame, limit: int = 10) -> Markdown:
    """The first `limit` rows as a markdown table, numbers rounded, long cells shortened; a last
    line says how many rows were left out."""
    head = rows.head(limit)
    if head.height == 0:
        return Markdown("_no rows_")
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in head.iter_rows()]
    if rows.height > head.height:
        lines.append(f"\n_{rows.height - head.height} more rows not shown_")
    return Markdown("\n".join(lines))


def _pyplot():
    """pyplot with the file-only backend, imported on first use: it costs ~0.6 s, and definitions
    loading (every run step's process) must not pay it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(width: float = 8, height: float = 3.5, rows: int = 1):
    """(figure, axes): one axes, or a column of `rows` axes sharing the x axis."""
    return _pyplot().subplots(rows, 1, figsize=(width, height), dpi=90, sharex=rows > 1)


def figure_image(fig, title: str = "plot") -> Markdown:
    """Render `fig` to PNG, close it, and return it as a markdown image (base64 data URI)."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return Markdown(f"![{title}](data:image/png;base64,{encoded})")
