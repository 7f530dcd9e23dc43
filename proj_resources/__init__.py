"""Typed ConfigurableResources shared by every domain.

Exports resolve lazily (PEP 562), so pure helpers such as `proj_resources.hashing` can be
imported by core modules without importing dagster through this package.
"""

import importlib

_EXPORTS = {
    "ArtifactStore": "artifacts",
    "Compute": "compute",
    "MarketSource": "market_sources",
    "Provenance": "provenance",
    "Warehouse": "warehouse",
    "warehouse_io_manager": "warehouse",
    "warehouse_path": "warehouse",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'proj_resources' has no attribute {name!r}")
    return getattr(importlib.import_module(f"proj_resources.{_EXPORTS[name]}"), name)
