"""Dagster code location: ML research workflows as software-defined assets."""
