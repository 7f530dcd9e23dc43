"""Plain values from core modules as Dagster metadata: `Markdown` text renders as markdown."""

import dagster as dg

from proj_assets.shared.markdown import Markdown


def ui_metadata(values: dict) -> dict:
    """`values` with every `shared.markdown.Markdown` (tables, figures) as a markdown value; other
    values go to Dagster unchanged."""
    return {k: dg.MetadataValue.md(v) if isinstance(v, Markdown) else v for k, v in values.items()}
