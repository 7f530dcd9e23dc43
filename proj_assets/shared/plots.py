"""Matplotlib figures as markdown metadata, so the Dagster UI shows them inline (the dagster side
of `shared.markdown`, whose pure `new_figure`/`figure_image` core modules use directly)."""

import dagster as dg

from proj_assets.shared.markdown import figure_image, new_figure

__all__ = ["figure_markdown", "new_figure"]


def figure_markdown(fig, title: str = "plot") -> dg.MetadataValue:
    """Render `fig` to PNG, close it, and return it as a markdown image metadata value."""
    return dg.MetadataValue.md(figure_image(fig, title))
