"""Matplotlib figures as markdown metadata, so the Dagster UI shows them inline."""

import base64
import io

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)


def new_figure(width: float = 8, height: float = 3.5, rows: int = 1):
    """(figure, axes): one axes, or a column of `rows` axes sharing the x axis."""
    return plt.subplots(rows, 1, figsize=(width, height), dpi=90, sharex=rows > 1)


def figure_markdown(fig, title: str = "plot") -> dg.MetadataValue:
    """Render `fig` to PNG, close it, and return it as a markdown image (base64 data URI)."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")
