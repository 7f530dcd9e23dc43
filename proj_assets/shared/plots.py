"""Matplotlib figures as markdown metadata, so the Dagster UI shows them inline."""

import base64
import io

import dagster as dg


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


def figure_markdown(fig, title: str = "plot") -> dg.MetadataValue:
    """Render `fig` to PNG, close it, and return it as a markdown image (base64 data URI)."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")
